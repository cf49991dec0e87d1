"""Lightning's checkpoint I/O through :mod:`sslab.io` (atomic writes, ``weights_only`` reads), and when an epoch's is due."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.plugins.io import CheckpointIO

from ..io import atomic_save, safe_load


def due(done: int, epochs: int | None, every: int = 1) -> bool:
    """Whether the checkpoint is written after ``done`` epochs: every ``every``-th epoch and the last one."""
    return done % max(1, every) == 0 or done >= (epochs or done)


class AtomicCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O: atomic writes, ``weights_only`` reads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return safe_load(path, map_location or "cpu")

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)
