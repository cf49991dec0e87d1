"""Lightning glue: the training module, callbacks, atomic checkpoints and the ``train`` entry point."""

from .checkpoint import AtomicCheckpointIO, CheckpointError, atomic_save, safe_load
from .train import SUMMARY_KEYS, train

__all__ = ["AtomicCheckpointIO", "CheckpointError", "SUMMARY_KEYS", "atomic_save", "safe_load", "train"]
