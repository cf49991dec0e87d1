"""Training-step cost of the diagnostics monitor: the same run with diagnostics off and every K steps.

Two measurements, both printed as tables and written to one JSON:

1. unit costs, in one process: the median time of a training step (views, forward, backward,
   optimiser, after_step) and of one monitor call (batch statistics, probe-set forward and
   statistics, spectrum and predictor modes for the trace) -> the overhead every K steps costs,
   t_diag / (K · t_step), free of run-to-run noise;
2. end to end: the recipe ``<method>_mnist5k`` trained for a few epochs per setting, settings
   alternated over ``--repeats`` rounds, training throughput from ``summary.json``.

    python benchmarks/diagnostics_overhead.py [--method byol] [--epochs 3] [--every 0 50 10] [--repeats 2] [--unit-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import sslab


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def unit_costs(method: str, repeats: int = 20) -> dict:
    """Median ms of one training step and of one diagnostics call, on the recipe's model and data."""
    from sslab.build import build, probe_images
    from sslab.config import resolve
    from sslab.diagnostics import probe as monitor

    torch.manual_seed(0)
    cfg = resolve(None, [f"method={method}"])
    built = build(cfg)
    pretrain, pipe, model = built.pretrain, built.pipeline, built.method
    images = pretrain.images[: cfg.batch_size]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    last = {}
    model.configure_schedule(steps_per_epoch=repeats + 1, total_steps=repeats + 1)  # the warm-up and timed steps
    steps = iter(range(repeats + 1))

    def step() -> None:
        out = sslab.step(model, opt, pipe(images, g), next(steps))
        last["z"] = [z.detach() for z in out.embeddings]

    views = monitor.probe_views(pipe, probe_images(pretrain, cfg.diagnostics.probe_size), "cpu")

    def diagnose() -> None:  # what DiagnosticsMonitor does every K steps
        monitor.embedding_stats(*last["z"][:2], center_threshold=cfg.diagnostics.center_threshold,
                                dimensional_fraction=cfg.diagnostics.dimensional_fraction)
        stats, z1, modes = monitor.probe_diagnostics(model, views, cfg.diagnostics)
        monitor.trace_record(0, 0, stats, z1, modes)

    t_step = median_ms(step, repeats)
    t_diag = median_ms(diagnose, max(5, repeats // 2))
    return {"step_ms": t_step, "diagnostics_ms": t_diag}


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
    p.add_argument("--unit-only", action="store_true", help="only the in-process unit costs (no training runs)")
    a = p.parse_args()
    unit = unit_costs(a.method)
    print(f"one training step {unit['step_ms']:.1f} ms, one diagnostics call {unit['diagnostics_ms']:.1f} ms")
    print(f"{'diagnostics.every':>18} {'predicted overhead':>19}")
    unit["predicted"] = {}
    for e in a.every:
        if e:
            unit["predicted"][e] = unit["diagnostics_ms"] / (e * unit["step_ms"])
            print(f"{e:>18} {100 * unit['predicted'][e]:>18.1f}%")
    result = {"method": a.method, "torch": torch.__version__, "threads": torch.get_num_threads(), "unit": unit}
    if a.unit_only:
        _write(a.out, result)
        return
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
    _write(a.out, result | {"epochs": a.epochs, "rows": rows})


def _write(path: str, result: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
