"""The run guard: the one owner of a run's checkpoint, its stop on a signal and the data loader's place.

What must happen around a step and an epoch happens in one order, written here once. Lightning calls
callbacks in the order of the trainer's list, so :meth:`RunGuard.around` makes that list itself: the
guard's opening, the evaluation callbacks (kNN, the epoch report, the diagnostics), then the guard::

    fit start     guard      the in-memory loader onto this process's device, told its DDP rank
    train start   guard      the signal handlers, over the ones Lightning installs when the fit starts
    batch end     guard      1. the loader's place: the batches of this epoch trained on (a checkpoint
                                resumes after them)
                             2. a signal (:class:`~.signals.SignalFlag`, agreed by the ranks) -> the
                                checkpoint of this step and :class:`~sslab.io.RunStopped`; on the epoch's
                                last step the stop waits for the epoch's end
    epoch end     opening    1. the epoch's checkpoint when due (``checkpoint_every``, and the last
                                epoch): before the evaluations, so an error in one cannot lose it
                  evaluations
                  guard      2. the checkpoint again when their state (the best kNN, kept in the
                                checkpoint) changed
                             3. a signal -> the checkpoint and :class:`~sslab.io.RunStopped`

Checkpoints go through the trainer's checkpoint I/O (:class:`~.checkpoint.AtomicCheckpointIO`:
atomic); the module has checked the loss's finiteness at the epoch's last step, and a stop checks it
since the last check, so none holds non-finite weights. The guard keeps no state of its own in the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from ..io import RunStopped
from .checkpoint import due
from .signals import SignalFlag


class RunGuard(pl.Callback):
    """Checkpoint, signals and loader place of one run (the module docstring gives the order)."""

    def __init__(self, loader=None, every: int = 1, check_every: int = 1) -> None:
        # loader: an EpochPlace (TensorBatches, ResumableLoader) whose place is checkpointed, or None
        self.loader, self.every = loader, max(1, every)
        self.signals = SignalFlag(check_every)
        self.checkpoint = ""  # the run's last.ckpt, set by the engine when the run has a folder
        self.written: list | None = None  # the callbacks' states in the epoch's checkpoint just written

    def around(self, *evaluations: pl.Callback) -> list[pl.Callback]:
        """The trainer's callback list: the guard's opening, ``evaluations`` in this order, the guard."""
        return [_EpochOpening(self), *evaluations, self]

    def save(self, trainer: pl.Trainer) -> None:
        """``last.ckpt`` of the trainer's state now."""
        trainer.save_checkpoint(self.checkpoint)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if hasattr(self.loader, "to"):
            self.loader.to(pl_module.device)
            self.loader.rank, self.loader.world = trainer.global_rank, trainer.world_size

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # over Lightning's SIGTERM handler, installed at fit start (whose notifier the engine points at the flag,
        # so Lightning never sets its own); Lightning restores the earlier handlers, the flag's, at the end
        self.signals.install()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.loader is not None:
            self.loader.position = batch_idx + 1  # batches of this epoch trained on: a checkpoint resumes after them
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the epoch's last step: stop at the epoch's end, after its evaluation and checkpoint
        self._stop_if_signalled(trainer, step_end=True)

    def open_epoch_end(self, trainer: pl.Trainer) -> None:
        """Step 1 of an epoch's end: its checkpoint, when due."""
        self.written = None
        if due(trainer.current_epoch + 1, trainer.max_epochs, self.every):
            self.save(trainer)
            self.written = callback_states(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.written is not None and callback_states(trainer) != self.written:
            self.save(trainer)
        self._stop_if_signalled(trainer, step_end=False)

    def _stop_if_signalled(self, trainer: pl.Trainer, step_end: bool) -> None:
        signum = self.signals.agreed(trainer, step_end)
        if signum:
            module = trainer.lightning_module
            if hasattr(module, "raise_if_nonfinite"):
                module.raise_if_nonfinite()  # never overwrite the last good checkpoint with non-finite weights
            self.save(trainer)
            raise RunStopped(signum, trainer.global_step, self.checkpoint)


class _EpochOpening(pl.Callback):
    """The guard's step before the evaluations at an epoch's end (listed first by :meth:`RunGuard.around`)."""

    def __init__(self, guard: RunGuard) -> None:
        self.guard = guard

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.guard.open_epoch_end(trainer)


def callback_states(trainer: pl.Trainer) -> list:
    return [repr(cb.state_dict()) for cb in getattr(trainer, "callbacks", [])]


def checkpoint_path(out: str | Path) -> Path:
    """A run folder's checkpoint, the one ``--resume`` reads."""
    return Path(out) / "checkpoints" / "last.ckpt"


__all__ = ["RunGuard", "callback_states", "checkpoint_path"]
