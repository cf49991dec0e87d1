"""Atomic writes and checkpoints that load without unpickling code (no Lightning).

A file is written to a temporary file in the same folder and moved over the old one with
``os.replace`` (atomic on POSIX and Windows), so a run killed mid-write leaves the previous
file intact, never a truncated one. Loading uses ``torch.load(weights_only=True)``: only
tensors and plain containers, so a tampered file cannot execute code. The engine's Lightning
plugin (:class:`sslab.engine.checkpoint.AtomicCheckpointIO`) calls these; ``sslab eval`` and
``sslab analyze`` call them directly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A missing, corrupt or foreign checkpoint (one-line message)."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` through a temporary file and ``os.replace`` (creates the folder)."""
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
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A Lightning/sslab checkpoint read with ``weights_only=True``; :class:`CheckpointError` (one line)
    when it is missing, corrupt, holds code or has no ``state_dict``."""
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


__all__ = ["CheckpointError", "atomic_save", "atomic_write_text", "safe_load"]
