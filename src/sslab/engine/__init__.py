"""Lightning glue: the training module, callbacks, the checkpoint I/O plugin and the ``train`` entry point.

``CheckpointError``, ``atomic_save`` and ``safe_load`` live in :mod:`sslab.io` (no Lightning).
"""

from .checkpoint import AtomicCheckpointIO
from .train import train

__all__ = ["AtomicCheckpointIO", "train"]
