"""``sslab reproduce claims``: the four papers' claims tested on shifted_mnist with seeds and error bars.

:mod:`.study` defines the arms and the claims, :mod:`.stats` the verdict rule, :mod:`.runs` trains
the arms (parallel, resumable), :mod:`.report` computes the verdicts and writes the report.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

from .report import evaluate, values, write_report
from .runs import TIMING_STEPS, run_arms
from .study import ARMS, CLAIMS, QUICK_ARMS, QUICK_SETTINGS, SEEDS, SETTINGS, claims_for

DEFAULT_REPORT = Path("docs") / "claims.md"


def run_study(out: str | os.PathLike = "runs/claims", quick: bool = False, report: str | os.PathLike | None = None,
              jobs: int | None = None, seeds: list[int] | None = None, arms: list[str] | None = None) -> dict:
    """Train every arm over ``seeds`` (``quick``: one seed of :data:`QUICK_ARMS`, 1 epoch), judge every
    claim whose arms ran, and write the report (default ``docs/claims.md``; ``<out>/claims.md`` for
    ``quick``). Returns ``{"report": path, "claims": [...]}``."""
    out = Path(out)
    names = list(arms or (QUICK_ARMS if quick else ARMS))
    seeds = list(seeds if seeds is not None else (SEEDS[:1] if quick else SEEDS))
    jobs = jobs or min(2, os.cpu_count() or 1)
    t0 = time.perf_counter()
    unknown = [a for a in names if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm '{unknown[0]}'; valid choices: {', '.join(ARMS)}")
    records = run_arms({n: ARMS[n] for n in names}, seeds, out, QUICK_SETTINGS if quick else SETTINGS, jobs=jobs,
                       timing_steps=20 if quick else TIMING_STEPS)
    wall = _add_wall_time(out, time.perf_counter() - t0)
    vals = values(records)
    results = [evaluate(c, vals) for c in claims_for(set(names))]
    command = "sslab reproduce claims" + (" --quick" if quick else "")
    header = {"command": command, "date": date.today().isoformat(),
              "runs": sum(1 for r in records if "metrics" in r and "predictor_ms" not in r["metrics"]),
              "failed": sum(1 for r in records if r.get("failed")),
              "minutes": wall["seconds"] / 60, "invocations": wall["invocations"], "cores": os.cpu_count(),
              "torch": torch.__version__,
              "python": platform.python_version(), "settings": list(QUICK_SETTINGS if quick else SETTINGS),
              "seeds": seeds, "arms": names, "jobs": jobs}
    path = Path(report) if report else (out / "claims.md" if quick else DEFAULT_REPORT)
    write_report(results, records, path, header)
    for r in results:
        print(f"{r['id']}: {r['verdict']}", file=sys.stderr)
    return {"report": str(path), "claims": results}


def _add_wall_time(out: Path, seconds: float) -> dict:
    """The study's wall time over every invocation into ``out`` (a resumed study adds to it), in ``out/wall.json``."""
    path = out / "wall.json"
    wall = json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "invocations": 0}
    wall = {"seconds": wall["seconds"] + seconds, "invocations": wall["invocations"] + 1}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wall) + "\n")
    return wall


__all__ = ["ARMS", "CLAIMS", "run_study"]
