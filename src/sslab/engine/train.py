"""``train(cfg, out)``: data and method from :func:`sslab.build.build`, then trainer, fit, evaluate, summarise.

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
from dataclasses import asdict
from pathlib import Path

import torch

from ..build import backbone_from_config, build, normalization, probe_images
from ..config import Config, save
from ..data import TensorBatches
from ..data.datasets import TensorImages
from ..data.decode import collate_images
from ..data.loaders import EpochPlace, ResumableLoader
from ..evaluation import knn_accuracy, linear_probe
from ..io import CheckpointError, atomic_write_text, check_fits, safe_load


def _loader(cfg: Config, data, world: int):
    """In-memory data: :class:`TensorBatches` (moved to the device and told its rank at fit start);
    image folders: in one process a :class:`ResumableLoader` (each epoch's order from ``(seed, epoch)``, its
    place in the epoch in checkpoints), under DDP a DataLoader whose sampler Lightning replaces by a
    DistributedSampler (also seeded by epoch)."""
    if isinstance(data, TensorImages):
        return TensorBatches(data, cfg.batch_size, seed=cfg.seed, world=world)
    from torch.utils.data import DataLoader

    workers = decode_workers(cfg, data)
    kw = dict(num_workers=workers, collate_fn=collate_images, pin_memory=torch.cuda.is_available(),
              persistent_workers=workers > 0)
    if world == 1 and cfg.strategy in ("auto", "single_device"):  # any other strategy makes Lightning shard the data
        return ResumableLoader(data, cfg.batch_size, seed=cfg.seed, **kw)
    return DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True, **kw)


def _steps_per_epoch(loader, data, batch_size: int, world: int) -> int:
    """Optimiser steps per epoch: the loader's length, or for a DataLoader that Lightning will shard under
    DDP (a DistributedSampler: ceil(N / world) images per rank) the length it will have then."""
    if isinstance(loader, EpochPlace) or world == 1:
        return len(loader)
    return -(-len(data) // world) // batch_size


def decode_workers(cfg: Config, data=None) -> int:
    """DataLoader workers for ``data``: none for an in-memory split (:class:`TensorImages`); else
    ``num_workers``, or by default the cores this process may use divided among the devices of this node
    (JPEG decoding is what limits an image-folder run: about 270-320 images/s per core at 500 x 375); for
    pre-decoded data 0: reading the memory map in the training process is faster than shipping the images
    from workers (measured 9.9k against 2.5k images/s on 2 cores), and with a step that never waits for
    the GPU the read overlaps the GPU's work."""
    if isinstance(data, TensorImages):
        return 0
    if cfg.num_workers is not None:
        return cfg.num_workers
    if cfg.predecode:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, cfg.devices))


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
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import RichProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from .callbacks import EpochCheckpoint, EpochCheckpointRefresh, EpochReport, KNNMonitor, LoaderPlace
    from .checkpoint import AtomicCheckpointIO
    from .diagnostics import DiagnosticsMonitor
    from .logs import ContinuingCSVLogger
    from .runfolder import check_out, claim, resume_changes
    from .signals import StopOnSignal

    _quiet_lightning()
    out = Path(out)
    lead = launch_rank() == 0  # the processes a DDP launcher starts for the other ranks find the folder claimed
    if lead:
        check_out(out, resume, overwrite)
    ckpt = out / "checkpoints" / "last.ckpt"
    if resume and not ckpt.is_file():
        raise CheckpointError(f"cannot resume: {ckpt} not found (start the run again with --overwrite)")
    saved = safe_load(ckpt) if resume else None  # a corrupt checkpoint fails here, before anything is written
    if resume:
        resume_changes(_started_config(out, cfg), cfg, saved_epoch=int(saved.get("epoch", 0)))
    wall0 = time.perf_counter()
    torch.set_flush_denormal(True)  # denormal floats slow CPU kernels by 10x+ (seen with SimSiam)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    built = build(cfg)
    info, method, size = built.info, built.method, built.image_size

    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and torch.cuda.device_count() < cfg.devices:
        raise ValueError(f"accelerator=gpu devices={cfg.devices}: this machine has {torch.cuda.device_count()} CUDA "
                         "GPU(s); use accelerator=cpu (or auto), or fewer devices")
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    world = cfg.devices * cfg.num_nodes
    precision = resolve_precision(cfg.precision, accelerator)
    if accelerator == "gpu":
        gpu_defaults(cfg)
    loader = _loader(cfg, built.pretrain, world)
    steps_per_epoch = _steps_per_epoch(loader, built.pretrain, cfg.batch_size, world)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} x {world} device(s) exceeds the {len(built.pretrain)} images of "
                         f"{cfg.dataset}'s {info.pretrain_split} split: not one full batch per epoch")
    module = engine_module(cfg, method, built.pipeline, built.num_classes, steps_per_epoch, cfg.epochs, cfg.batch_size * world)
    if saved is not None:
        check_fits(module.state_dict(), saved["state_dict"], ckpt, f"this run's {cfg.method} ({built.backbone_name})",
                   exact=True)
        del saved  # Lightning loads its own copy
    knn = KNNMonitor(built.train, built.test, size, *normalization(cfg), cfg.eval.knn_k, cfg.eval.knn_temperature,
                     cfg.eval.knn_every, channels_last=cfg.channels_last, num_workers=decode_workers(cfg, built.pretrain),
                     subset=cfg.eval.knn_subset)
    report = EpochReport(knn, cfg.batch_size * world)
    trace = out / "logs" / "diagnostics.jsonl"
    diag = DiagnosticsMonitor(probe_images(built.pretrain, cfg.diagnostics.probe_size), cfg.diagnostics, trace=trace)
    show_bar = cfg.progress and os.isatty(2)  # a live bar on a terminal; plain epoch lines in logs
    # the epoch's checkpoint first, so an error in an evaluation callback cannot lose it; rewritten after
    # them when their state (the best kNN so far) changed
    checkpoint = EpochCheckpoint(ckpt, every=cfg.checkpoint_every)
    placement = [LoaderPlace(loader)] if isinstance(loader, EpochPlace) else []
    stop = StopOnSignal(ckpt, check_every=cfg.log_every_n_steps)  # after LoaderPlace: the loader's place is counted
    trainer = _trainer(
        accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy_of(cfg, world),
        sync_batchnorm=cfg.sync_batchnorm,
        precision=precision, max_epochs=cfg.epochs, deterministic=cfg.deterministic,
        enable_checkpointing=False,  # EpochCheckpoint writes last.ckpt itself
        logger=[ContinuingCSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="logs", version="tb")],
        callbacks=[checkpoint, knn, report, diag, EpochCheckpointRefresh(checkpoint), *placement, stop]
        + ([RichProgressBar(leave=False)] if show_bar else []),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=show_bar, enable_model_summary=False,
        log_every_n_steps=min(cfg.log_every_n_steps, max(1, steps_per_epoch)), num_sanity_val_steps=0,
        use_distributed_sampler=not isinstance(loader, EpochPlace), limit_val_batches=0,
    )
    folder = claim(out, resume, overwrite) if lead else None  # validation is over: from here on the run writes
    handlers = None
    try:
        handlers = stop.install()  # a signal before training starts stops the run at its first step
        connector = getattr(trainer, "_signal_connector", None)
        if connector is not None and hasattr(connector, "_sigterm_notifier_fn"):
            # Lightning installs this at fit start as its SIGTERM handler (ending the fit with exit code 0 and, under
            # DDP, broadcasting from inside the handler); until on_train_start puts ours back, it records the signal
            connector._sigterm_notifier_fn = stop._record
        if folder is not None:
            if not resume:
                trace.unlink(missing_ok=True)  # a new run starts a new trace; a resumed one appends
            save(cfg, out / "config.yaml")
            print(f"sslab: training {cfg.method} on {cfg.dataset} ({built.backbone_name}) -> {out}", file=sys.stderr)
        baselines = _baselines(cfg, knn, info.channels, size, device) if cfg.eval.baselines else {}
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(ckpt) if resume else None)
        # a signal from here on (the last epoch's checkpoint is written) stops the final evaluation unsummarised
        return _finish(cfg, out, trainer, module, knn, report, diag, built, baselines, device, world, accelerator,
                       precision, resume, wall0, stop)
    finally:
        if handlers is not None:
            stop.restore(handlers)
        if folder is not None:
            folder.release()


def launch_rank() -> int:
    """This process's global rank as a launcher set it (torchrun, SLURM, Lightning's subprocess launcher), before
    any process group exists; 0 for a single process."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit() and (key != "SLURM_PROCID" or int(os.environ.get("SLURM_NTASKS", "1")) > 1):
            return int(os.environ[key])
    return int(os.environ.get("LOCAL_RANK", "0") or 0) + int(os.environ.get("NODE_RANK", "0") or 0)


def _trainer(**kw):
    """``pl.Trainer(**kw)``, its configuration errors (a device count, a strategy) as one-line ValueErrors."""
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**kw)
    except MisconfigurationException as e:
        raise ValueError(str(e).strip().splitlines()[0]) from None


def _started_config(out: Path, cfg: Config) -> Config:
    """The config a run was started with (its ``config.yaml``); ``cfg`` itself when there is none."""
    from ..config import resolve

    saved = out / "config.yaml"
    return resolve(str(saved)) if saved.is_file() else cfg


def _finish(cfg: Config, out: Path, trainer, module, knn, report, diag, built, baselines: dict, device, world: int,
            accelerator: str, precision: str, resume: bool, wall0: float, stop) -> dict:
    """Final kNN / linear / online-probe numbers and ``summary.json``; ``stop.check`` between the stages."""
    info = built.info
    step = int(trainer.global_step)
    stop.check(step)

    # the monitor's features of the final epoch (recomputed only when training had nothing left to do)
    ftr, ytr, fte, yte = knn.features or knn.features_of(module.method.backbone.to(device), device)
    knn_top1 = knn_accuracy(ftr, ytr, fte, yte, cfg.eval.knn_k, cfg.eval.knn_temperature)
    stop.check(step)
    linear_top1 = None
    if cfg.eval.linear:
        linear_top1 = linear_probe(ftr, ytr, fte, yte, cfg.eval.linear_epochs, cfg.eval.linear_lr,
                                   cfg.eval.linear_weight_decay, seed=cfg.seed, report=cfg.eval.linear_report)
        stop.check(step)
    online = None
    if module.probe is not None:
        with torch.no_grad():
            online = float((module.probe.to(device)(fte).argmax(1) == yte).float().mean())
    summary = {
        "method": cfg.method, "dataset": cfg.dataset, "backbone": built.backbone_name, "epochs": cfg.epochs,
        "steps": int(trainer.global_step), "wall_seconds": round(time.perf_counter() - wall0, 2),
        "images_per_second": round(report.steps * report.global_batch / max(report.train_seconds, 1e-9), 1)
        if report.steps else None,
        "knn_top1": round(knn_top1, 4),
        "knn_top1_best": round(max(knn_top1, knn.best if knn.best is not None else knn_top1), 4),
        "linear_top1": None if linear_top1 is None else round(linear_top1, 4),
        "online_probe_top1": None if online is None else round(online, 4),
        "final_loss": _metric(trainer, "train/loss_epoch"),
        "z_std": _metric(trainer, "train/z_std"), "embedding_dim": int(module.method.embedding_dim),
        "knn": {"k": cfg.eval.knn_k, "temperature": cfg.eval.knn_temperature,
                "split": f"holdout ({cfg.holdout} training images)" if cfg.holdout else info.test_split},
        "diagnostics": diag.final(module), "baselines": baselines, "resumed": resume, "seed": cfg.seed,
        "batch_size": cfg.batch_size * world,
        "devices": world, "accelerator": accelerator, "precision": precision, "torch": torch.__version__,
    }
    stop.check(step)
    if trainer.is_global_zero:
        atomic_write_text(json.dumps(summary, indent=2) + "\n", out / "summary.json")
    return summary


def engine_module(cfg: Config, method, pipeline, num_classes: int, steps_per_epoch: int, epochs: int,
                  global_batch: int):
    """The engine's :class:`SSLModule` for ``cfg``: the method in channels-last memory and compiled in place
    (``nn.Module.compile``: the state_dict keeps its keys, checkpoints stay loadable) as ``cfg`` asks."""
    from .module import SSLModule

    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if cfg.compile:
        method.compile(**cfg.compile_args)
    return SSLModule(method, pipeline, cfg.optim, num_classes, steps_per_epoch, epochs, global_batch, seed=cfg.seed,
                     online_probe=cfg.eval.online_probe, channels_last=cfg.channels_last, kill_at_step=cfg.kill_at_step,
                     stop_at_step=cfg.stop_at_step,
                     check_every=cfg.log_every_n_steps)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: bf16 autocast on a GPU that has bf16 (Ampere and later), fp16 with loss scaling on an older
    one, float32 on the CPU (where autocast is slower than float32); any other value as given."""
    if precision != "auto":
        return precision
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def gpu_defaults(cfg: Config) -> None:
    """TF32 tensor cores for float32 matmuls/convolutions and cuDNN autotuning, as ``cfg`` asks (the latter
    never in a deterministic run)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    torch.set_float32_matmul_precision("high" if cfg.tf32 else "highest")
    torch.backends.cudnn.benchmark = cfg.cudnn_benchmark and not cfg.deterministic


def strategy_of(cfg: Config, world: int):
    """Lightning's strategy: with several processes and ``strategy`` auto or ddp, DDP with ``cfg.ddp``'s options."""
    if world > 1 and cfg.strategy in ("auto", "ddp"):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(**asdict(cfg.ddp))
    return cfg.strategy


def _metric(trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return None if value is None else round(float(value), 6)


def _baselines(cfg: Config, knn, channels: int, size: int, device) -> dict:
    """kNN (and linear, when ``eval.linear``) top-1 of a randomly initialised encoder of the same
    shape, and of raw pixels for small images: what training has to beat."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        rand = backbone_from_config(cfg, channels, size).to(device)
    candidates = {"random_init": knn.features_of(rand, device)}
    train, test = knn.train_data, knn.test_data
    if isinstance(train, TensorImages) and train.images[0].numel() <= 4096:
        keep = train.labels >= 0
        raw = lambda d: d.images.flatten(1).float().to(device)  # noqa: E731
        candidates["raw_pixel"] = (raw(train)[keep], train.labels[keep].to(device), raw(test), test.labels.to(device))
    e = cfg.eval
    out = {}
    for name, feats in candidates.items():
        out[f"{name}_knn_top1"] = round(knn_accuracy(*feats, e.knn_k, e.knn_temperature), 4)
        if e.linear:
            out[f"{name}_linear_top1"] = round(linear_probe(*feats, e.linear_epochs, e.linear_lr, e.linear_weight_decay,
                                                            seed=cfg.seed), 4)
    return out
