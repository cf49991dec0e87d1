"""Which runs the study makes: the arms the predictions need, the tuning runs, and each round's jobs.

Tuning (Garrido et al.'s claims are about *careful tuning*): each value of a tuned arm's grid trains
once (the first seed) on the training split minus :data:`~.study.HOLDOUT` held-out images, is scored
by kNN on those held-out images -- never on the test split -- and the best value is kept. Every tuned
arm gets the same number of values (the same budget). An arm whose ``tune`` names another arm
(``{"temperature": "simclr_tuned"}``) takes that arm's choice; a key that names another key of the
same arm (``{"std_coeff": "sim_coeff"}``) follows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .judge import control, values_of
from .predictions import Registry, training_arms
from .runs import Job, finished, overrides_of, run_jobs, theory_overrides
from .study import ARMS, HOLDOUT, QUICK_EPOCHS, QUICK_TUNE_VALUES, tuned_keys


def needed_arms(registry: Registry, only: Iterable[str] | None = None) -> list[str]:
    """The arms the predictions read (in the study's order), restricted to ``only`` when given; a correlation
    over "all" arms reads whichever training arms run."""
    want: set[str] = set()
    for p in registry.predictions():
        want.update(p.plans())
    for a in list(want):  # an arm tuned after another arm needs that arm's tuning
        want.update(v for v in ARMS[a].tune.values() if isinstance(v, str) and v in ARMS)
    if any(ARMS[a].timing for a in want):  # the cost table: every size, they take seconds
        want.update(a for a in ARMS if ARMS[a].timing)
    if only is not None:
        want &= set(only)
    return [a for a in ARMS if a in want]


def control_arms(registry: Registry, first_only: bool = False) -> set[str]:
    """Every arm some prediction names as a positive control (``first_only``: its first-named control)."""
    return {a for p in registry.predictions() for a in (p.controls[:1] if first_only else p.controls)}


def gated_arms(registry: Registry, names: Iterable[str], records: list[dict]) -> list[str]:
    """The arms not worth running: every prediction that reads them leans on a control that has *failed* in
    ``records`` (mean gain below the margin: those predictions are "not tested here" whatever the arm does; an
    unclear control gates nothing). A control arm is gated only when every prediction that reads it also leans on
    another, failed control."""
    vals = values_of(records)
    margin = float(registry.controls.get("margin", 0.05))
    failed = {a for a in control_arms(registry) if vals.get(a) and control(a, vals, margin)["status"] == "failed"}
    readers: dict[str, list] = {}
    for p in registry.predictions():
        for a in p.plans():
            readers.setdefault(a, []).append(p)
    return [a for a in names if a not in failed and readers.get(a)
            and all((set(p.controls) - {a}) & failed for p in readers[a])]


def _grid(name: str, quick: bool) -> list[dict[str, Any]]:
    """The tuning grid of arm ``name`` as override dicts (its followers included)."""
    arm = ARMS[name]
    ((key, values),) = tuned_keys(arm).items()  # one tuned key per arm (the file's design: one knob each)
    followers = [k for k, v in arm.tune.items() if v == key]
    return [{key: v, **dict.fromkeys(followers, v)} for v in (values[:QUICK_TUNE_VALUES] if quick else values)]


def _epochs(name: str, quick: bool) -> int:
    return QUICK_EPOCHS if quick else ARMS[name].epochs


def _label(values: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in values.items())


def tune(names: list[str], out: Path, settings: tuple[str, ...], quick: bool = False, parallel: int = 2,
         seed: int = 0) -> tuple[dict[str, dict[str, Any]], list[dict]]:
    """Every tuned arm's grid on the held-out split; returns ``({arm: chosen overrides}, tuning records)``."""
    own = [a for a in names if tuned_keys(ARMS[a])]
    jobs = [Job(f"{a}~{_label(v)}", ARMS[a], seed,
                tuple(overrides_of(ARMS[a], seed, settings, tuned=v, epochs=_epochs(a, quick), holdout=HOLDOUT)),
                out / "tuning" / f"{a}~{_label(v)}", kind="tuning")
            for a in own for v in _grid(a, quick)]
    records = run_jobs(jobs, parallel) if jobs else []
    vals = values_of(records)
    chosen: dict[str, dict[str, Any]] = {}
    for a in own:
        scored = [(vals.get(f"{a}~{_label(v)}", {}).get("knn", {}).get(seed, float("-inf")), i, v)
                  for i, v in enumerate(_grid(a, quick))]
        chosen[a] = max(scored, key=lambda t: (t[0], -t[1]))[2]  # ties: the first value of the grid
    for a in names:
        borrowed = {k: chosen[v][k] for k, v in ARMS[a].tune.items() if isinstance(v, str) and v in chosen}
        if borrowed:
            chosen[a] = {**chosen.get(a, {}), **borrowed}
    return chosen, records


def jobs_for(names: Iterable[str], seeds: Iterable[int], out: Path, settings: tuple[str, ...],
             tuned: dict[str, dict[str, Any]], quick: bool = False) -> list[Job]:
    """One round's jobs: every arm in ``names`` at every seed (timing and theory arms included), tuned."""
    return [Job(a, ARMS[a], s, tuple(theory_overrides(ARMS[a], s) if ARMS[a].theory else
                                     overrides_of(ARMS[a], s, settings, tuned=tuned.get(a), epochs=_epochs(a, quick))),
                out / "runs" / f"{a}-s{s}", kind=_kind(ARMS[a]))
            for a in names for s in seeds]


def run_jobs_for(names: Iterable[str], seeds: Iterable[int], out: Path, settings: tuple[str, ...],
                 tuned: dict[str, dict[str, Any]], quick: bool = False, parallel: int = 2) -> list[dict]:
    """Run one round (:func:`jobs_for`); finished jobs are read back."""
    return run_jobs(jobs_for(names, seeds, out, settings, tuned, quick), parallel)


def estimate_seconds(jobs: list[Job], records: list[dict], parallel: int) -> float:
    """The wall time the unfinished ``jobs`` would take: each at its arm's mean run time so far (the mean of all
    training runs for an arm without one), ``parallel`` at a time; finished jobs cost nothing."""
    ran = [r for r in records if r.get("kind") == "run" and r.get("seconds")]
    overall = sum(r["seconds"] for r in ran) / max(1, len(ran))
    by_arm: dict[str, list[float]] = {}
    for r in ran:
        by_arm.setdefault(r["arm"], []).append(r["seconds"])
    todo = [j for j in jobs if j.kind == "run" and finished(j) is None]
    return sum(sum(by_arm.get(j.name, [overall])) / len(by_arm.get(j.name, [overall])) for j in todo) / max(1, parallel)


def _kind(arm) -> str:
    return "timing" if arm.timing else "theory" if arm.theory else "run"


__all__ = ["control_arms", "estimate_seconds", "gated_arms", "jobs_for", "needed_arms", "run_jobs_for", "training_arms",
           "tune"]
