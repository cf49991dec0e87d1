"""SIGTERM and SIGINT end a run cleanly: the step in progress finishes, a checkpoint of it is written, one line says so.

Schedulers send SIGTERM before pre-empting a job (SLURM, Kubernetes), people press Ctrl-C. While
the training loop runs, :class:`StopOnSignal` replaces Lightning's SIGTERM handler (which would end
the fit with exit code 0 and no checkpoint) and Python's SIGINT (which would raise in the middle of
a step) with a handler that only records the signal. At the end of the current step -- or of the
epoch, if the signal came during the epoch's evaluation -- the callback writes ``last.ckpt`` of
that step and raises :class:`RunStopped`, which the CLI turns into one line and exit code 128 + the
signal number (143 for SIGTERM, 130 for SIGINT). A signal during the final evaluation stops it at its next stage
(:meth:`StopOnSignal.check`) before ``summary.json`` is written; ``--resume`` then evaluates again.
The checkpoint holds the data loader's place in
the epoch (:class:`~sslab.data.loaders.TensorBatches`), so ``--resume`` continues with the next
batch and ends in the same state as an uninterrupted run. A second Ctrl-C stops at once, as
Python's default would. The previous handlers come back when ``train`` returns.

Under DDP every rank must stop at the same step: the ranks agree (an all-reduce of the flag) on the
steps that log anyway, so a stop costs no extra synchronisation.
"""

from __future__ import annotations

import signal

import lightning.pytorch as pl
import torch
import torch.distributed as dist

from ..io import RunStopped

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopOnSignal(pl.Callback):
    """Records SIGTERM / SIGINT during the fit; checkpoints and raises :class:`RunStopped` at the next step end."""

    def __init__(self, checkpoint: str, check_every: int = 1) -> None:
        self.checkpoint, self.check_every = str(checkpoint), max(1, check_every)
        self.signum: int | None = None

    def _record(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signum = signum

    def install(self) -> dict:
        """Record the signals from now on; returns the handlers it replaced (for :meth:`restore`)."""
        previous = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, self._record)
        return previous

    @staticmethod
    def restore(previous: dict) -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    def check(self, step: int) -> None:
        """Raise :class:`RunStopped` if a signal came; between the final evaluation's stages, whose work a resume
        redoes (the last epoch's checkpoint is already written)."""
        if self.signum:
            raise RunStopped(self.signum, step, self.checkpoint)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # over Lightning's SIGTERM handler, installed at fit start (whose notifier the engine points at _record,
        # so Lightning never sets its own flag); Lightning restores the earlier handlers at the end
        self.install()

    def _agreed(self, trainer: pl.Trainer, step_end: bool) -> int | None:
        if trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return self.signum
        if step_end and trainer.global_step % self.check_every:
            return None
        flag = torch.tensor([self.signum or 0], device=trainer.strategy.root_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag) or None

    def _stop(self, trainer: pl.Trainer, signum: int) -> None:
        pl_module = trainer.lightning_module
        if hasattr(pl_module, "raise_if_nonfinite"):
            pl_module.raise_if_nonfinite()  # never overwrite the last good checkpoint with non-finite weights
        trainer.save_checkpoint(self.checkpoint)
        raise RunStopped(signum, trainer.global_step, self.checkpoint)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch's last step: stop at the epoch's end, after its evaluation and checkpoint
        signum = self._agreed(trainer, step_end=True)
        if signum:
            self._stop(trainer, signum)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        signum = self._agreed(trainer, step_end=False)
        if signum:
            self._stop(trainer, signum)


__all__ = ["RunStopped", "StopOnSignal"]
