"""SIGTERM and SIGINT end a run cleanly: the step in progress finishes, a checkpoint of it is written, one line says so.

Schedulers send SIGTERM before pre-empting a job (SLURM, Kubernetes), people press Ctrl-C. From the
moment the run folder is claimed until ``train`` returns, :class:`SignalFlag` replaces Python's SIGINT
handler (which would raise in the middle of a step) and the caller's SIGTERM handler with one that
only records the signal; Lightning's own SIGTERM handler (which would end the fit with exit code 0 and
no checkpoint) is pointed at the same record (:mod:`.lightning_compat`) and replaced again when
training starts. The run guard (:class:`~sslab.engine.guard.RunGuard`) reads the flag at the end of
the current step -- or of the epoch, if the signal came during the epoch's last step or its
evaluation -- writes ``last.ckpt`` of that step and raises :class:`RunStopped`, which the CLI turns
into one line and exit code 128 + the signal number (143 for SIGTERM, 130 for SIGINT). A signal during
the final evaluation stops it at its next stage (:meth:`SignalFlag.check`) before ``summary.json`` is
written; ``--resume`` then evaluates again. The checkpoint holds the data loader's place in the epoch
(:class:`~sslab.data.loaders.TensorBatches`), so ``--resume`` continues with the next batch and ends in
the same state as an uninterrupted run. A second Ctrl-C stops at once, as Python's default would. The
previous handlers come back when ``train`` returns.

Under DDP every rank must stop at the same step: the ranks agree (an all-reduce of the flag) on the
steps that log anyway, so a stop costs no extra synchronisation.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import torch
import torch.distributed as dist

from ..io import RunStopped

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalFlag:
    """The SIGTERM / SIGINT that came during a run (``signum``; None: none yet)."""

    def __init__(self, check_every: int = 1) -> None:
        self.check_every = max(1, check_every)  # under DDP, the steps on which the ranks agree
        self.signum: int | None = None

    def record(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signum = signum

    def install(self) -> dict:
        """Record the signals from now on; returns the handlers it replaced (for :meth:`restore`)."""
        previous = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, self.record)
        return previous

    @staticmethod
    def restore(previous: dict) -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    @contextmanager
    def recording(self) -> Iterator[SignalFlag]:
        """Record the signals inside the block; the handlers it replaced come back after it."""
        previous = self.install()
        try:
            yield self
        finally:
            self.restore(previous)

    def check(self, step: int, checkpoint: str) -> None:
        """Raise :class:`RunStopped` if a signal came; between the final evaluation's stages, whose work a resume
        redoes (the last epoch's checkpoint is already written)."""
        if self.signum:
            raise RunStopped(self.signum, step, checkpoint)

    def agreed(self, trainer: pl.Trainer, step_end: bool) -> int | None:
        """The signal every rank acts on: this process's own in one process; under DDP the ranks' maximum, read on
        the logging steps and at epoch ends (None elsewhere)."""
        if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return self.signum
        if step_end and trainer.global_step % self.check_every:
            return None
        flag = torch.tensor([self.signum or 0], device=trainer.strategy.root_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag) or None


__all__ = ["RunStopped", "SignalFlag"]
