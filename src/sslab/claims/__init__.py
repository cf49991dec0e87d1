"""``sslab reproduce claims``: the four papers' claims as registered predictions, judged on shifted_mnist.

:mod:`.predictions` reads the registered predictions (``predictions.yaml``, their only home),
:mod:`.study` defines the arms, :mod:`.plan` turns them into runs (tuning on a held-out split,
seeds in rounds), :mod:`.runs` trains them (parallel, resumable), :mod:`.stats` and :mod:`.judge`
give the paired intervals, controls and verdicts, :mod:`.report` writes ``docs/claims.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from .judge import judge, underpowered_arms
from .plan import control_arms, estimate_seconds, gated_arms, jobs_for, needed_arms, run_jobs_for, tune
from .predictions import PREDICTIONS, PredictionError, load
from .report import write_report
from .runs import run_jobs
from .study import ARMS, QUICK_ARMS, QUICK_SETTINGS, SETTINGS

DEFAULT_REPORT = Path("docs") / "claims.md"


def run_study(out: str | os.PathLike = "runs/claims", quick: bool = False, report: str | os.PathLike | None = None,
              jobs: int | None = None, seeds: list[int] | None = None, arms: list[str] | None = None,
              predictions: str | os.PathLike | None = None) -> dict:
    """Tune, train every arm the registered predictions need over the first round of seeds, add rounds of
    seeds for underpowered predictions by the file's stopping rule, judge every claim, write the report
    (default ``docs/claims.md``; ``<out>/claims.md`` for ``quick``: one seed, 1 epoch, the quick arms).
    Returns ``{"report": path, "claims": [...]}``."""
    registry = load(predictions)
    out = Path(out)
    unknown = [a for a in arms or () if a not in ARMS]
    if unknown:
        raise PredictionError(f"unknown arm '{unknown[0]}'; valid choices: {', '.join(ARMS)}")
    names = needed_arms(registry, arms or (QUICK_ARMS if quick else None))
    settings = QUICK_SETTINGS if quick else SETTINGS
    plan = registry.seeds
    first = list(seeds if seeds is not None else ([0] if quick else plan.get("initial", [0, 1, 2])))
    rounds = [] if quick or seeds is not None else [list(r) for r in plan.get("rounds", [])]
    budget = 60 * float(plan.get("budget_minutes", 120))
    parallel = jobs or min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    tuned, tuning_records = tune(names, out, settings, quick=quick, parallel=parallel)
    # the references first (each prediction's first-named control, then the others not yet gated): an arm read only
    # by predictions whose positive control failed is not run at all
    records: list[dict] = []
    skipped: list[str] = []
    for phase in (control_arms(registry, first_only=True), control_arms(registry), set(names)):
        skipped = gated_arms(registry, names, records)
        todo = [a for a in names if a in phase and a not in skipped and not any(r["arm"] == a for r in records)]
        records += run_jobs_for(todo, first, out, settings, tuned, quick=quick, parallel=parallel)
    skipped = gated_arms(registry, names, records)
    names = [a for a in names if a not in skipped]
    results = judge(registry, records)
    stopped, done_rounds = "", [first]
    for extra in rounds:
        more = sorted(underpowered_arms(results, registry) & set(names))
        if not more:
            stopped = "no prediction is underpowered"
            break
        jobs = jobs_for(more, extra, out, settings, tuned, quick)
        estimate = estimate_seconds(jobs, records, parallel)
        elapsed = _wall(out)["seconds"] + time.perf_counter() - t0
        if elapsed + estimate > budget:
            stopped = (f"the next round (seeds {', '.join(map(str, extra))} for {len(more)} arms, about "
                       f"{estimate / 60:.0f} min) would pass the {budget / 60:.0f}-minute budget at {elapsed / 60:.0f} min")
            break
        records += run_jobs(jobs, parallel)
        done_rounds.append(extra)
        results = judge(registry, records)
    else:
        stopped = stopped or ("one round (--seeds or --quick)" if not rounds else "after the last round of seeds")
    wall = _add_wall_time(out, time.perf_counter() - t0)
    header = {"command": "sslab reproduce claims" + (" --quick" if quick else ""), "date": date.today().isoformat(),
              "commit": _commit(), "predictions": registry.path, "predictions_sha256": registry.sha256,
              "registered": registry.registered, "runs": sum(1 for r in records if r.get("kind") == "run"),
              "failed": sum(1 for r in records if r.get("failed")), "minutes": wall["seconds"] / 60,
              "invocations": wall["invocations"], "cores": os.cpu_count(), "torch": torch.__version__,
              "python": platform.python_version(), "settings": list(settings), "rounds": done_rounds,
              "stopping": stopped, "arms": names, "skipped": skipped, "jobs": parallel, "tuned": tuned}
    path = Path(report) if report else (out / "claims.md" if quick else DEFAULT_REPORT)
    write_report(registry, results, records + tuning_records, path, header)
    for c in results:
        print(f"{c['id']}: {c['verdict']}", file=sys.stderr)
    return {"report": str(path), "claims": results}


def _commit() -> str:
    """The commit the predictions file was read at (``git describe --always --dirty``), or "unknown"."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=PREDICTIONS.parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _wall(out: Path) -> dict:
    path = out / "wall.json"
    return json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "invocations": 0}


def _add_wall_time(out: Path, seconds: float) -> dict:
    """The study's wall time over every invocation into ``out`` (a resumed study adds to it), in ``out/wall.json``."""
    wall = _wall(out)
    wall = {"seconds": wall["seconds"] + seconds, "invocations": wall["invocations"] + 1}
    out.mkdir(parents=True, exist_ok=True)
    (out / "wall.json").write_text(json.dumps(wall) + "\n")
    return wall


__all__ = ["ARMS", "run_study"]
