"""The engine's training loop for a fixed number of steps, timed and optionally watched step by step.

``sslab bench`` times the real loop (Lightning, the engine's module and hooks) with this, and counts
each step's host reads: ``watch`` is any context manager with ``reset()`` and ``reads() -> dict``
(:class:`sslab.bench.SyncCounter`), entered at the first timed step and read between steps.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import lightning.pytorch as pl
import torch

from .module import SSLModule


def synchronize(device: torch.device) -> None:
    """Wait for the device (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class LoopRun:
    """Mean ms per step after the warm-up and, when watched, each recorded step's number (optimiser steps
    done with it) and reads (``{kind: count}``)."""

    ms: float
    steps: list[int]
    reads: list[dict[str, int]]
    log_every: int

    @property
    def syncs(self) -> list[int]:
        return [sum(r.values()) for r in self.reads]

    @property
    def logging(self) -> list[bool]:
        """Whether each recorded step wrote the logs (Lightning: every ``log_every`` steps)."""
        return [s % self.log_every == 0 for s in self.steps]


def fit_steps(module: SSLModule, batches: Iterable, device: torch.device, precision: str, steps: int, warmup: int,
              log_every: int, watch=None) -> LoopRun:
    """Train ``module`` with Lightning for ``warmup + steps`` batches of ``batches`` (one epoch)."""
    window = StepWindow(warmup, warmup + steps, device, watch)
    trainer = pl.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, precision=precision,
                         max_steps=warmup + steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         log_every_n_steps=log_every, use_distributed_sampler=False, callbacks=[window])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        trainer.fit(module, train_dataloaders=batches)
    return LoopRun(1000 * (window.t1 - window.t0) / steps, window.steps, window.reads, log_every)


class StepWindow(pl.Callback):
    """Times steps ``[start, stop)``; with ``watch``, records its reads for each step, from one batch start to
    the next (so the logging done after a step counts in it; the last step, which ends the epoch, is not
    recorded)."""

    def __init__(self, start: int, stop: int, device: torch.device, watch) -> None:
        self.start, self.stop, self.device, self.watch = start, stop, device, watch
        self.t0 = self.t1 = 0.0
        self.steps: list[int] = []
        self.reads: list[dict[str, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step  # steps done before this one
        if step == self.start:
            synchronize(self.device)
            self.t0 = time.perf_counter()
        if self.watch is None or step < self.start:
            return
        if step == self.start:
            self.watch.__enter__()
        else:
            self.steps.append(step)  # the step just done
            self.reads.append(self.watch.reads())
        self.watch.reset()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.stop:
            synchronize(self.device)
            self.t1 = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.watch is not None and self.t0:
            self.watch.__exit__(None, None, None)
