"""The layering rules of docs/architecture.md ("Layers"), checked on every module's imports.

Bottom to top: losses, nets, data, optim, diagnostics, theory, figures, io (pure) -> methods ->
settings, validate, config, registry -> sslab.build (config -> data, views, backbone, method; no Lightning) -> engine
(the only Lightning code) / evaluation / analysis -> cli. Nothing imports upward. The imports are
read with ``ast`` (``import x``, ``from x import y``, relative imports resolved, imports inside
functions included), so a lazy import inside a function breaks a rule as much as one at the top.
No module imports one that imports it back, directly or through others: such a circle is what a
function-local import usually hides, and it makes the order of imports matter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "sslab"

PURE = ("sslab.losses", "sslab.nets", "sslab.data", "sslab.optim", "sslab.diagnostics", "sslab.theory", "sslab.figures",
        "sslab.io")
ABOVE_PURE = ("sslab.methods", "sslab.engine", "sslab.analysis", "sslab.cli", "sslab.build", "sslab.evaluate",
              "sslab.export", "sslab.reproduce", "sslab.claims", "sslab.bench")
LIGHTNING = ("lightning", "pytorch_lightning")

#: (what the rule is about, the modules it applies to, the imports they must not make)
RULES = (
    ("the pure layers import nothing above them", PURE, ABOVE_PURE),
    ("methods are plain modules: no engine, analysis, cli, builder, evaluation or config",
     ("sslab.methods",), ("sslab.engine", "sslab.analysis", "sslab.cli", "sslab.build", "sslab.evaluate", "sslab.config")),
    ("configuration (settings, validate, config, registry) sits below the builder and its users",
     ("sslab.settings", "sslab.validate", "sslab.config", "sslab.registry"),
     ("sslab.build", "sslab.engine", "sslab.evaluate", "sslab.analysis", "sslab.cli")),
    ("the builder is Lightning-free and below engine, analysis and cli",
     ("sslab.build",), ("sslab.engine", "sslab.analysis", "sslab.cli")),
    ("evaluation and analysis sit beside the engine, not on it (sslab eval / analyze load no Lightning)",
     ("sslab.evaluate", "sslab.evaluation", "sslab.analysis", "sslab.export"),
     ("sslab.engine", "sslab.cli", "sslab.reproduce", "sslab.claims", "sslab.bench")),
    ("reproductions, the claims study and the benchmark train through the engine; only the command line sits above them",
     ("sslab.engine", "sslab.build", "sslab.settings", "sslab.validate", "sslab.config", "sslab.registry", "sslab.methods"),
     ("sslab.reproduce", "sslab.claims", "sslab.bench")),
    ("what a setting is (sslab.settings) is read by the config, not the other way round: it imports no sslab module",
     ("sslab.settings",), ("sslab",)),
)

#: import circles known and not yet broken, each as the sorted tuple of its modules, with who is to break it. Empty:
#: every circle is refused. (Add one only with a comment naming the owner; the lead removes the entry when it is gone.)
KNOWN_CIRCLES: set[tuple[str, ...]] = set()


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. sslab.theory.duality
    path: Path
    line: int
    names: tuple[str, ...]  # absolute names it imports (for ``from p import x``: p and p.x)
    source: str  # the statement as written

    def where(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line} ({self.module}): `{self.source}`"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, path: Path, is_package: bool = False) -> list[Import]:
    """Every import statement in ``source`` (anywhere: top level, functions, classes), as absolute names."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            names = tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = (base,) + tuple(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        else:
            continue
        found.append(Import(module, path, node.lineno, names, ast.unparse(node)))
    return found


def all_imports() -> list[Import]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        out += imports_of(path.read_text(encoding="utf-8"), module_name(path), path, path.name == "__init__.py")
    return out


def within(name: str, prefixes: tuple[str, ...]) -> str | None:
    """The prefix (a package or module) ``name`` falls under, or None."""
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def violations(imports: list[Import]) -> list[str]:
    found = []
    for imp in imports:
        for rule, applies_to, forbidden in RULES:
            if within(imp.module, applies_to):
                for name in imp.names:
                    if bad := within(name, forbidden):
                        found.append(f"{imp.where()} imports {bad}: breaks '{rule}'")
                        break
        if not within(imp.module, ("sslab.engine",)):
            for name in imp.names:
                if within(name, LIGHTNING):
                    found.append(f"{imp.where()} imports {name}: only sslab.engine may import Lightning")
                    break
    return found


def import_graph(imports: list[Import], modules: set[str]) -> dict[str, dict[str, Import]]:
    """module -> {sslab module it imports: the first statement that does}. ``from p import x`` imports ``p.x`` when
    that is a module, else ``p`` (its ``__init__``); a package's own ``__init__`` is not counted as imported by the
    modules inside it (Python runs it first, but that is not a dependency of theirs)."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in imports:
        base, *names = imp.names
        targets = [n for n in names if n in modules]
        if (len(targets) < len(names) or not names) and base in modules:
            targets.append(base)
        for target in targets:
            if target != imp.module:
                graph.setdefault(imp.module, {}).setdefault(target, imp)
    return graph


def circles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Each strongly connected set of two or more modules, as one circle through it (``a -> b -> ... -> a``),
    found by Tarjan's algorithm (iterative) and a shortest path back."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    members.append(m)
                    if m == node:
                        break
                if len(members) > 1:
                    found.append(_circle_through(min(members), set(members), graph))
    return found


def _circle_through(start: str, members: set[str], graph: dict[str, dict[str, Import]]) -> list[str]:
    """The shortest path ``start -> ... -> start`` inside ``members`` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for m in frontier:
            for t in sorted(graph.get(m, {})):
                if t == start:
                    return paths[m] + [start]
                if t in members and t not in paths:
                    paths[t] = paths[m] + [t]
                    nxt.append(t)
        frontier = nxt
    raise AssertionError(f"no circle through {start}")


def describe_circle(circle: list[str], graph: dict[str, dict[str, Import]]) -> str:
    steps = "\n".join(f"    {graph[a][b].where()}" for a, b in zip(circle, circle[1:]))
    return f"  {' -> '.join(circle)}:\n{steps}"


def test_no_module_imports_itself_around_a_circle():
    imports = all_imports()
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    graph = import_graph(imports, modules)
    assert {"sslab.settings", "sslab.validate"} <= graph["sslab.config"].keys()  # the graph sees top-level imports
    assert "sslab.methods" in graph["sslab.validate"]  # and function-local ones
    found = [c for c in circles(graph) if tuple(sorted(set(c))) not in KNOWN_CIRCLES]
    assert not found, "import circles (break each: move what both need below them, or pass it in):\n" + \
        "\n".join(describe_circle(c, graph) for c in found)
    gone = KNOWN_CIRCLES - {tuple(sorted(set(c))) for c in circles(graph)}
    assert not gone, f"circles listed in KNOWN_CIRCLES that no longer exist (remove them): {sorted(gone)}"


def test_the_circle_finder_names_direct_long_and_function_local_circles():
    """The check itself can fail: two modules importing each other (one inside a function), a three-module circle,
    and a package importing a module that imports the package back are each reported with the statements."""
    pkg = PACKAGE
    sources = {
        "sslab.a": ("from .b import x\n", pkg / "a.py"),
        "sslab.b": ("def f():\n    from .a import y\n", pkg / "b.py"),
        "sslab.c": ("import sslab.d\n", pkg / "c.py"),
        "sslab.d": ("from . import e\n", pkg / "d.py"),
        "sslab.e": ("from .c import z\n", pkg / "e.py"),
        "sslab.p": ("from .q import w\n", pkg / "p" / "__init__.py"),
        "sslab.p.q": ("from sslab.p import v\nfrom . import r\n", pkg / "p" / "q.py"),
        "sslab.p.r": ("x = 1\n", pkg / "p" / "r.py"),
        "sslab.ok": ("from .a import x\nfrom .p import r\n", pkg / "ok.py"),
    }
    imports = [i for m, (src, path) in sources.items()
               for i in imports_of(src, m, path, is_package=path.name == "__init__.py")]
    graph = import_graph(imports, set(sources))
    found = circles(graph)
    assert sorted(found) == [["sslab.a", "sslab.b", "sslab.a"], ["sslab.c", "sslab.d", "sslab.e", "sslab.c"],
                             ["sslab.p", "sslab.p.q", "sslab.p"]]
    text = describe_circle(["sslab.a", "sslab.b", "sslab.a"], graph)
    assert "src/sslab/a.py:1 (sslab.a): `from .b import x`" in text
    assert "src/sslab/b.py:2 (sslab.b): `from .a import y`" in text
    assert graph["sslab.ok"].keys() == {"sslab.a", "sslab.p.r"}  # `from .p import r`: the module r, not p's __init__


def test_every_module_keeps_the_layering_rules():
    imports = all_imports()
    modules = {imp.module for imp in imports}
    assert {"sslab.build", "sslab.io", "sslab.diagnostics.probe", "sslab.engine.train", "sslab.theory.duality"} <= modules
    problems = violations(imports)
    assert not problems, "layering rules broken:\n" + "\n".join(problems)


def test_the_import_reader_resolves_relative_and_nested_imports_and_reports_them():
    """The checker itself can fail: a theory module that reads a run and an analysis module that imports Lightning,
    both inside functions, are reported with module, line and statement."""
    theory = "import torch\n\ndef f():\n    from ..analysis.run import checkpoint_probe\n    from .. import engine\n"
    found = imports_of(theory, "sslab.theory.duality", PACKAGE / "theory" / "duality.py")
    assert [i.names[0] for i in found] == ["torch", "sslab.analysis.run", "sslab"]
    assert found[2].names[1] == "sslab.engine"
    analysis = "def g():\n    import lightning.pytorch as pl\n"
    found += imports_of(analysis, "sslab.analysis", PACKAGE / "analysis" / "__init__.py", is_package=True)
    problems = violations(found)
    assert len(problems) == 3
    assert "src/sslab/theory/duality.py:4 (sslab.theory.duality)" in problems[0] and "sslab.analysis" in problems[0]
    assert "`from ..analysis.run import checkpoint_probe`" in problems[0]
    assert ":5 " in problems[1] and "sslab.engine" in problems[1]
    assert "src/sslab/analysis/__init__.py:2" in problems[2] and "Lightning" in problems[2]
    pkg = imports_of("from .probe import embedding_stats\n", "sslab.diagnostics", PACKAGE / "diagnostics" / "__init__.py",
                     is_package=True)
    assert pkg[0].names[0] == "sslab.diagnostics.probe"


@pytest.mark.parametrize("modules", ["sslab.analysis, sslab.theory, sslab.evaluate, sslab.build",
                                     "sslab.cli, sslab.io, sslab.diagnostics"])
def test_analysis_theory_eval_and_the_builder_load_no_lightning(modules):
    code = f"import sys, {modules}; bad = sorted(m for m in sys.modules if m.split('.')[0] in {LIGHTNING!r}); " \
           "assert not bad, bad"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
