"""The theory lab's registry: ``sslab theory list`` and ``sslab theory NAME [key=value ...] [--out DIR] [--json]``.

Every experiment takes its options as ``key=value`` (values read as YAML: numbers, ``null``,
``true``, lists ``[0.1,0.2]``), writes PNG figures and ``<name>.json`` (options + numbers) into
the output folder, and returns the numbers. An experiment that checks an embedding matrix
(``duality``) also takes the matrix itself, ``embeddings=(z, description)``: that is how a run's
embeddings reach theory (``sslab.analysis.probe_embedding_matrix`` reads them; theory reads no run
folders).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from . import center_toy, directset, duality, tian_experiments


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    defaults: dict
    run: Callable[..., dict]  # run(options, out) -> numbers; with takes_embeddings also embeddings=(z, description)
    takes_embeddings: bool = False


EXPERIMENTS = {e.name: e for e in (
    Experiment("tian-modes", "per-mode ODE of Tian et al. (Eqns 11-13): final p_j, s_j vs the closed-form p*± and Eqn 14",
               tian_experiments.MODES_DEFAULTS, tian_experiments.run_modes),
    Experiment("tian-linear", "matrix gradient flow (Eqns 2-4) vs SGD on a linear BYOL/SimSiam network; Theorems 1-3",
               tian_experiments.LINEAR_DEFAULTS, tian_experiments.run_linear),
    Experiment("tian-phase", "collapse phase diagram over weight decay x predictor rate: per-mode ODE and linear SGD",
               tian_experiments.PHASE_DEFAULTS, tian_experiments.run_phase),
    Experiment("directset", "DirectSet(α) in a linear network: weight decay as a threshold on augmentation variance; "
               "few-label probe", directset.DEFAULTS, directset.run_directset),
    Experiment("duality", "Theorem 3.3 and Corollary 3.4.1 of Garrido et al. on any embedding matrix (file, run or random)",
               duality.DEFAULTS, duality.run_duality, takes_embeddings=True),
    Experiment("center-toy", "Jha et al.'s toy: alignment alone collapses, alignment + center penalty does not",
               center_toy.DEFAULTS, center_toy.run_center_toy),
)}


def parse_options(name: str, overrides: list[str]) -> dict:
    """The experiment's defaults with ``key=value`` overrides applied (typed like the default)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown theory experiment '{name}'; choose from {', '.join(EXPERIMENTS)}")
    options = dict(EXPERIMENTS[name].defaults)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"malformed option '{item}': use key=value")
        if key not in options:
            raise ValueError(f"unknown option '{key}' for {name}; valid: {', '.join(options)}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ValueError(f"option {key}: cannot read value '{raw}'") from None
        default = options[key]
        if isinstance(default, list) and not isinstance(value, list):
            value = [value]
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif default is not None and value is not None and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, (int, float))):
            raise ValueError(f"option {key} expects {type(default).__name__}, got '{raw}'")
        _check_range(key, value, raw)
        options[key] = value
    return options


#: options that must be > 0 (the rest of the numbers: >= 0; counts: >= 1; seeds: >= 0)
POSITIVE = ("lr", "t_end", "alpha_p", "init_scale", "keep", "tau0")


def _check_range(key: str, value, raw: str) -> None:
    """Counts (integer options) are >= 1 (seeds >= 0), other numbers finite and >= 0 (> 0 for :data:`POSITIVE`)."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, int):
            low = 0 if key == "seed" else 1
            if v < low:
                raise ValueError(f"option {key}={raw}: must be an integer >= {low}")
        elif not math.isfinite(v) or v < 0 or (key in POSITIVE and v == 0):
            raise ValueError(f"option {key}={raw}: must be a finite number {'> 0' if key in POSITIVE else '>= 0'}")


def _plain(obj):
    """JSON-ready copy (numpy scalars/arrays to Python, non-finite floats kept as strings)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def run_experiment(name: str, overrides: list[str] | None = None, out: str | Path | None = None,
                   embeddings: tuple[torch.Tensor, str] | None = None) -> dict:
    """Run one experiment; writes its figures and ``<name>.json`` into ``out`` (default ``theory/<name>``).
    ``embeddings``: an ``(N, M)`` matrix and where it came from, checked instead of the one the options
    name (only experiments with ``takes_embeddings``, i.e. ``duality``)."""
    options = parse_options(name, overrides or [])
    out = Path(out) if out is not None else Path("theory") / name
    experiment = EXPERIMENTS[name]
    if embeddings is None:
        result = experiment.run(options, out)
    elif experiment.takes_embeddings:
        result = experiment.run(options, out, embeddings=embeddings)
    else:
        raise ValueError(f"theory experiment '{name}' takes no embedding matrix; "
                         f"only {', '.join(e.name for e in EXPERIMENTS.values() if e.takes_embeddings)} do")
    record = _plain({"experiment": name, "options": options, "result": result, "folder": str(out)})
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def summary_lines(record: dict) -> list[str]:
    """A short human-readable account: scalars and short lists of the result (long series left to the JSON)."""
    lines = [f"{record['experiment']}  ->  {record['folder']}"]
    result = record["result"]
    if record["experiment"] == "tian-modes":
        o = record["options"]
        lines.append(f"{'mode':>4} {'p0':>8} {'s0':>8} {'p(T)':>10} {'s(T)':>10}  collapsed")
        for j, (p, s, c) in enumerate(zip(result["final_p"], result["final_s"], result["collapsed"])):
            p0, s0 = o["p0"][j] if j < len(o["p0"]) else o["p0"][-1], o["s0"][j] if j < len(o["s0"]) else o["s0"][-1]
            lines.append(f"{j:>4} {p0:>8.4g} {s0:>8.4g} {p:>10.5g} {s:>10.5g}  {c}")
    for key, value in result.items():
        skip = key in ("final_p", "final_s", "collapsed", "grid", "rows", "history")
        if skip or isinstance(value, dict) and "history" in value:
            if isinstance(value, dict) and "final_center_norm" in value:
                lines.append(f"{key}: final center norm {value['final_center_norm']:.4f}, "
                             f"aug-mean norm {value['final_aug_mean_norm']:.4f}")
            continue
        if isinstance(value, list) and (len(value) > 12 or any(isinstance(v, (list, dict)) for v in value)):
            continue
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()
                              if not isinstance(v, dict) and not (isinstance(v, list) and len(v) > 12))
            lines.append(f"{key}: {inner}")
        else:
            lines.append(f"{key}: {_fmt(value)}")
    return lines


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)
