"""Running the claims study's arms: one training run per (arm, seed), in parallel workers, resumable.

Each run trains in ``<out>/runs/<arm>-s<seed>/`` through the engine (its output in
``<arm>-s<seed>.log`` beside it) and leaves ``record.json``: the arm, seed, overrides, wall time,
its metrics (see :mod:`.study`) and a compact trace of the probe-set diagnostics. A study that is
stopped picks up where it was: finished runs (a record with the same overrides) are kept, a run
with a checkpoint of the same config resumes from it, and a folder of other settings is moved to
``<arm>-s<seed>.replaced`` (never deleted) before the run starts afresh. A run that fails (a
non-finite loss, a worker that dies) is a failed record, reported, and retried next time.

Workers are separate processes with ``threads`` intra-op threads each: on 2 cores two single-
threaded runs side by side train 1.36x faster than one run on both cores (measured: BYOL, 2
epochs of shifted_mnist, 61.5 s for the pair vs 41.8 s each alone), since the study's small
convolutions do not keep two threads busy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import Config, resolve, to_dict
from ..io import RunStopped, atomic_write_text
from .stats import pearson
from .study import Arm

TRACE_KEYS = ("step", "center_norm", "aug_mean_norm", "effective_rank", "l_c", "l_nc", "pred_alignment")
TIMING_STEPS, TIMING_WARMUP = 200, 20


def recipe_of(arm: Arm) -> str:
    from ..methods import method_spec

    return method_spec(arm.method).recipes["shifted_mnist"]


def overrides_of(arm: Arm, seed: int, settings: Iterable[str] = ()) -> list[str]:
    """The run's overrides on its recipe: the shared ``settings``, the arm's own, the seed (and the baselines)."""
    own = [f"{k}={json.dumps(v)}" for k, v in arm.set.items()]
    return [*settings, *own, f"seed={seed}", *(["eval.baselines=true"] if arm.baselines else [])]


def arm_config(arm: Arm, seed: int, settings: Iterable[str] = ()) -> Config:
    return resolve(recipe_of(arm), overrides_of(arm, seed, settings))


def _trace(path: Path) -> list[dict[str, float]]:
    """The probe-set records of a run, one per step (a resumed run logs the steps after its last
    checkpoint again: the later record wins)."""
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        by_step[int(rec["step"])] = {k: rec[k] for k in TRACE_KEYS if k in rec and rec[k] is not None}
    return [by_step[s] for s in sorted(by_step)]


def derived(metrics: dict[str, float], trace: list[dict[str, float]]) -> dict[str, float]:
    """The metrics computed from others and from the trace: ``invariance_gap`` (‖aug mean‖ − ‖center‖),
    ``center_drop`` (center norm at the first probe minus at the end), ``lc_lnc_r`` (Pearson's r of
    L_c and L_nc along training), ``pred_alignment_first/last/gain`` (linear predictors)."""
    m: dict[str, float] = {}
    if "center_norm" in metrics and "aug_mean_norm" in metrics:
        m["invariance_gap"] = metrics["aug_mean_norm"] - metrics["center_norm"]
    if "center_norm" in metrics and trace and "center_norm" in trace[0]:
        m["center_drop"] = trace[0]["center_norm"] - metrics["center_norm"]
    pairs = [(t["l_c"], t["l_nc"]) for t in trace if "l_c" in t and "l_nc" in t]
    if len(pairs) >= 3:
        m["lc_lnc_r"] = pearson(*zip(*pairs))
    align = [t["pred_alignment"] for t in trace if "pred_alignment" in t]
    if len(align) >= 2:
        m.update(pred_alignment_first=align[0], pred_alignment_last=align[-1], pred_alignment_gain=align[-1] - align[0])
    return m


def metrics_of(summary: dict, trace: list[dict[str, float]]) -> dict[str, float]:
    """The study's metrics of one finished run (see :mod:`.study`)."""
    d = summary.get("diagnostics") or {}
    m: dict[str, float] = {"knn": float(summary["knn_top1"])}
    if summary.get("linear_top1") is not None:
        m["linear"] = float(summary["linear_top1"])
    for key in ("center_norm", "aug_mean_norm", "effective_rank"):
        if d.get(key) is not None:
            m[key] = float(d[key])
    return {**m, **derived(m, trace)}


def _same_config(folder: Path, cfg: Config) -> bool:
    path = folder / "config.yaml"
    return path.is_file() and yaml.safe_load(path.read_text()) == to_dict(cfg)


def _set_aside(folder: Path) -> None:
    """Move a run folder of other settings (or a checkpoint that cannot resume) to ``<folder>.replaced``;
    nothing is deleted but the previous ``.replaced``."""
    if folder.exists() and any(folder.iterdir()):
        old = folder.with_name(folder.name + ".replaced")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)


def _fit(cfg: Config, folder: Path) -> dict:
    """The run's summary: a finished run of the same config is read back, a half-finished one resumes from
    its checkpoint (once; a checkpoint that fails to resume is set aside and the run starts afresh), anything
    else is set aside and trained from the start."""
    from ..engine import train
    from ..engine.runfolder import RunFolderError, in_use

    if _same_config(folder, cfg):
        if (folder / "summary.json").is_file():
            return json.loads((folder / "summary.json").read_text())
        if (folder / "checkpoints" / "last.ckpt").is_file():
            try:
                return train(cfg, folder, resume=True)
            except RunFolderError:  # in use by another process: never move a live run aside
                raise
            except Exception as e:  # noqa: BLE001 -- any failure to resume: start again, once
                print(f"sslab claims: could not resume ({type(e).__name__}: {e}); starting again", file=sys.stderr)
    if in_use(folder):  # never move a live run aside
        raise RunFolderError(f"run folder {folder} is in use by another sslab process")
    _set_aside(folder)
    return train(cfg, folder)


def _train(name: str, arm: Arm, seed: int, settings: tuple[str, ...], folder: str, threads: int) -> dict[str, Any]:
    """One training run (in a worker process): its record, also written to ``record.json``. Any error
    (a non-finite loss, a bad option) makes a failed record, not a failed study."""
    torch.set_num_threads(threads)
    folder_p = Path(folder)
    overrides = overrides_of(arm, seed, settings)
    record: dict[str, Any] = {"arm": name, "seed": seed, "method": arm.method, "overrides": overrides}
    t0 = time.perf_counter()
    folder_p.parent.mkdir(parents=True, exist_ok=True)
    log_path = folder_p.parent / f"{folder_p.name}.log"
    try:
        with open(log_path, "a") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            summary = _fit(arm_config(arm, seed, settings), folder_p)
        trace = _trace(folder_p / "logs" / "diagnostics.jsonl")
        record.update(metrics=metrics_of(summary, trace), baselines=summary.get("baselines") or {}, trace=trace)
    except Exception as e:  # noqa: BLE001
        record["failed"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    record["seconds"] = round(time.perf_counter() - t0, 1)
    if "metrics" in record:
        atomic_write_text(json.dumps(record) + "\n", folder_p / "record.json")
    return record


def time_predictor(name: str, arm: Arm, seed: int, settings: tuple[str, ...] = (), steps: int = TIMING_STEPS
                   ) -> dict[str, Any]:
    """A timing arm: median ms of the closed-form predictor's per-step work (F̂ update + reset) at the
    arm's projection size and batch, over ``steps`` steps after a warm-up."""
    from ..methods import method_arguments
    from ..methods.parts.direct import DirectPredictor

    cfg = arm_config(arm, seed, settings)
    args = {**method_arguments(cfg.method), **cfg.method_args}
    pred = DirectPredictor(args["proj_dim"], args["direct"], rho=args["rho"], eps=args["eps"], freq=1, norm=args["norm"])
    g = torch.Generator().manual_seed(seed)
    batch = torch.randn(2 * cfg.batch_size, args["proj_dim"], generator=g)
    times = []
    with torch.no_grad():
        for step in range(1, steps + TIMING_WARMUP + 1):
            t0 = time.perf_counter()
            pred.observe([batch])
            pred.after_step(step, steps + TIMING_WARMUP)
            if step > TIMING_WARMUP:
                times.append(time.perf_counter() - t0)
    return {"arm": name, "seed": seed, "method": arm.method, "overrides": overrides_of(arm, seed, settings),
            "seconds": round(sum(times), 3), "metrics": {"predictor_ms": 1000 * statistics.median(times)},
            "timing": {"dim": args["proj_dim"], "batch": 2 * cfg.batch_size, "steps": steps, "threads": torch.get_num_threads()}}


def _reusable(folder: Path, overrides: list[str]) -> dict | None:
    """The record of a finished run with these overrides (its derived metrics recomputed), or None."""
    path = folder / "record.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("overrides") != overrides or "metrics" not in record:
        return None
    record["metrics"].update(derived(record["metrics"], record.get("trace", [])))
    return record


def run_arms(arms: Mapping[str, Arm], seeds: Iterable[int], out: Path, settings: Iterable[str] = (), jobs: int = 2,
             progress: Callable[[str], None] | None = None, timing_steps: int = TIMING_STEPS) -> list[dict[str, Any]]:
    """Every (arm, seed) with the shared ``settings``: the training arms in ``jobs`` worker processes,
    then the timing arms alone (nothing else running, so their times are not contended). Returns the
    records; runs (and timings) already finished under ``out`` with the same overrides are kept."""
    say = progress or (lambda s: print(s, file=sys.stderr, flush=True))
    seeds, settings = list(seeds), tuple(settings)
    records: list[dict[str, Any]] = []
    todo, timings = [], []
    for name, arm in arms.items():
        for seed in seeds:
            folder = out / "runs" / f"{name}-s{seed}"
            kept = _reusable(folder, overrides_of(arm, seed, settings))
            if kept is not None:
                records.append(kept)
            elif arm.timing:
                timings.append((name, arm, seed, folder))
            else:  # new, half-finished or of other settings: the worker resumes or sets the old folder aside
                todo.append((name, arm, seed, str(folder)))
    if records:
        say(f"sslab claims: {len(records)} finished runs kept from {out}")
    cores = os.cpu_count() or 1
    jobs = max(1, min(jobs, len(todo) or 1))
    threads = max(1, cores // jobs)
    t0 = time.perf_counter()
    if todo:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_train, name, arm, seed, settings, folder, threads): (name, arm, seed)
                       for name, arm, seed, folder in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                try:
                    rec = fut.result()
                except RunStopped:  # SIGTERM / Ctrl-C reached the workers: each checkpointed; stop the study
                    for other in futures:
                        other.cancel()
                    raise
                except Exception as e:  # noqa: BLE001 -- a worker that died (e.g. out of memory): a failed run
                    name, arm, seed = futures[fut]
                    rec = {"arm": name, "seed": seed, "method": arm.method, "failed": f"{type(e).__name__}: {e}",
                           "seconds": 0.0}
                records.append(rec)
                m = rec.get("metrics", {})
                what = rec.get("failed") or f"kNN {m['knn']:.3f}, center {m.get('center_norm', float('nan')):.2f}"
                say(f"[{i}/{len(todo)}] {rec['arm']} seed {rec['seed']}: {what} ({rec['seconds']:.0f} s; "
                    f"{time.perf_counter() - t0:.0f} s so far)")
    for name, arm, seed, folder in timings:
        rec = time_predictor(name, arm, seed, settings, timing_steps)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(rec) + "\n", folder / "record.json")
        say(f"{name} seed {seed}: {rec['metrics']['predictor_ms']:.3f} ms per step")
        records.append(rec)
    return records
