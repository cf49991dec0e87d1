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
import pickle
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


class CheckpointError(ValueError):
    """A missing, corrupt or foreign checkpoint (one-line message)."""


class RunStopped(BaseException):  # like KeyboardInterrupt: not caught by `except Exception` (the claims runner's)
    """Training stopped on a signal after writing a checkpoint; ``code`` is the exit code (128 + signal)."""

    def __init__(self, signum: int, step: int, checkpoint: str) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after step {step}; checkpoint written to {checkpoint}; "
                         "continue with --resume")

    def __reduce__(self):  # a worker process's stop reaches its pool intact (the default would pass the message)
        return (type(self), (self.signum, self.step, self.checkpoint))


def _atomic_write(path: Path, write: Callable[[IO], None], mode: str = "wb") -> None:
    """``write(file)`` into a temporary file of its own beside ``path`` (concurrent writers do not collide),
    flushed and fsynced, then ``os.replace``d over ``path``; on any failure the temporary file is removed and
    ``path`` is untouched. The file gets the permissions of the process's other files (mkstemp makes 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically (creates the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    _atomic_write(path, lambda f: torch.save(obj, f))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` atomically."""
    _atomic_write(Path(path), lambda f: f.write(text), mode="w")


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A Lightning/sslab checkpoint read with ``weights_only=True``; :class:`CheckpointError` (one line)
    when it is missing, corrupt, holds code or has no ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # not a class or function it refused: garbage bytes
            raise CheckpointError(f"checkpoint {path} is corrupt or not an sslab checkpoint (not a torch file)") from None
        # torch's weights-only unpickler met a class or function it will not build
        raise CheckpointError(f"checkpoint {path} holds pickled objects other than tensors and plain containers; "
                              "sslab does not execute code from files, so it will not load it") from None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not an sslab checkpoint ({first[:120]})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict'; not a Lightning/sslab checkpoint")
    return ckpt


def check_fits(expected: dict[str, torch.Tensor], found: dict[str, Any], path: str | os.PathLike, what: str,
               exact: bool = False) -> None:
    """:class:`CheckpointError` naming the first tensor of ``expected`` (a model's state_dict) that ``found``
    (a checkpoint's) lacks or holds in another shape -- before ``load_state_dict`` would fail with torch's
    multi-line size-mismatch text; with ``exact``, also the first tensor ``found`` has and the model lacks
    (a strict load, as Lightning's resume is)."""
    extra = [k for k in found if k not in expected] if exact else []
    if extra:
        raise CheckpointError(f"checkpoint {path} does not fit {what}: it has '{extra[0]}', which the model has not "
                              "(another method or options)")
    for key, tensor in expected.items():
        if key not in found:
            raise CheckpointError(f"checkpoint {path} does not fit {what}: it has no '{key}' (another method or options)")
        got = found[key]
        if isinstance(got, torch.Tensor) and tuple(got.shape) != tuple(tensor.shape):
            raise CheckpointError(f"checkpoint {path} does not fit {what}: '{key}' is {tuple(got.shape)} in the "
                                  f"checkpoint, {tuple(tensor.shape)} here (another backbone, width or head)")


__all__ = ["CheckpointError", "RunStopped", "atomic_save", "atomic_write_text", "check_fits", "safe_load"]
