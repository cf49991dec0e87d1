"""``python tests/fault_run.py [FAULT=N ...] train ...``: the ``sslab`` command with faults installed (tests/test_faults.py).

The faults live here, on the test side, not in the product. Each is installed into the run
:func:`sslab.engine.train.prepare` returns (a Lightning callback appended to its trainer's) or around
the checkpoint writer, then ``sslab.cli.main`` runs the rest of the command line:

- ``kill_after_step=N``: after step N (the optimiser steps done, from 1), the process dies as SIGKILL
  would: ``os._exit(137)``, no cleanup, no checkpoint;
- ``term_during_step=N``: during step N the process sends itself SIGTERM, as a scheduler would;
- ``kill_in_save=N``: the N-th checkpoint write SIGKILLs the process after the bytes are in its temporary
  file, before it replaces the old checkpoint.

Lightning's DDP launcher starts the other ranks by running ``sys.argv`` again, so they run this script
with the same faults.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import lightning.pytorch as pl

FAULTS = ("kill_after_step", "term_during_step", "kill_in_save")


class StepFaults(pl.Callback):
    """``kill_after_step`` / ``term_during_step`` (listed last, so it acts after the run's own callbacks)."""

    def __init__(self, kill_after: int | None, term_during: int | None) -> None:
        self.kill_after, self.term_during = kill_after, term_during

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.term_during is not None and trainer.global_step + 1 == self.term_during:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.kill_after is not None and trainer.global_step >= self.kill_after:
            os._exit(137)


def install_step_faults(kill_after: int | None, term_during: int | None) -> None:
    """Append :class:`StepFaults` to the trainer of every run :func:`sslab.engine.train.prepare` makes."""
    engine = importlib.import_module("sslab.engine.train")  # the module (the package exports its function)
    prepare = engine.prepare

    def prepare_with_faults(cfg):
        run = prepare(cfg)
        run.trainer.callbacks.append(StepFaults(kill_after, term_during))
        return run

    engine.prepare = prepare_with_faults


def install_kill_in_save(n: int) -> None:
    """SIGKILL in the ``n``-th checkpoint write, between its bytes reaching the temporary file and the rename."""
    replace, writes = os.replace, [0]

    def replace_or_die(src, dst, *a, **kw):
        if os.path.basename(str(dst)).endswith(".ckpt"):
            writes[0] += 1
            if writes[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return replace(src, dst, *a, **kw)

    os.replace = replace_or_die


def main(argv: list[str]) -> int:
    faults = {}
    while argv and argv[0].split("=")[0] in FAULTS:
        key, value = argv.pop(0).split("=")
        faults[key] = int(value)
    if "kill_after_step" in faults or "term_during_step" in faults:
        install_step_faults(faults.get("kill_after_step"), faults.get("term_during_step"))
    if "kill_in_save" in faults:
        install_kill_in_save(faults["kill_in_save"])
    from sslab.cli import main as sslab

    return sslab(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
