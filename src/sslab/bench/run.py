"""``sslab bench``: every case timed (:mod:`.timing`), the loader and the diagnostics (:mod:`.parts`),
printed as tables and written as JSON with the hardware and versions."""

from __future__ import annotations

import json
import os
import platform
import resource
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..engine.train import gpu_defaults
from ..io import atomic_write_text
from .case import Case, case_config, case_module, synthetic_images
from .parts import diagnostics_ms, loader_rate
from .syncs import SyncCounter
from .timing import PHASES, PlainLoop, Timing, engine_loop, time_plain

#: the methods the step targets are set for (docs/benchmarks.md)
DEFAULT_METHODS = ("simclr", "byol", "simsiam", "vicreg", "barlow_twins", "directpred", "directcopy")
DIAGNOSTICS_SHAPES = ((512, 256), (512, 2048), (512, 8192))  # (N, D): the probe set at the heads' widths


def run_case(case: Case, device: torch.device, steps: int = 50, warmup: int = 10, count_syncs: bool = True,
             sync_steps: int = 12, overrides: tuple[str, ...] = ()) -> Timing:
    """Time ``case`` on ``device`` (see :mod:`.timing`); ``sync_steps`` engine steps are counted for syncs;
    ``overrides`` are config ``key=value`` for every case (e.g. ``compile=true``)."""
    cfg = case_config(case, overrides)
    if device.type == "cuda":
        gpu_defaults(cfg)
    torch.manual_seed(cfg.seed)
    data = synthetic_images(case, device)
    # one schedule long enough for every loop below, so that no epoch boundary (and its check) falls inside them
    total = 3 * (warmup + 2 * steps) + sync_steps
    module = case_module(cfg, total, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loop = PlainLoop(module, data, case, device, total)
    t = Timing()
    with torch.no_grad():
        views = module.make_views(data.images[: case.batch])
    t.step_ms, t.phases_ms, t.floor_ms, t.plain_loop_ms = time_plain(loop, views, steps, warmup)
    t.peak_memory_mb = round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None
    t.engine_loop_ms = engine_loop(module, data, case, device, steps, warmup, cfg.log_every_n_steps).ms
    if count_syncs:  # counted on the route an accelerator takes (on the CPU the views gather: free there)
        module.views = replace(module.views, masked=True)
        counter = SyncCounter(where=True)
        run = engine_loop(module, data, case, device, sync_steps, 2, cfg.log_every_n_steps, counter)
        steady = [n for n, log in zip(run.syncs, run.logging) if not log]
        t.syncs_per_step = max(steady) if steady else None
        t.syncs_per_log_step = max((n for n, log in zip(run.syncs, run.logging) if log), default=None)
        t.sync_places = dict(counter.places.most_common(10))
    return t


def environment(device: torch.device) -> dict:
    """Hardware and versions, for the JSON."""
    from importlib.metadata import version

    env = {"device": device.type, "torch": torch.__version__, "lightning": version("lightning"),
           "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env |= {"gpu": p.name, "gpu_memory_gb": round(p.total_memory / 2**30, 1), "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version()}
    return env


def case_row(case: Case, t: Timing) -> dict:
    return {"method": case.method, "size": case.size, "batch": case.batch, "precision": case.precision,
            "step_ms": round(t.step_ms, 2), "images_per_s": round(case.batch / t.engine_loop_ms * 1000, 1),
            "floor_ms": round(t.floor_ms, 2), "floor_ratio": round(t.floor_ratio, 3),
            "phases_ms": {p: round(v, 2) for p, v in t.phases_ms.items()},
            "plain_loop_ms": round(t.plain_loop_ms, 2), "engine_loop_ms": round(t.engine_loop_ms, 2),
            "engine_overhead": round(t.engine_overhead, 3), "syncs_per_step": t.syncs_per_step,
            "syncs_per_log_step": t.syncs_per_log_step, "sync_places": t.sync_places,
            "peak_memory_mb": t.peak_memory_mb}


def step_table(rows: list[dict]) -> str:
    head = (f"{'method':<13} {'px':>4} {'batch':>5} {'precision':<10} {'step ms':>8} {'img/s':>8} {'floor':>7} "
            + " ".join(f"{p:>9}" for p in PHASES) + f" {'engine':>7} {'syncs':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['method']:<13} {r['size']:>4} {r['batch']:>5} {r['precision']:<10} error: {r['error']}")
            continue
        syncs = "-" if r["syncs_per_step"] is None else str(r["syncs_per_step"])
        lines.append(f"{r['method']:<13} {r['size']:>4} {r['batch']:>5} {r['precision']:<10} {r['step_ms']:>8.1f} "
                     f"{r['images_per_s']:>8,.0f} {r['floor_ratio']:>6.3f}x "
                     + " ".join(f"{r['phases_ms'][p]:>9.2f}" for p in PHASES)
                     + f" {r['engine_overhead']:>6.3f}x {syncs:>5}")
    return "\n".join(lines)


def run_bench(methods: list[str], sizes: list[int], batches: list[int], precisions: list[str], device: torch.device,
              steps: int = 50, warmup: int = 10, workers: list[int] | None = None, diagnostics: bool = True,
              out: str | os.PathLike | None = None, echo=print, overrides: tuple[str, ...] = ()) -> dict:
    """Every (method, size, batch, precision) case, then the loader per worker count and the diagnostics;
    tables through ``echo``, everything to ``out`` as JSON (written atomically)."""
    if steps < 3 or warmup < 1:
        raise ValueError(f"--steps must be >= 3 and --warmup >= 1 (a median needs steps, a warm-up one step), "
                         f"got {steps} and {warmup}")
    cases = [Case(m, s, b, p) for s in sizes for b in batches for p in precisions for m in methods]
    for c in cases:  # bad names fail before anything runs
        case_config(c, overrides)
    rows = []
    for c in cases:
        try:
            rows.append(case_row(c, run_case(c, device, steps, warmup, overrides=overrides)))
        except torch.OutOfMemoryError:
            rows.append({**asdict(c), "error": "out of memory"})
        echo(f"  {c.name}: " + (rows[-1].get("error") or f"{rows[-1]['step_ms']:.1f} ms/step, floor ratio "
                                f"{rows[-1]['floor_ratio']:.3f}, syncs/step {rows[-1]['syncs_per_step']}"))
    echo(step_table(rows))
    result = {"environment": environment(device), "steps": steps, "warmup": warmup, "overrides": list(overrides),
              "cases": rows}
    if workers:
        result["loader"] = loader_rate(workers, device=device)
        echo("\nImageFolder loader (JPEG 500x375 -> 256 px):")
        echo("\n".join(f"  {r['workers']} workers: {r['images_per_s']:,.0f} img/s ({r['per_worker']:,.0f} per worker); "
                       f"pre-decoded: {r['predecoded_images_per_s']:,.0f} img/s"
                       + (f"; nvJPEG on {device.type}: {r['device_decode_images_per_s']:,.0f} img/s"
                          if r["device_decode_images_per_s"] else "") for r in result["loader"]))
    if diagnostics:
        result["diagnostics_ms"] = [{"n": n, "d": d, "ms": round(diagnostics_ms(n, d, device), 2)}
                                    for n, d in DIAGNOSTICS_SHAPES]
        echo("\nDiagnostics per call: " + ", ".join(f"N={r['n']} D={r['d']}: {r['ms']:.1f} ms"
                                                    for r in result["diagnostics_ms"]))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    if out is not None:
        atomic_write_text(json.dumps(result, indent=2) + "\n", Path(out))
        echo(f"wrote {out}")
    return result


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


__all__ = ["DEFAULT_METHODS", "case_row", "default_device", "environment", "run_bench", "run_case", "step_table"]
