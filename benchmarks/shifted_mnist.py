"""The shifted_mnist benchmark: each method's default run (``sslab train method=M dataset=shifted_mnist``)
against raw pixels, the random encoder and the two collapsed ablations, over seeds.

Prints a table (kNN and linear top-1, mean ± std over seeds, wall seconds) and writes a JSON of every run.
The runs go through the claims study's runner (``sslab.claims.runs``): parallel single-threaded
workers, and a run already finished in ``--out`` is kept, so a stopped benchmark continues.

    python benchmarks/shifted_mnist.py                             # byol, simclr, simsiam, the ablations; seeds 0 1 2
    python benchmarks/shifted_mnist.py --methods all --seeds 0 --no-ablations --markdown   # docs/methods.md's table
    python benchmarks/shifted_mnist.py --jobs 1                    # one run at a time on all cores (wall times alone)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from sslab.claims.runs import Job, overrides_of, run_jobs
from sslab.claims.stats import mean_std
from sslab.claims.study import ARMS, Arm
from sslab.methods import METHODS

ABLATIONS = {name: ARMS[name] for name in ("byol_no_predictor", "simsiam_no_stop_gradient")}  # the study's arms


def arms_for(methods: list[str], ablations: bool) -> dict[str, Arm]:
    """Each method's shifted_mnist recipe as it is (24 epochs; every run also measures its random encoder and raw
    pixels), and the study's two collapsed ablations."""
    return {**{m: Arm(m) for m in methods}, **(ABLATIONS if ablations else {})}


def baselines_of(record: dict) -> dict:
    return (record.get("summary") or {}).get("baselines") or {}


def table(records: list[dict]) -> tuple[list[str], dict]:
    by_arm: dict[str, list[dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], []).append(r)
    rows, data = [], {}
    baselines = list({r["seed"]: baselines_of(r) for r in records if baselines_of(r)}.values())  # one per seed
    for name, key in (("raw pixels", "raw_pixel"), ("random encoder", "random_init")):
        knn = [b[f"{key}_knn_top1"] for b in baselines]
        lin = [b[f"{key}_linear_top1"] for b in baselines if b.get(f"{key}_linear_top1") is not None]
        rows.append((name, mean_std(knn), mean_std(lin), "-", str(len(knn))))
        data[name] = {"knn": knn, "linear": lin}
    for arm, runs in by_arm.items():
        ok = [r for r in runs if "metrics" in r]
        knn, lin = [r["metrics"]["knn"] for r in ok], [r["metrics"]["linear"] for r in ok if "linear" in r["metrics"]]
        secs = [r["seconds"] for r in ok]
        rows.append((arm, mean_std(knn), mean_std(lin), f"{sum(secs) / max(len(secs), 1):.0f}", str(len(ok))))
        data[arm] = {"knn": knn, "linear": lin, "seconds": secs, "failed": [r["failed"] for r in runs if r.get("failed")]}
    header = ("run", "kNN top-1", "linear top-1", "wall s", "seeds")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    return lines, data


def markdown(records: list[dict]) -> str:
    """docs/methods.md's table: per run, kNN and linear top-1, kNN over the random encoder of the same seed,
    the probe set's center norm and effective rank at the end, wall seconds."""
    random_knn = {r["seed"]: baselines_of(r)["random_init_knn_top1"] for r in records if baselines_of(r)}
    lines = ["| run | family | kNN top-1 | linear top-1 | kNN − random encoder | center norm | effective rank | wall |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        if "metrics" not in r:
            lines.append(f"| `{r['arm']}` (seed {r['seed']}) | failed: {r.get('failed')} | | | | | | |")
            continue
        m, base = r["metrics"], random_knn.get(r["seed"])
        gain = f"{100 * (m['knn'] - base):+.1f}" if base is not None else "-"
        lines.append(f"| `{r['arm']}` (seed {r['seed']}) | {METHODS[r['method']].family} | {m['knn']:.3f} | "
                     f"{m['linear']:.3f} | {gain} | {m['center_norm']:.2f} | {m['effective_rank']:.1f} | "
                     f"{r['seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["byol", "simclr", "simsiam"], help="method names, or all")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--no-ablations", action="store_true", help="leave out BYOL predictor=none / SimSiam without stop-gradient")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default="runs/bench-shifted_mnist")
    p.add_argument("--json", default=None, help="default <out>/shifted_mnist.json")
    p.add_argument("--markdown", action="store_true", help="also print the per-run table of docs/methods.md")
    args = p.parse_args()
    methods = list(METHODS) if args.methods == ["all"] else args.methods
    out = Path(args.out)
    jobs = [Job(name, arm, seed, tuple(overrides_of(arm, seed)), out / "runs" / f"{name}-s{seed}")
            for name, arm in arms_for(methods, not args.no_ablations).items() for seed in args.seeds]
    records = run_jobs(jobs, args.jobs)
    lines, data = table(records)
    print("\n".join(lines))
    if args.markdown:
        print(markdown(records))
    path = Path(args.json) if args.json else out / "shifted_mnist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobs": args.jobs, "cores": os.cpu_count(), "seeds": args.seeds, "summary": data,
                                "runs": [{k: v for k, v in r.items() if k != "trace"} for r in records]}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
