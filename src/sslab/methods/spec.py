"""One spec per method: everything sslab knows about it, registered beside its class.

A :class:`MethodSpec` names the method, its family (the five of ``docs/architecture.md``: what
keeps it from collapsing), the class and the preset options that make it, its default view
pipeline, its paper and official code, and its recipes (dataset -> recipe name). ``sslab list
methods``, the methods table of the docs, the engine's view choice, ``sslab analyze``'s
explanations, config resolution and the parametrised tests all read :data:`METHODS`.

Each family module calls :func:`register` at import, next to the classes it defines.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..data.pipelines import PIPELINES

#: the five families, each with what keeps its methods from collapsing (Garrido et al. 2023; Jha et al. 2024)
FAMILIES: dict[str, str] = {
    "sample-contrastive": "repulsion between samples (negatives in the Gram matrix KᵀK)",
    "dimension-contrastive": "decorrelation or whitening of the embedding dimensions (the covariance KKᵀ)",
    "asymmetric": "a predictor on one branch and a stop-gradient (often an EMA target) on the other",
    "clustering/distillation": "balanced assignments to prototypes (Sinkhorn) or a centred, sharpened teacher",
    "explicit center": "an explicit penalty on the center vector ‖E_x z‖²",
}


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """A method: ``cls(backbone, **{**preset, **options})`` makes it; ``views`` is its view pipeline. Registered by
    keyword (``MethodSpec(name=..., family=..., ...)``): ten fields read as their names, not their places."""

    name: str
    family: str
    cls: type[nn.Module]
    views: str
    description: str
    paper: str
    code: str  # the official implementation (file the defaults come from), or "none"
    preset: dict[str, Any] = field(default_factory=dict)
    recipes: dict[str, str] = field(default_factory=dict)  # dataset -> recipe name
    doc: str = ""  # page under docs/methods/

    def arguments(self) -> dict[str, Any]:
        """Every option the method accepts, with its default after the preset is applied."""
        return {**options_of(self.cls), **self.preset}


def options_of(cls: type) -> dict[str, Any]:
    """The user options of a method class: its constructor's keyword parameters (positional-only
    ones -- the backbone, the parts -- are not options) and, where it passes ``**switches`` on to
    its parent, the parent's, up the class hierarchy."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                out.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


@dataclass(frozen=True)
class ActsWhen:
    """An option that acts only while another option of the same method has certain values (``pred_hidden_dim``
    only with ``predictor=mlp``); given otherwise, it would silently do nothing, so it is refused."""

    option: str  # the switch the error names
    test: Callable[[dict[str, Any]], bool]  # of all the method's options
    text: str  # the condition as a user would type it: "predictor=mlp", "queue_size > 0"


def acts_when_in(option: str, *values: Any) -> ActsWhen:
    return ActsWhen(option, lambda o: o[option] in values, f"{option}={'|'.join(map(str, values))}")


def acts_when_positive(option: str) -> ActsWhen:
    return ActsWhen(option, lambda o: o[option] is not None and o[option] > 0, f"{option} > 0")


def conditions_of(cls: type) -> dict[str, ActsWhen]:
    """``{option: condition}`` of a method class: its classes' ``acts_when`` mappings, the subclass's first."""
    out: dict[str, ActsWhen] = {}
    for klass in cls.__mro__:
        for name, cond in vars(klass).get("acts_when", {}).items():
            out.setdefault(name, cond)
    return out


def inert_options(name: str, given: dict[str, Any], typed: set[str] | None = None) -> None:
    """Raise ``ValueError`` if an option in ``typed`` (default: all of ``given``) would not act on method ``name``
    with the options ``given`` (and its preset): one line naming it, the condition under which it acts, and the
    option that decides it."""
    spec = method_spec(name)
    options = {**spec.arguments(), **given}
    for key in sorted(given if typed is None else typed & set(given)):
        cond = conditions_of(spec.cls).get(key)
        if cond is not None and not cond.test(options):
            raise ValueError(f"option '{key}' does nothing for method {name} with {cond.option}={options[cond.option]!r}: "
                             f"it acts only when {cond.text}; leave it out or set {cond.option}")


#: name -> spec, in registration order (family modules register at import)
METHODS: dict[str, MethodSpec] = {}


def mnist_recipes(name: str) -> dict[str, str]:
    """A method's CPU recipes: ``<name>_mnist5k`` (ours), and the same method settings on the
    ``shifted_mnist`` base (``<name>_mnist5k@shifted_mnist``)."""
    return {"mnist5k": f"{name}_mnist5k", "shifted_mnist": f"{name}_mnist5k@shifted_mnist"}


def standard_recipes(name: str) -> dict[str, str]:
    """:func:`mnist_recipes` and the recipes of the peers' tables: solo-learn's CIFAR-10/100 (one
    recipe, the dataset a row: ``<name>_cifar``) and ImageNet-100 (``<name>_imagenet100``) settings."""
    return {**mnist_recipes(name), "cifar10": f"{name}_cifar", "cifar100": f"{name}_cifar",
            "imagenet100": f"{name}_imagenet100"}


def register(*specs: MethodSpec) -> None:
    """Add specs to :data:`METHODS`; a spec must name a known family and view pipeline and
    only preset options its class accepts."""
    for spec in specs:
        if spec.name in METHODS:
            raise ValueError(f"method '{spec.name}' is registered twice")
        if spec.family not in FAMILIES:
            raise ValueError(f"method '{spec.name}': unknown family '{spec.family}'; valid choices: {', '.join(FAMILIES)}")
        if spec.views not in PIPELINES:
            raise ValueError(f"method '{spec.name}': unknown view pipeline '{spec.views}'; valid choices: "
                             f"{', '.join(PIPELINES)}")
        unknown = sorted(set(spec.preset) - set(options_of(spec.cls)))
        if unknown:
            raise ValueError(f"method '{spec.name}': preset option '{unknown[0]}' is not an option of {spec.cls.__name__}")
        METHODS[spec.name] = spec


def method_spec(name: str) -> MethodSpec:
    """The spec of method ``name``; a one-line error listing the valid names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method '{name}'; valid choices: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_arguments(name: str) -> dict[str, Any]:
    """Every keyword method ``name`` accepts, with its default after the preset is applied."""
    return method_spec(name).arguments()


def build_method(name: str, backbone: nn.Module, **overrides: Any) -> nn.Module:
    """Instantiate method ``name`` on ``backbone``; ``overrides`` replace preset values, and each must act."""
    return method_of(name, backbone, overrides, typed=set(overrides))


def method_of(name: str, backbone: nn.Module, options: dict[str, Any], typed: set[str]) -> nn.Module:
    """Method ``name`` on ``backbone`` with ``options`` over its preset; of those, the ``typed`` ones (what a user
    wrote, not a recipe's shared settings -- a recipe may set ``pred_hidden_dim`` for its rows that switch to an MLP
    predictor) must act (:func:`inert_options`)."""
    spec = method_spec(name)
    valid = spec.arguments()
    bad = [k for k in options if k not in valid]
    if bad:
        raise ValueError(f"unknown option '{bad[0]}' for method '{name}'; valid choices: {', '.join(sorted(valid))}")
    inert_options(name, options, typed)
    return spec.cls(backbone, **{**spec.preset, **options})
