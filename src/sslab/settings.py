"""What a setting is, declared once: a dataclass field that also carries its check, its resume policy and its help.

``epochs: int = setting(15, at_least(1), resume="grow", help="passes over the training split")`` is the
whole of what sslab knows about ``epochs``; everything else is read from the declarations:

- validation (:func:`problems`, used by :func:`sslab.validate.check_config`): each setting's
  :class:`Check` -- a range or a set of choices -- on its resolved value;
- the resume policy (:func:`resume_policy`, used by ``sslab.engine.runfolder.resume_changes``):
  ``fixed`` (the default: what the checkpoint holds or how it continues), ``free`` (how the run is
  evaluated, logged, placed or computed) or ``grow`` (``epochs``: any length the checkpoint has not
  trained past);
- the dotted keys of the sections (:func:`declared`, :func:`flatten`, :func:`nest`, :func:`lookup`):
  a field declared with :func:`section` holds a dataclass of settings, addressed as ``optim.lr``;
- the key list of ``sslab train --help`` (:func:`describe`).

Nothing here imports the rest of sslab: the settings themselves are in :mod:`sslab.config`, and choices
defined in lower modules (the optimisers, the decoders) are given as functions, read when checked.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

RESUME = ("fixed", "free", "grow")


class ConfigError(ValueError):
    """A bad key or value; the message is one line naming it and the valid choices."""


@dataclass(frozen=True)
class Check:
    """``ok(value)`` is the test; ``valid`` says what passes (a function for choices read when checked).
    ``None`` always passes: it means "the default" for the settings that may be None."""

    ok: Callable[[Any], bool]
    valid: str | Callable[[], str]

    def describe(self) -> str:
        return self.valid() if callable(self.valid) else self.valid

    def passes(self, value: Any) -> bool:
        if value is None:
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return bool(self.ok(value))


def at_least(low: float, integer: bool = True) -> Check:
    return Check(lambda v: v >= low, f">= {low}" + (" (an integer)" if integer else ""))


def above(low: float) -> Check:
    return Check(lambda v: v > low, f"> {low}")


def within(low: float, high: float, closed_high: bool = True) -> Check:
    if closed_high:
        return Check(lambda v: low <= v <= high, f"{low} to {high}")
    return Check(lambda v: low <= v < high, f"{low} to {high} (excluded)")


def one_of(choices: tuple[str, ...] | Callable[[], tuple[str, ...]]) -> Check:
    """A name among ``choices``: a tuple, or a function returning one (for choices a lower module defines, read
    only when a config is checked, so that declaring a setting imports nothing)."""
    names = choices if callable(choices) else (lambda: choices)
    return Check(lambda v: v in names(), lambda: ", ".join(names()))


def satisfies(ok: Callable[[Any], bool], valid: str) -> Check:
    """Any other test, e.g. a ``[low, high]`` pair."""
    return Check(ok, valid)


@dataclass(frozen=True)
class Meta:
    """What :func:`setting` stores in a field's metadata."""

    check: Check | None
    resume: str
    help: str


@dataclass(frozen=True)
class Setting:
    """One declared setting, as :func:`declared` lists them: its dotted key, default and declaration."""

    key: str
    default: Any
    check: Check | None
    resume: str
    help: str


def setting(default: Any, check: Check | None = None, *, resume: str = "fixed", help: str) -> Any:
    """A dataclass field for a setting. A list or dict default is copied for each instance (``default_factory``).
    ``resume`` says whether ``sslab train --resume`` may change it (see :data:`RESUME`)."""
    if resume not in RESUME:
        raise ValueError(f"resume={resume!r}; valid choices: {', '.join(RESUME)}")
    metadata = {"setting": Meta(check, resume, help)}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def section(cls: type, *, help: str) -> Any:
    """A field holding a dataclass of settings (``optim``, ``eval``, ...): its keys are dotted, ``optim.lr``."""
    return dataclasses.field(default_factory=cls, metadata={"section": cls, "help": help})


def sections(cls: type) -> dict[str, type]:
    """``cls``'s section fields: name -> the section's dataclass."""
    return {f.name: f.metadata["section"] for f in dataclasses.fields(cls) if "section" in f.metadata}


def declared(cls: type, prefix: str = "") -> Iterator[Setting]:
    """Every setting of ``cls``, sections expanded in place, in declaration order."""
    for f in dataclasses.fields(cls):
        if "section" in f.metadata:
            yield from declared(f.metadata["section"], f"{prefix}{f.name}.")
            continue
        meta = f.metadata.get("setting")
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting() or section()")
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        yield Setting(f"{prefix}{f.name}", default, meta.check, meta.resume, meta.help)


def flatten(tree: dict[str, Any], cls: type) -> dict[str, Any]:
    """A config mapping (``config.yaml``, a recipe) with its sections' keys dotted: ``{"optim": {"lr": 0.1}}`` ->
    ``{"optim.lr": 0.1}``. Other values, mappings included (``method_args``), are kept as they are."""
    out: dict[str, Any] = {}
    inner = sections(cls)
    for key, value in tree.items():
        if key in inner and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flatten(value, inner[key]).items()})
        else:
            out[key] = value
    return out


def nest(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """:func:`flatten` undone: ``(dotted key, value)`` pairs, in order, as nested mappings (a later pair sets into,
    or replaces, what an earlier one set)."""
    tree: dict[str, Any] = {}
    for key, value in items:
        *path, last = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def lookup(obj: Any, key: str) -> Any:
    """The value of a dotted key on a config object: ``lookup(cfg, "optim.lr")``."""
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def problems(obj: Any) -> Iterator[tuple[str, Any, str]]:
    """``(key, value, what is valid)`` for each setting of ``obj`` whose value fails its check, in declaration order."""
    for s in declared(type(obj)):
        if s.check is not None:
            value = lookup(obj, s.key)
            if not s.check.passes(value):
                yield s.key, value, s.check.describe()


def resume_policy(cls: type) -> dict[str, str]:
    """Dotted key -> ``fixed`` | ``free`` | ``grow``."""
    return {s.key: s.resume for s in declared(cls)}


def describe(cls: type) -> list[str]:
    """One line per setting: ``key=default``, its help and its check (``[> 0]``, ``[adamw, sgd, ...]``), marked ``*``
    where a resume may change it."""
    rows = [(f"{s.key}={_yaml_text(s.default)}", s) for s in declared(cls)]
    width = max(len(head) for head, _ in rows)
    return [f"{'*' if s.resume != 'fixed' else ' '} {head:<{width}}  {s.help}" + (f" [{s.check.describe()}]" if s.check else "")
            for head, s in rows]


def _yaml_text(value: Any) -> str:
    """``value`` as it is typed on the command line (YAML): ``null``, ``true``, ``{}``."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return "{}" if value == {} else str(value)


__all__ = ["RESUME", "Check", "ConfigError", "Setting", "above", "at_least", "declared", "describe", "flatten", "lookup",
           "nest", "one_of", "problems", "resume_policy", "satisfies", "section", "sections", "setting", "within"]
