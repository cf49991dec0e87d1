"""Training-step cost of the diagnostics monitor: the same run with diagnostics off and every K steps.

Trains the default method (recipe ``<method>_mnist5k``) for a few epochs per setting, alternating
settings over ``--repeats`` rounds, and compares training throughput (images/s from
``summary.json``, evaluation excluded). Prints a table and writes JSON.

    python benchmarks/diagnostics_overhead.py [--method byol] [--epochs 3] [--every 0 50 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def run(method: str, epochs: int, every: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "sslab", "train", f"method={method}", f"epochs={epochs}", f"diagnostics.every={every}",
           "eval.linear=false", "eval.baselines=false", "eval.knn_every=0", "progress=false", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return json.loads((out / "summary.json").read_text())["images_per_second"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="byol")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--every", type=int, nargs="+", default=[0, 50, 10])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/diagnostics_overhead.json")
    a = p.parse_args()
    speeds: dict[int, list[float]] = {e: [] for e in a.every}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for e in a.every:
                speeds[e].append(run(a.method, a.epochs, e, Path(tmp) / f"{e}_{r}"))
    base = statistics.median(speeds[a.every[0]])
    rows = []
    print(f"{'diagnostics.every':>18} {'img/s (median)':>15} {'slowdown':>9}")
    for e in a.every:
        med = statistics.median(speeds[e])
        rows.append({"every": e, "images_per_second": speeds[e], "median": med, "slowdown": 1 - med / base})
        print(f"{e:>18} {med:>15.1f} {100 * (1 - med / base):>8.1f}%")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"method": a.method, "epochs": a.epochs, "torch": torch.__version__,
                                       "threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
