"""One run per folder: a lock, a refusal to mix runs, and what a resume may change.

:func:`claim` is called once everything that can fail on bad input has been checked, and before
anything is written: it takes an exclusive ``flock`` on ``<out>/.sslab.lock`` (the kernel drops it
when the process dies, even by SIGKILL, so a lock is never stale), refuses a folder that already
holds a run unless the run is being resumed or ``--overwrite`` was given, and removes the temporary
files of checkpoint writes that a kill interrupted. :func:`resume_changes` compares a resumed run's
new configuration with the one it was started with: options that change what the checkpoint holds
or how it continues (method, data, batch, optimiser, seed, ...) are refused with the list of keys;
the others (evaluation, diagnostics, logging, workers, precision, more epochs) are applied.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, to_dict
from ..settings import flatten, resume_policy

LOCK = ".sslab.lock"
RUN_FILES = ("config.yaml", "summary.json", "checkpoints", "logs")

#: dotted key -> what a resume may do with it: ``fixed`` (what the checkpoint holds or how it continues), ``free``
#: (how the run is evaluated, logged, placed or computed) or ``grow`` (``epochs``); declared with each setting
#: (:mod:`sslab.config`)
RESUME_POLICY = resume_policy(Config)


class RunFolderError(ValueError):
    """The run folder is in use, holds another run, or cannot be a folder (one line)."""


@dataclass
class RunFolder:
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            _HELD.discard(self.fd)
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


#: lock descriptors this process holds; a forked child (a DataLoader worker) closes its copies, so the lock
#: goes with this process -- a flock lasts while any descriptor of it is open, and a worker can outlive a
#: SIGKILLed parent by seconds
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def check_out(out: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse an ``--out`` that cannot become this run's folder, before anything is built or written."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder; choose another --out")
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunFolderError(f"--out {out}: cannot write in {parent} (permission denied or a read-only file system)")
    if not resume and not overwrite and holds_run(out):
        raise RunFolderError(f"run folder {out} already holds a run; continue it with --resume, replace it with "
                             "--overwrite, or choose another --out")
    if overwrite and holds_run(out) and not (out / LOCK).is_file():
        raise RunFolderError(f"--overwrite: {out} holds config.yaml, logs/ or checkpoints/ but was not written by sslab "
                             "train (no .sslab.lock); sslab deletes only its own runs: choose another --out")


def holds_run(out: Path) -> bool:
    return any((out / name).exists() for name in RUN_FILES)


def claim(out: Path, resume: bool, overwrite: bool = False) -> RunFolder:
    """Create ``out``, lock it, and make it ready for a new (or the resumed) run."""
    check_out(out, resume, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunFolderError(f"--out {out}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise RunFolderError(f"run folder {out} is in use by another sslab process{f' (pid {holder})' if holder else ''}; "
                             "wait for it to finish or choose another --out") from None
    except OSError as e:  # a file system without flock (some network mounts): run, unprotected
        warnings.warn(f"run folder {out}: cannot lock it ({e.strerror}); two runs into it would not be refused",
                      stacklevel=2)
    try:
        _prepare(out, fd, resume, overwrite)
    except BaseException:
        os.close(fd)  # drops the lock
        raise
    _HELD.add(fd)
    return RunFolder(out, fd)


def in_use(out: Path) -> bool:
    """Whether another process holds ``out``'s run lock now."""
    try:
        fd = os.open(out / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _prepare(out: Path, fd: int, resume: bool, overwrite: bool) -> None:
    """Under the lock: refuse a run that appeared meanwhile, clear the old run for ``overwrite``, note our pid,
    remove the temporary files of interrupted writes."""
    if not resume and holds_run(out):
        if not overwrite:  # a run that started while this one was being set up
            raise RunFolderError(f"run folder {out} already holds a run; continue it with --resume, replace it with "
                                 "--overwrite, or choose another --out")
        for name in RUN_FILES:  # an sslab run's files only (the lock file marks the folder as one)
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    for orphan in [*(out / "checkpoints").glob(".*.tmp"), *out.glob(".*.tmp")]:  # writes a kill interrupted
        orphan.unlink(missing_ok=True)


def resume_changes(started: Config, now: Config, saved_epoch: int = 0) -> list[str]:
    """The keys whose values differ between the run's saved config and the resumed one; raises
    :class:`RunFolderError` listing those a resume cannot apply. ``saved_epoch`` is the checkpoint's (0-based)
    epoch: the run has trained into it, so fewer epochs than ``saved_epoch + 1`` cannot be asked for."""
    a, b = flatten(to_dict(started), Config), flatten(to_dict(now), Config)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    refused = [k for k in changed if not _may_change(k, b.get(k), saved_epoch)]
    if refused:
        detail = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in refused[:4]) + (" ..." if len(refused) > 4 else "")
        raise RunFolderError(f"cannot resume with changed {detail}; a resume may change evaluation (not the online "
                             "probe), diagnostics, logging, workers, precision and add epochs (start a new run for the rest)")
    return changed


def _may_change(key: str, value: Any, saved_epoch: int) -> bool:
    policy = RESUME_POLICY.get(key, "fixed")
    return policy == "free" or policy == "grow" and value > saved_epoch


__all__ = ["RESUME_POLICY", "RunFolder", "RunFolderError", "check_out", "claim", "holds_run", "resume_changes"]
