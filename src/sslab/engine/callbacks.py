"""Callbacks: periodic kNN evaluation of the backbone and a one-line-per-epoch report.

The run's checkpoint, signals and loader place are the run guard's (:mod:`.guard`), which places these
between its steps."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch
from rich.console import Console

from ..evaluation import knn_accuracy, sharded_features


class KNNMonitor(pl.Callback):
    """Every ``every`` epochs (and after the last), kNN top-1 of the backbone on the test split; ``best``
    is the highest so far (LightlySSL's benchmarks report it; it is kept in checkpoints, so a resumed
    run continues it). Under DDP each rank extracts its share of the images and all ranks gather the
    features; ``subset`` > 0 makes the in-training evaluations use the first ``subset`` train and test
    images (a cached-size monitor for large data sets), the last epoch's always all of them."""

    def __init__(self, train_data, test_data, size: int, mean, std, k: int = 20, temperature: float = 0.07,
                 every: int = 5, channels_last: bool = False, num_workers: int = 0, subset: int = 0) -> None:
        self.train_data, self.test_data = train_data, test_data
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        self.k, self.temperature, self.every = k, temperature, every
        self.channels_last, self.num_workers, self.subset = channels_last, num_workers, subset
        self.last: float | None = None
        self.best: float | None = None
        self.features: tuple[torch.Tensor, ...] | None = None  # (train f, train y, test f, test y) of the last epoch

    def features_of(self, backbone: torch.nn.Module, device, partial: bool = False) -> tuple[torch.Tensor, ...]:
        """Labelled train features and test features of ``backbone`` (with ``partial``, of the subset)."""
        kw = dict(size=self.size, mean=self.mean, std=self.std, device=device, channels_last=self.channels_last,
                  num_workers=self.num_workers, limit=self.subset if partial and self.subset > 0 else None)
        ftr, ytr = sharded_features(backbone, self.train_data, **kw)
        fte, yte = sharded_features(backbone, self.test_data, **kw)
        keep = ytr >= 0
        return ftr[keep], ytr[keep], fte, yte

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if (self.every and epoch % self.every == 0) or epoch == trainer.max_epochs:
            feats = self.features_of(pl_module.method.backbone, pl_module.device, partial=epoch != trainer.max_epochs)
            self.last = knn_accuracy(*feats, self.k, self.temperature)
            self.best = self.last if self.best is None else max(self.best, self.last)
            self.features = feats if epoch == trainer.max_epochs else None
            pl_module.log("eval/knn_top1", self.last, sync_dist=False, rank_zero_only=True)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict.get("best")


class EpochReport(pl.Callback):
    """Prints ``epoch i/n  loss  knn  images/s`` once per epoch (rank 0) and measures throughput."""

    def __init__(self, knn: KNNMonitor | None, global_batch: int) -> None:
        self.knn, self.global_batch = knn, global_batch
        self.console = Console(stderr=True, highlight=False)
        self.train_seconds = 0.0
        self.steps = 0
        self._t0 = 0.0
        self._s0 = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts no epoch before its first step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0, self._s0 = time.perf_counter(), trainer.global_step
        self._t_last = self._t0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._t_last = time.perf_counter()  # training time only: evaluation after the last batch is excluded

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        dt = self._t_last - self._t0
        steps = trainer.global_step - self._s0
        self.train_seconds += dt
        self.steps += steps
        # every rank reads the metrics: under DDP reading them is a collective (an all-reduce)
        loss = trainer.callback_metrics.get("train/loss_epoch")
        if trainer.is_global_zero:
            knn = f"  knn {self.knn.last:.4f}" if self.knn is not None and self.knn.last is not None else ""
            ips = steps * self.global_batch / max(dt, 1e-9)
            self.console.print(
                f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  loss {float(loss):.4f}{knn}  "
                f"{ips:,.0f} img/s  {dt:.1f}s"
            )
