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
import math
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config import Config, resolve, to_dict
from ..io import RunStopped, atomic_write_text
from .study import Arm

TIMING_STEPS, TIMING_WARMUP = 200, 20
EARLY_FRACTION = 0.25  # "early in training": the probe nearest a quarter of the run's steps


def recipe_of(arm: Arm) -> str:
    from ..methods import method_spec

    return method_spec(arm.method).recipes["shifted_mnist"]


def overrides_of(arm: Arm, seed: int, settings: Iterable[str] = (), tuned: Mapping[str, Any] | None = None,
                 epochs: int | None = None, holdout: int = 0) -> list[str]:
    """The run's overrides on its recipe: the shared ``settings``, the arm's length and options, the values its
    tuning chose (``tuned``), the seed (and ``holdout`` for a tuning run)."""
    own = {**arm.set, **(tuned or {})}
    return [*settings, f"epochs={epochs or arm.epochs}", *(f"{k}={json.dumps(v)}" for k, v in own.items()),
            f"seed={seed}", *([f"holdout={holdout}"] if holdout else [])]


def arm_config(arm: Arm, seed: int, settings: Iterable[str] = (), **kw: Any) -> Config:
    return resolve(recipe_of(arm), overrides_of(arm, seed, settings, **kw))


def _trace(path: Path) -> list[dict[str, float]]:
    """The probe-set records of a run, one per step, their scalars only (a resumed run logs the steps after its
    last checkpoint again: the later record wins)."""
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        by_step[int(rec["step"])] = {k: v for k, v in rec.items()
                                     if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"}
    return [by_step[s] for s in sorted(by_step)]


def derived(metrics: dict[str, float], trace: list[dict[str, float]], steps: int | None = None) -> dict[str, float]:
    """The metrics computed from others and from the trace (``steps``: the run's length):

    * ``knn_gain`` kNN minus the same-seed random encoder's (the positive control); ``log_effective_rank``;
      ``rankme_fraction`` RankMe / embedding dimension; ``invariance_gap`` ‖aug mean‖ − ‖center‖;
    * ``center_drop`` the center norm at the first probe minus at the end; ``invariance_gap_rise`` the
      invariance gap at the end minus at the first probe; ``center_early`` at the probe nearest
      :data:`EARLY_FRACTION` of the steps;
    * ``commutator_drop`` the relative ‖[F̂, Wp]‖ at the first probe that has it minus at the end;
    * ``log_predictor_ms``, ``predictor_fraction`` (timing arms)."""
    m: dict[str, float] = {}
    if "knn" in metrics and "random_encoder" in metrics:
        m["knn_gain"] = metrics["knn"] - metrics["random_encoder"]
    if metrics.get("effective_rank", 0) > 0:
        m["log_effective_rank"] = math.log(metrics["effective_rank"])
    if "rankme" in metrics and metrics.get("embedding_dim"):
        m["rankme_fraction"] = metrics["rankme"] / metrics["embedding_dim"]
    if "center_norm" in metrics and "aug_mean_norm" in metrics:
        m["invariance_gap"] = metrics["aug_mean_norm"] - metrics["center_norm"]
    centers = [t for t in trace if "center_norm" in t]
    if "center_norm" in metrics and centers:
        m["center_drop"] = centers[0]["center_norm"] - metrics["center_norm"]
        if "aug_mean_norm" in centers[0] and "invariance_gap" in m:
            m["invariance_gap_rise"] = m["invariance_gap"] - (centers[0]["aug_mean_norm"] - centers[0]["center_norm"])
        if steps:
            m["center_early"] = min(centers, key=lambda t: abs(t["step"] - EARLY_FRACTION * steps))["center_norm"]
    comm = [t["pred_commutator"] for t in trace if "pred_commutator" in t]
    if comm and "pred_commutator" in metrics:
        m["commutator_drop"] = comm[0] - metrics["pred_commutator"]
    if metrics.get("predictor_ms", 0) > 0:
        m["log_predictor_ms"] = math.log(metrics["predictor_ms"])
        if metrics.get("step_ms"):
            m["predictor_fraction"] = metrics["predictor_ms"] / metrics["step_ms"]
    return m


#: the final probe-set diagnostics the study reads (summary.json's "diagnostics")
DIAGNOSTICS = ("center_norm", "aug_mean_norm", "effective_rank", "rankme", "gram_offdiag_mean", "gram_offdiag_var_ratio",
               "rows4_ratio", "pred_alignment", "pred_alignment_live", "pred_commutator", "l_c", "l_nc")


def metrics_of(summary: dict, trace: list[dict[str, float]]) -> dict[str, float]:
    """The study's metrics of one finished run (see :func:`derived` and :data:`sslab.claims.predictions.METRICS`)."""
    d = summary.get("diagnostics") or {}
    base = summary.get("baselines") or {}
    m: dict[str, float] = {"knn": float(summary["knn_top1"])}
    if summary.get("linear_top1") is not None:
        m["linear"] = float(summary["linear_top1"])
    if base.get("random_init_knn_top1") is not None:
        m["random_encoder"] = float(base["random_init_knn_top1"])
    if base.get("raw_pixel_knn_top1") is not None:
        m["raw_pixels"] = float(base["raw_pixel_knn_top1"])
    if summary.get("embedding_dim"):
        m["embedding_dim"] = float(summary["embedding_dim"])
    for key in DIAGNOSTICS:
        if isinstance(d.get(key), (int, float)):
            m[key] = float(d[key])
    return {**m, **derived(m, trace, summary.get("steps"))}


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


@dataclass(frozen=True)
class Job:
    """One run of the study: ``arm`` (named ``name``) at ``seed`` with ``overrides`` on its recipe, in ``folder``."""

    name: str
    arm: Arm
    seed: int
    overrides: tuple[str, ...]
    folder: Path
    kind: str = "run"  # run | tuning | timing | theory

    def config(self) -> Config:
        return resolve(recipe_of(self.arm), list(self.overrides))

    def head(self) -> dict[str, Any]:
        return {"arm": self.name, "seed": self.seed, "method": self.arm.method, "overrides": list(self.overrides),
                "kind": self.kind}


def _train(job: Job, threads: int) -> dict[str, Any]:
    """One training run (in a worker process): its record, also written to ``record.json``. Any error
    (a non-finite loss, a bad option) makes a failed record, not a failed study."""
    torch.set_num_threads(threads)
    record = job.head()
    t0 = time.perf_counter()
    job.folder.parent.mkdir(parents=True, exist_ok=True)
    log_path = job.folder.parent / f"{job.folder.name}.log"
    try:
        with open(log_path, "a") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            summary = _fit(job.config(), job.folder)
        trace = _trace(job.folder / "logs" / "diagnostics.jsonl")
        record.update(metrics=metrics_of(summary, trace), summary=_slim(summary), trace=trace)
    except Exception as e:  # noqa: BLE001
        record["failed"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    record["seconds"] = round(time.perf_counter() - t0, 1)
    if "metrics" in record:
        atomic_write_text(json.dumps(record) + "\n", job.folder / "record.json")
    return record


def _median_ms(fn: Callable[[int], None], steps: int, warmup: int) -> float:
    times = []
    for step in range(1, steps + warmup + 1):
        t0 = time.perf_counter()
        fn(step)
        if step > warmup:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def time_predictor(job: Job, steps: int = TIMING_STEPS) -> dict[str, Any]:
    """A timing arm: median ms of the closed-form predictor's per-step work (F̂ update + Wp reset) at the arm's
    projection size and batch, and of the whole training step (forward, backward, SGD step, after_step -- which
    holds that work) of the method with that projection on the study's images, over ``steps`` steps."""
    from ..build import method_from_config
    from ..data import dataset_info
    from ..methods import method_arguments
    from ..methods.parts.direct import DirectPredictor
    from ..methods.step import step as sslab_step

    cfg = job.config()
    args = {**method_arguments(cfg.method), **cfg.method_args}
    pred = DirectPredictor(args["proj_dim"], args["direct"], rho=args["rho"], eps=args["eps"], freq=1, norm=args["norm"])
    g = torch.Generator().manual_seed(job.seed)
    batch = torch.randn(2 * cfg.batch_size, args["proj_dim"], generator=g)
    # an eigendecomposition at D = 2048 takes ~1.5 s on 2 cores: fewer steps at larger D (the median is stable)
    steps = max(10, steps * 128 // args["proj_dim"])
    warmup = max(2, min(TIMING_WARMUP, steps // 10))
    total = steps + warmup

    def predictor_step(step: int) -> None:
        with torch.no_grad():
            pred.observe([batch])
            pred.after_step(step, total)

    torch.manual_seed(job.seed)
    method = method_from_config(cfg)
    info = dataset_info(cfg.dataset)
    size = cfg.image_size or info.image_size
    views = [torch.rand(cfg.batch_size, info.channels, size, size, generator=g) for _ in range(2)]
    opt = torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9)
    method.configure_schedule(steps_per_epoch=total, total_steps=total)

    def train_step(step: int) -> None:  # the engine's step protocol, without the engine's logging
        sslab_step(method, opt, views, step - 1)

    metrics = {"predictor_ms": _median_ms(predictor_step, steps, warmup),
               "step_ms": _median_ms(train_step, max(5, steps // 10), 2)}
    metrics.update(derived(metrics, []))
    return {**job.head(), "seconds": 0.0, "metrics": metrics,
            "timing": {"dim": args["proj_dim"], "batch": 2 * cfg.batch_size, "steps": steps,
                       "threads": torch.get_num_threads()}}


def theory_overrides(arm: Arm, seed: int) -> list[str]:
    """A theory arm's ``sslab theory`` options: its own, the seed, and for ``tian-modes`` six initial modes drawn
    from the seed (p0 uniform in [0.01, 1], s0 log-uniform in [1e-4, 1]: both sides of the collapse basin)."""
    own = dict(arm.set)
    if arm.theory == "tian-modes":
        rng = np.random.default_rng(seed)
        own["p0"] = [round(float(v), 6) for v in rng.uniform(0.01, 1.0, 6)]
        own["s0"] = [round(float(v), 8) for v in 10 ** rng.uniform(-4, 0, 6)]
    else:
        own["seed"] = seed
    return [f"{k}={json.dumps(v)}" for k, v in own.items()]


def theory_metrics(name: str, result: dict) -> dict[str, float]:
    """The numbers a theory run is judged by (:data:`sslab.claims.predictions.METRICS`):

    * tian-linear: ``log10_balance_residual`` (Theorem 1's max ‖WWᵀ − WpᵀWp/α_p − e^{−2ηt}C‖ along the flow),
      ``log_commutator_ratio`` ln(final / initial relative ‖[F, Wp]‖) (Theorem 3);
    * tian-modes: ``log10_parabola_residual`` (Eqn 14's integral along every mode);
    * tian-phase: ``phase_agreement`` (linear SGD collapses where the per-mode ODE does) and
      ``collapse_above_threshold`` (the share of grid cells with η > τ²/(4(1+σ²)) where SGD collapses);
    * directset: ``kept_agreement`` (features kept by SGD vs the closed-form threshold) and ``probe_gain``
      (few-label probe accuracy of W x minus raw x at 8 labels)."""
    tiny = 1e-300
    if name == "tian-linear":
        ratio = (result["final_commutator_flow"] + tiny) / (result["initial_commutator"] + tiny)
        return {"log10_balance_residual": math.log10(result["max_balance_residual_flow"] + tiny),
                "log_commutator_ratio": math.log(ratio)}
    if name == "tian-modes":
        return {"log10_parabola_residual": math.log10(result["parabola_max_residual"] + tiny)}
    if name == "tian-phase":
        above = [c for c in result["grid"] if c["eta"] > result["collapse_threshold_eta"]]
        return {"phase_agreement": float(result["sgd_ode_agreement"]),  # no cell above the threshold: nothing to judge
                "collapse_above_threshold": sum(c["sgd_collapsed"] for c in above) / len(above) if above else math.nan}
    if name == "directset":
        i = result["labels"].index(8)
        acc = result["probe_accuracy"]
        return {"kept_agreement": float(result["kept_agreement"]),
                "probe_gain": acc["learned projection W x"][i] - acc["raw input"][i]}
    raise ValueError(f"no claims metrics for theory experiment '{name}'")


def run_theory(job: Job) -> dict[str, Any]:
    """A theory arm at one seed: the ``sslab theory`` experiment into the job's folder, and its metrics."""
    from ..theory.lab import run_experiment

    t0 = time.perf_counter()
    record = run_experiment(job.arm.theory, list(job.overrides), out=job.folder)
    return {**job.head(), "metrics": theory_metrics(job.arm.theory, record["result"]),
            "seconds": round(time.perf_counter() - t0, 1)}


def _slim(summary: dict) -> dict:
    """What a record keeps of a run's summary.json: enough to recompute :func:`metrics_of` later."""
    return {k: summary.get(k) for k in ("knn_top1", "linear_top1", "baselines", "diagnostics", "embedding_dim", "steps",
                                         "wall_seconds", "final_loss", "z_std")}


def finished(job: Job) -> dict | None:
    """The record of a finished run with the job's overrides (its metrics recomputed from the kept summary and
    trace, so a metric added later reads old runs too), or None."""
    path = job.folder / "record.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("overrides") != list(job.overrides) or "metrics" not in record:
        return None
    if record.get("summary"):
        record["metrics"] = metrics_of(record["summary"], record.get("trace", []))
    else:  # a timing record
        record["metrics"].update(derived(record["metrics"], []))
    return record


def run_jobs(jobs: list[Job], parallel: int = 2, progress: Callable[[str], None] | None = None,
             timing_steps: int = TIMING_STEPS) -> list[dict[str, Any]]:
    """Every job: the training runs in ``parallel`` worker processes, then the timing arms alone (nothing else
    running, so their times are not contended). Returns the records; jobs already finished (a ``record.json``
    with the same overrides) are read back, not run again."""
    say = progress or (lambda s: print(s, file=sys.stderr, flush=True))
    records: list[dict[str, Any]] = []
    todo, timings = [], []
    for job in jobs:
        kept = finished(job)
        if kept is not None:
            records.append(kept)
        elif job.kind in ("timing", "theory"):
            timings.append(job)
        else:  # new, half-finished or of other settings: the worker resumes or sets the old folder aside
            todo.append(job)
    if records:
        say(f"sslab claims: {len(records)} finished runs kept")
    cores = os.cpu_count() or 1
    parallel = max(1, min(parallel, len(todo) or 1))
    threads = max(1, cores // parallel)
    t0 = time.perf_counter()
    if todo:
        with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_train, job, threads): job for job in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                try:
                    rec = fut.result()
                except RunStopped:  # SIGTERM / Ctrl-C reached the workers: each checkpointed; stop the study
                    for other in futures:
                        other.cancel()
                    raise
                except Exception as e:  # noqa: BLE001 -- a worker that died (e.g. out of memory): a failed run
                    rec = {**futures[fut].head(), "failed": f"{type(e).__name__}: {e}", "seconds": 0.0}
                records.append(rec)
                m = rec.get("metrics", {})
                what = rec.get("failed") or (f"kNN {m['knn']:.3f} (random encoder {m.get('random_encoder', math.nan):.3f}),"
                                             f" center {m.get('center_norm', math.nan):.2f}")
                say(f"[{i}/{len(todo)}] {rec['arm']} seed {rec['seed']}: {what} ({rec['seconds']:.0f} s; "
                    f"{time.perf_counter() - t0:.0f} s so far)")
    for job in timings:  # in this process, alone: timings uncontended, theory runs take seconds
        try:
            rec = time_predictor(job, timing_steps) if job.kind == "timing" else run_theory(job)
        except Exception as e:  # noqa: BLE001 -- a failed record, reported, retried next time; the study goes on
            rec = {**job.head(), "failed": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                   "seconds": 0.0}
            records.append(rec)
            say(f"{job.name} seed {job.seed}: failed ({rec['failed']})")
            continue
        job.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json.dumps(rec) + "\n", job.folder / "record.json")
        what = (f"predictor {rec['metrics']['predictor_ms']:.3f} ms of a {rec['metrics']['step_ms']:.1f} ms step"
                if job.kind == "timing" else ", ".join(f"{k} {v:.3g}" for k, v in rec["metrics"].items()))
        say(f"{job.name} seed {job.seed}: {what}")
        records.append(rec)
    return records
