"""``train(cfg, out)``: the steps of a run -- prepare, claim the folder, fit, summarise.

:func:`prepare` (:mod:`.prepare`) builds and checks everything from the config and writes nothing; a
resume's checkpoint and changed options are checked too; only then is the folder claimed
(:mod:`.runfolder`), :func:`fit` trains into it and :func:`summarise` evaluates the trained backbone and
writes ``summary.json``. The signals are recorded from the claim to the end (:mod:`.signals`).

Run folder layout::

    <out>/config.yaml          the resolved configuration
    <out>/checkpoints/last.ckpt  written atomically at the end of every epoch (``--resume`` reads it)
    <out>/logs/                CSV (metrics.csv) and TensorBoard logs; diagnostics.jsonl (probe-set spectra)
    <out>/summary.json         final numbers: what ran, wall time and throughput, kNN / linear / online-probe
                               top-1, final loss, z_std, baselines and the final diagnostics (docs/engine.md)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from ..config import Config, save
from ..data.datasets import TensorImages
from ..evaluation import knn_accuracy, linear_probe
from ..io import CheckpointError, atomic_write_text, check_fits, safe_load
from .guard import checkpoint_path
from .prepare import Run, decode_workers, engine_module, gpu_defaults, prepare, resolve_precision, strategy_of


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*predefined metrics.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*isinstance.*LeafSpec.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")


def train(cfg: Config, out: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> dict:
    """Train ``cfg`` into run folder ``out``; with ``resume`` continue from ``out/checkpoints/last.ckpt``.

    Everything that can fail on bad input -- options, data, names, devices, the checkpoint to resume and
    its fit to ``cfg`` -- fails before anything is written; then the folder is claimed (:mod:`.runfolder`:
    locked, and refused when it holds another run unless ``overwrite``)."""
    from .runfolder import check_out, claim

    _quiet_lightning()
    out = Path(out)
    lead = launch_rank() == 0  # the processes a DDP launcher starts for the other ranks find the folder claimed
    if lead:
        check_out(out, resume, overwrite)
    saved = _resumed_state(cfg, out) if resume else None  # a missing or corrupt checkpoint, a refused change
    run = prepare(cfg)
    if saved is not None:
        check_fits(run.module.state_dict(), saved, checkpoint_path(out),
                   f"this run's {cfg.method} ({run.built.backbone_name})", exact=True)
        del saved  # Lightning loads its own copy
    folder = claim(out, resume, overwrite) if lead else None  # validation is over: from here on the run writes
    try:
        with run.guard.signals.recording():  # a signal before training starts stops the run at its first step
            baselines = fit(run, out, resume, lead=folder is not None)
            # a signal from here on (the last epoch's checkpoint is written) stops the final evaluation unsummarised
            return summarise(run, out, baselines, resume)
    finally:
        if folder is not None:
            folder.release()


def _resumed_state(cfg: Config, out: Path) -> dict:
    """The state_dict of the run's checkpoint, after checking that it loads and that ``cfg`` changes only what
    a resume may change (:func:`.runfolder.resume_changes`)."""
    from .runfolder import resume_changes

    ckpt = checkpoint_path(out)
    if not ckpt.is_file():
        raise CheckpointError(f"cannot resume: {ckpt} not found (start the run again with --overwrite)")
    saved = safe_load(ckpt)  # a corrupt checkpoint fails here, before anything is written
    resume_changes(_started_config(out, cfg), cfg, saved_epoch=int(saved.get("epoch", 0)))
    return saved["state_dict"]


def fit(run: Run, out: Path, resume: bool = False, lead: bool = True) -> dict:
    """Train ``run`` into its (claimed) folder ``out``: the folder's logs, trace and checkpoint, its
    ``config.yaml`` (``lead``: the process that claimed it), the baselines, then Lightning's fit (from the
    checkpoint with ``resume``). Returns the baselines (:func:`baselines`)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from .logs import ContinuingCSVLogger

    cfg, ckpt = run.cfg, checkpoint_path(out)
    run.guard.checkpoint = str(ckpt)
    run.diagnostics.trace = out / "logs" / "diagnostics.jsonl"
    run.trainer.loggers = [ContinuingCSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="logs", version="tb")]
    if lead:
        if not resume:
            run.diagnostics.trace.unlink(missing_ok=True)  # a new run starts a new trace; a resumed one appends
        save(cfg, out / "config.yaml")
        print(f"sslab: training {cfg.method} on {cfg.dataset} ({run.built.backbone_name}) -> {out}", file=sys.stderr)
    found = baselines(run) if cfg.eval.baselines else {}
    run.trainer.fit(run.module, train_dataloaders=run.loader, ckpt_path=str(ckpt) if resume else None)
    return found


def launch_rank() -> int:
    """This process's global rank as a launcher set it (torchrun, SLURM, Lightning's subprocess launcher), before
    any process group exists; 0 for a single process."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit() and (key != "SLURM_PROCID" or int(os.environ.get("SLURM_NTASKS", "1")) > 1):
            return int(os.environ[key])
    return int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)


def _started_config(out: Path, cfg: Config) -> Config:
    """The config a run was started with (its ``config.yaml``); ``cfg`` itself when there is none."""
    from ..config import resolve

    saved = out / "config.yaml"
    return resolve(str(saved)) if saved.is_file() else cfg


def summarise(run: Run, out: Path, baselines: dict, resume: bool = False) -> dict:
    """The trained run's final numbers (:func:`final_scores`, :func:`summary`), written to ``out/summary.json`` by
    rank 0; a signal stops it between its stages (the last epoch's checkpoint is written: ``--resume`` redoes
    them), before anything is written."""
    scores = final_scores(run)
    result = summary(run, scores, baselines, resume)
    run.guard.signals.check(int(run.trainer.global_step), run.guard.checkpoint)
    if run.trainer.is_global_zero:
        atomic_write_text(json.dumps(result, indent=2) + "\n", out / "summary.json")
    return result


def final_scores(run: Run) -> dict:
    """kNN, linear (``eval.linear``) and online-probe top-1 of the trained backbone on the test split, with
    ``signals.check`` between the stages."""
    cfg, e, module, knn = run.cfg, run.cfg.eval, run.module, run.knn
    step, check = int(run.trainer.global_step), run.guard.signals.check
    check(step, run.guard.checkpoint)
    # the monitor's features of the final epoch (recomputed only when training had nothing left to do)
    ftr, ytr, fte, yte = knn.features or knn.features_of(module.method.backbone.to(run.device), run.device)
    scores = {"knn": knn_accuracy(ftr, ytr, fte, yte, e.knn_k, e.knn_temperature), "linear": None, "online": None}
    check(step, run.guard.checkpoint)
    if e.linear:
        scores["linear"] = linear_probe(ftr, ytr, fte, yte, e.linear_epochs, e.linear_lr, e.linear_weight_decay,
                                        seed=cfg.seed, report=e.linear_report)
        check(step, run.guard.checkpoint)
    if module.probe is not None:
        with torch.no_grad():
            scores["online"] = float((module.probe.to(run.device)(fte).argmax(1) == yte).float().mean())
    return scores


def summary(run: Run, scores: dict, baselines: dict, resume: bool) -> dict:
    """``summary.json``'s content (docs/engine.md lists the keys)."""
    cfg, trainer, report, knn = run.cfg, run.trainer, run.report, run.knn
    top1 = scores["knn"]
    rounded = lambda x: None if x is None else round(x, 4)  # noqa: E731
    return {
        "method": cfg.method, "dataset": cfg.dataset, "backbone": run.built.backbone_name, "epochs": cfg.epochs,
        "steps": int(trainer.global_step), "wall_seconds": round(time.perf_counter() - run.started, 2),
        "images_per_second": round(report.steps * report.global_batch / max(report.train_seconds, 1e-9), 1)
        if report.steps else None,
        "knn_top1": round(top1, 4),
        "knn_top1_best": round(max(top1, knn.best if knn.best is not None else top1), 4),
        "linear_top1": rounded(scores["linear"]), "online_probe_top1": rounded(scores["online"]),
        "final_loss": _metric(trainer, "train/loss_epoch"),
        "z_std": _metric(trainer, "train/z_std"), "embedding_dim": int(run.module.method.embedding_dim),
        "knn": {"k": cfg.eval.knn_k, "temperature": cfg.eval.knn_temperature,
                "split": f"holdout ({cfg.holdout} training images)" if cfg.holdout else run.built.info.test_split},
        "diagnostics": run.diagnostics.final(run.module), "baselines": baselines, "resumed": resume, "seed": cfg.seed,
        "batch_size": run.global_batch,
        "devices": run.world, "accelerator": run.accelerator, "precision": run.precision, "torch": torch.__version__,
    }


def _metric(trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return None if value is None else round(float(value), 6)


def baselines(run: Run) -> dict:
    """kNN (and linear, when ``eval.linear``) top-1 of a randomly initialised encoder of the same
    shape, and of raw pixels for small images: what training has to beat."""
    device, knn = run.device, run.knn
    candidates = {"random_init": knn.features_of(run.random_backbone().to(device), device)}
    train, test = knn.train_data, knn.test_data
    if isinstance(train, TensorImages) and train.images[0].numel() <= 4096:
        keep = train.labels >= 0
        raw = lambda d: d.images.flatten(1).float().to(device)  # noqa: E731
        candidates["raw_pixel"] = (raw(train)[keep], train.labels[keep].to(device), raw(test), test.labels.to(device))
    e = run.cfg.eval
    out = {}
    for name, feats in candidates.items():
        out[f"{name}_knn_top1"] = round(knn_accuracy(*feats, e.knn_k, e.knn_temperature), 4)
        if e.linear:
            out[f"{name}_linear_top1"] = round(linear_probe(*feats, e.linear_epochs, e.linear_lr, e.linear_weight_decay,
                                                            seed=run.cfg.seed), 4)
    return out


__all__ = ["baselines", "decode_workers", "engine_module", "final_scores", "fit", "gpu_defaults", "launch_rank",
           "prepare", "resolve_precision", "strategy_of", "summarise", "summary", "train"]
