"""Atomic checkpoints that load without unpickling code.

A checkpoint is written to a temporary file in the same folder and moved over the old one with
``os.replace`` (atomic on POSIX and Windows), so a run killed mid-write leaves the previous
checkpoint intact, never a truncated one. Loading uses ``torch.load(weights_only=True)``: only
tensors and plain containers, so a tampered file cannot execute code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import CheckpointIO


class CheckpointError(ValueError):
    """A missing, corrupt or foreign checkpoint (one-line message)."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not an sslab checkpoint ({first[:200]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict'; not a Lightning/sslab checkpoint")
    return ckpt


class AtomicCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O: atomic writes, ``weights_only`` reads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return safe_load(path, map_location or "cpu")

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)
