"""``prepare(cfg) -> Run``: everything a training run is made of, built and checked, nothing written.

A :class:`Run` holds what :func:`sslab.engine.train.fit` and the summary consume: the devices (the
accelerator with ``auto`` resolved, the precision, the world size), the data (:class:`~sslab.build.Built`:
splits, view pipeline, method), the loader and its steps per epoch, the engine's module, the monitors
(kNN with the dataset's normalisation, the epoch report, the diagnostics on their probe set), the run
guard (:mod:`.guard`), the Lightning trainer, and the factory of the baselines' randomly initialised
encoder. Every check on bad input -- names, data, devices, a batch larger than the split, the Trainer's
own configuration (a strategy, a device count) -- happens here, before the run folder is claimed.

The order of construction is the order of random draws: the seed is set first, then the data and the
method are built (:func:`sslab.build.build`), so a seeded run is the same run however it is driven.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import lightning.pytorch as pl
import torch
from torch import nn

from ..build import Built, backbone_from_config, build, normalization, probe_images
from ..config import Config
from ..data import TensorBatches
from ..data.datasets import TensorImages
from ..data.decode import collate_images
from ..data.loaders import EpochPlace, ResumableLoader
from .callbacks import EpochReport, KNNMonitor
from .checkpoint import AtomicCheckpointIO
from .diagnostics import DiagnosticsMonitor
from .guard import RunGuard
from .lightning_compat import route_sigterm
from .module import SSLModule


@dataclass(frozen=True)
class Run:
    """A prepared training run (the objects are live: training changes their state, not these fields)."""

    cfg: Config
    built: Built  # data, views and method (sslab.build)
    accelerator: str  # "cpu" or "gpu" (``auto`` resolved)
    device: torch.device  # where the final evaluation and the baselines run
    precision: str  # Lightning's precision (``auto`` resolved)
    world: int  # processes over all nodes
    loader: object  # TensorBatches, ResumableLoader or a DataLoader
    steps_per_epoch: int
    module: SSLModule
    knn: KNNMonitor
    report: EpochReport
    diagnostics: DiagnosticsMonitor
    guard: RunGuard
    trainer: pl.Trainer
    random_backbone: Callable[[], nn.Module]  # a freshly initialised encoder of the trained one's shape (baselines)
    started: float  # time.perf_counter() when preparation began: the run's wall time counts from here

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.world


def prepare(cfg: Config) -> Run:
    """Build and check everything ``cfg``'s run needs; write nothing. Sets the process's seed, determinism and
    (on a GPU) TF32 / cuDNN settings, as the run needs them from here on."""
    started = time.perf_counter()
    torch.set_flush_denormal(True)  # denormal floats slow CPU kernels by 10x+ (seen with SimSiam)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    built = build(cfg)
    accelerator, device = devices(cfg)
    world = cfg.devices * cfg.num_nodes
    precision = resolve_precision(cfg.precision, accelerator)
    if accelerator == "gpu":
        gpu_defaults(cfg)
    loader = _loader(cfg, built.pretrain, world)
    steps_per_epoch = _steps_per_epoch(loader, built.pretrain, cfg.batch_size, world)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} x {world} device(s) exceeds the {len(built.pretrain)} images of "
                         f"{cfg.dataset}'s {built.info.pretrain_split} split: not one full batch per epoch")
    module = engine_module(cfg, built.method, built.pipeline, built.num_classes, steps_per_epoch, cfg.epochs,
                           cfg.batch_size * world)
    knn, report, diagnostics = _monitors(cfg, built, world)
    guard = RunGuard(loader if isinstance(loader, EpochPlace) else None, every=cfg.checkpoint_every,
                     check_every=cfg.log_every_n_steps)
    trainer = _trainer(cfg, accelerator, precision, world, steps_per_epoch, loader,
                       guard.around(knn, report, diagnostics))
    route_sigterm(trainer, guard.signals.record)  # Lightning's SIGTERM handler, installed at fit start, records into it
    return Run(cfg=cfg, built=built, accelerator=accelerator, device=device, precision=precision, world=world,
               loader=loader, steps_per_epoch=steps_per_epoch, module=module, knn=knn, report=report,
               diagnostics=diagnostics, guard=guard, trainer=trainer, random_backbone=_random_backbone(cfg, built),
               started=started)


def devices(cfg: Config) -> tuple[str, torch.device]:
    """(accelerator, device) with ``auto`` resolved; a ValueError when ``cfg`` asks for more GPUs than there are."""
    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and torch.cuda.device_count() < cfg.devices:
        raise ValueError(f"accelerator=gpu devices={cfg.devices}: this machine has {torch.cuda.device_count()} CUDA "
                         "GPU(s); use accelerator=cpu (or auto), or fewer devices")
    return accelerator, torch.device("cuda" if accelerator == "gpu" else "cpu")


def _monitors(cfg: Config, built: Built, world: int) -> tuple[KNNMonitor, EpochReport, DiagnosticsMonitor]:
    """The kNN monitor (with the normalisation the backbone trains on), the epoch report and the diagnostics
    on their probe set; the diagnostics' trace file is the run folder's, set when the run gets one."""
    knn = KNNMonitor(built.train, built.test, built.image_size, *normalization(cfg), cfg.eval.knn_k,
                     cfg.eval.knn_temperature, cfg.eval.knn_every, channels_last=cfg.channels_last,
                     num_workers=decode_workers(cfg, built.pretrain), subset=cfg.eval.knn_subset)
    report = EpochReport(knn, cfg.batch_size * world)
    diagnostics = DiagnosticsMonitor(probe_images(built.pretrain, cfg.diagnostics.probe_size), cfg.diagnostics)
    return knn, report, diagnostics


def _random_backbone(cfg: Config, built: Built) -> Callable[[], nn.Module]:
    """The baselines' encoder: the trained one's shape, initialised from ``seed + 1`` without touching the
    process's random state (so computing the baselines changes no draw of training)."""

    def make() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            return backbone_from_config(cfg, built.info.channels, built.image_size)

    return make


def _trainer(cfg: Config, accelerator: str, precision: str, world: int, steps_per_epoch: int, loader,
             callbacks: list) -> pl.Trainer:
    """Lightning's Trainer for the run, without loggers (the run folder's are attached when it has one)."""
    show_bar = cfg.progress and os.isatty(2)  # a live bar on a terminal; plain epoch lines in logs
    if show_bar:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks = [*callbacks, RichProgressBar(leave=False)]
    return make_trainer(
        accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy_of(cfg, world),
        sync_batchnorm=cfg.sync_batchnorm, precision=precision, max_epochs=cfg.epochs, deterministic=cfg.deterministic,
        enable_checkpointing=False,  # the run guard writes last.ckpt itself
        logger=False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
        enable_progress_bar=show_bar, enable_model_summary=False,
        log_every_n_steps=min(cfg.log_every_n_steps, max(1, steps_per_epoch)), num_sanity_val_steps=0,
        use_distributed_sampler=not isinstance(loader, EpochPlace), limit_val_batches=0,
    )


def make_trainer(**kw) -> pl.Trainer:
    """``pl.Trainer(**kw)``, its configuration errors (a device count, a strategy) as one-line ValueErrors."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return pl.Trainer(**kw)
    except MisconfigurationException as e:
        raise ValueError(str(e).strip().splitlines()[0]) from None


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


def engine_module(cfg: Config, method, pipeline, num_classes: int, steps_per_epoch: int, epochs: int,
                  global_batch: int) -> SSLModule:
    """The engine's :class:`SSLModule` for ``cfg``: the method in channels-last memory and compiled in place
    (``nn.Module.compile``: the state_dict keeps its keys, checkpoints stay loadable) as ``cfg`` asks."""
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if cfg.compile:
        method.compile(**cfg.compile_args)
    return SSLModule(method, pipeline, cfg.optim, num_classes, steps_per_epoch, epochs, global_batch, seed=cfg.seed,
                     online_probe=cfg.eval.online_probe, channels_last=cfg.channels_last,
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


__all__ = ["Run", "decode_workers", "devices", "engine_module", "gpu_defaults", "make_trainer", "prepare",
           "resolve_precision", "strategy_of"]
