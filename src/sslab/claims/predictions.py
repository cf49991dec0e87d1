"""The registered predictions (``predictions.yaml``): read, checked against the study's arms and metrics.

The file is the only home of the predictions; :func:`load` returns it as plain data after checking
every field, so a typo in an arm, a metric or a kind fails before any run starts (one line naming
the prediction, the bad value and the valid choices).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .stats import KINDS
from .study import ARMS

PREDICTIONS = Path(__file__).with_name("predictions.yaml")
COLLAPSE_KINDS = ("collapse", "no_collapse")
ALL_KINDS = (*KINDS, *COLLAPSE_KINDS, "correlation")
COLLAPSES = ("dimensional", "complete")
BASES = ("sourced", "our reading")
#: the metrics a run has (:func:`sslab.claims.runs.metrics_of`) and that a contrast may name
METRICS = ("knn", "knn_gain", "random_encoder", "raw_pixels", "center_norm", "aug_mean_norm", "effective_rank",
           "rankme", "log_effective_rank", "center_drop", "center_early", "invariance_gap", "invariance_gap_rise",
           "commutator_drop", "pred_alignment_live", "pred_alignment", "gram_offdiag_mean", "gram_offdiag_var_ratio",
           "rows4_ratio", "predictor_ms", "log_predictor_ms", "step_ms", "predictor_fraction",
           # theory arms (sslab.claims.runs.theory_metrics)
           "log10_balance_residual", "log_commutator_ratio", "log10_parabola_residual", "phase_agreement",
           "collapse_above_threshold", "kept_agreement", "probe_gain")


class PredictionError(ValueError):
    """A predictions file that cannot be judged: the message names the prediction and the bad value."""


@dataclass(frozen=True)
class Prediction:
    id: str
    claim: str
    kind: str
    basis: str
    sesoi: float
    sesoi_why: str
    note: str = ""
    contrast: dict[str, float] = field(default_factory=dict)
    metric: str = ""
    offset: float = 0.0
    collapse: str = ""
    arm: str = ""
    reference: str = ""
    controls: tuple[str, ...] = ()
    arms: tuple[str, ...] = ()  # correlation: the runs' arms (all training arms for "all")
    x: str = ""
    y: str = ""
    sign: str = ""

    def needs(self) -> tuple[str, ...]:
        """Every arm whose runs the prediction reads (controls included)."""
        seen = dict.fromkeys([*self.contrast, *([self.arm, self.reference] if self.arm else []), *self.arms,
                              *self.controls])
        return tuple(a for a in seen if a)

    def plans(self) -> tuple[str, ...]:
        """The arms the prediction makes the study run, gate or give more seeds: :meth:`needs` without a
        correlation's arms (it reads whichever of them ran: every training run of the study)."""
        return tuple(a for a in self.needs() if not (self.kind == "correlation" and a in self.arms))


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    where: str
    words: str
    summary: str
    predictions: tuple[Prediction, ...]

    def arms(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for p in self.predictions:
            seen.update(dict.fromkeys(p.needs()))
        return tuple(seen)


@dataclass(frozen=True)
class Registry:
    """The whole file: claims, the study-wide rules and where it came from (path and SHA-256)."""

    claims: tuple[Claim, ...]
    registered: str
    seeds: dict[str, Any]
    controls: dict[str, Any]
    collapse: dict[str, Any]
    statistics: dict[str, Any]
    pilots: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    path: str
    sha256: str

    def predictions(self) -> list[Prediction]:
        return [p for c in self.claims for p in c.predictions]


def _fail(where: str, what: str) -> PredictionError:
    return PredictionError(f"{where}: {what}")


def _choice(where: str, key: str, value: Any, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise _fail(where, f"{key} '{value}' is not one of: {', '.join(choices)}")


def training_arms() -> tuple[str, ...]:
    return tuple(a for a, arm in ARMS.items() if not arm.timing and not arm.theory)


def _prediction(claim: str, raw: dict[str, Any]) -> Prediction:
    where = f"{claim}/{raw.get('id', '?')}"
    for key in ("id", "kind", "basis", "sesoi", "sesoi_why"):
        if key not in raw and not (key in ("sesoi", "sesoi_why") and raw.get("kind") in COLLAPSE_KINDS):
            raise _fail(where, f"missing '{key}'")
    kind = raw["kind"]
    _choice(where, "kind", kind, ALL_KINDS)
    _choice(where, "basis", raw["basis"], BASES)
    known = {f for f in Prediction.__dataclass_fields__} - {"claim"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _fail(where, f"unknown field '{unknown[0]}'; valid fields: {', '.join(sorted(known))}")
    sesoi = float(raw.get("sesoi", 0.0))
    if sesoi < 0:
        raise _fail(where, f"sesoi {sesoi} must be >= 0")
    contrast = {str(a): float(w) for a, w in (raw.get("contrast") or {}).items()}
    arms = raw.get("arms") or ()
    arms = training_arms() if arms == "all" else tuple(arms)
    controls = tuple(raw.get("controls") or ())
    for arm in (*contrast, *arms, *controls, *(raw[k] for k in ("arm", "reference") if raw.get(k))):
        _choice(where, "arm", arm, list(ARMS))
    if kind in KINDS:
        if not contrast:
            raise _fail(where, "an effect, equivalence or noninferiority prediction needs a 'contrast'")
        _choice(where, "metric", raw.get("metric"), METRICS)
    elif kind in COLLAPSE_KINDS:
        _choice(where, "collapse", raw.get("collapse"), COLLAPSES)
        if not raw.get("arm") or not raw.get("reference"):
            raise _fail(where, "a collapse prediction needs 'arm' and 'reference'")
    else:  # correlation
        _choice(where, "x", raw.get("x"), METRICS)
        _choice(where, "y", raw.get("y"), METRICS)
        _choice(where, "sign", raw.get("sign"), ("negative", "positive"))
        if len(arms) < 3:
            raise _fail(where, "a correlation needs 'arms' (at least 3, or all)")
    return Prediction(id=str(raw["id"]), claim=claim, kind=kind, basis=raw["basis"], sesoi=sesoi,
                      sesoi_why=str(raw.get("sesoi_why", "")), note=str(raw.get("note", "")), contrast=contrast,
                      metric=str(raw.get("metric", "")), offset=float(raw.get("offset", 0.0)),
                      collapse=str(raw.get("collapse", "")), arm=str(raw.get("arm", "")),
                      reference=str(raw.get("reference", "")), controls=controls, arms=arms,
                      x=str(raw.get("x", "")), y=str(raw.get("y", "")), sign=str(raw.get("sign", "")))


def load(path: str | os.PathLike | None = None) -> Registry:
    """The registered predictions in ``path`` (default: the study's own ``predictions.yaml``), checked."""
    path = Path(path) if path is not None else PREDICTIONS
    try:
        text = path.read_text()
        raw = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as e:
        raise PredictionError(f"cannot read predictions file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
        raise PredictionError(f"predictions file {path} has no 'claims' list")
    claims, ids = [], set()
    for c in raw["claims"]:
        for key in ("id", "paper", "where", "words", "summary", "predictions"):
            if key not in c:
                raise _fail(str(c.get("id", "?")), f"missing '{key}'")
        preds = tuple(_prediction(c["id"], p) for p in c["predictions"])
        for p in preds:
            if p.id in ids:
                raise _fail(f"{c['id']}/{p.id}", "duplicate prediction id")
            ids.add(p.id)
        claims.append(Claim(str(c["id"]), str(c["paper"]), str(c["where"]), str(c["words"]), str(c["summary"]), preds))
    return Registry(claims=tuple(claims), registered=str(raw.get("registered", "")), seeds=dict(raw.get("seeds") or {}),
                    controls=dict(raw.get("controls") or {}), collapse=dict(raw.get("collapse") or {}),
                    statistics=dict(raw.get("statistics") or {}), pilots=list(raw.get("pilots") or []),
                    identities=list(raw.get("identities") or []), path=str(path),
                    sha256=hashlib.sha256(text.encode()).hexdigest())


__all__ = ["PREDICTIONS", "Claim", "Prediction", "PredictionError", "Registry", "load"]
