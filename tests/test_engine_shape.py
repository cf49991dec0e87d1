"""The engine reads as small steps: no function in ``sslab/engine`` is longer than 50 lines (issue 22)."""

import ast
from pathlib import Path

import sslab

ENGINE = Path(sslab.__file__).parent / "engine"
LIMIT = 50


def long_functions(source: str, name: str = "<source>") -> list[str]:
    """``name:line function (n lines)`` for each function (methods and nested ones too) over :data:`LIMIT` lines,
    its decorators and docstring included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = node.end_lineno - first + 1
            if lines > LIMIT:
                found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_engine_function_is_over_50_lines():
    files = sorted(ENGINE.glob("*.py"))
    assert {"train.py", "prepare.py", "guard.py"} <= {f.name for f in files}
    found = [hit for f in files for hit in long_functions(f.read_text(), f.name)]
    assert not found, "split these into named steps: " + "; ".join(found)


def test_the_check_sees_a_long_function_and_a_long_method():
    body = "".join(f"    x{i} = {i}\n" for i in range(LIMIT))
    method = "".join("    " + line + "\n" for line in body.splitlines())
    source = f"def short():\n    pass\n\n\ndef long():\n{body}\n\nclass C:\n    def m(self):\n{method}"
    assert [hit.split(" ")[1] for hit in long_functions(source)] == ["long", "m"]
