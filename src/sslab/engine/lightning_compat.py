"""The one place sslab reaches into Lightning's private parts: who hears SIGTERM while a fit starts.

When a fit starts, Lightning installs its own SIGTERM handler (its private ``_SignalConnector``, in every
2.x release to 2.6 at least): it kills the launcher's other processes, under DDP broadcasts from inside the handler, and
sets ``trainer.received_sigterm``, which ends the fit after the step with exit code 0 and no checkpoint
(or, on an epoch's last step, before the epoch's checkpoint). Lightning offers no public way to leave
SIGTERM alone: no Trainer argument, plugin or cluster environment turns the handler off (a
``SLURMEnvironment`` only adds its requeue handlers to it), and the handler is installed after
``on_fit_start``, so the first callback hook that can replace it, ``on_train_start``
(:class:`~sslab.engine.guard.RunGuard` does), comes after it. A signal in between -- while the fit sets
up its data, or a resumed fit restores its state -- would reach it.

:func:`route_sigterm` points that handler's notifier, the bound method ``_sigterm_notifier_fn`` the
handler is built from, at sslab's own record of the signal, so Lightning never sets its flag.
It fails loudly, before anything is written, when a Lightning version no longer has it
(``tests/test_lightning_compat.py`` checks the attribute and the behaviour on the installed version).
"""

from __future__ import annotations

from collections.abc import Callable

import lightning


class LightningChanged(RuntimeError):
    """The installed Lightning lacks a private attribute sslab relies on (a version sslab does not support yet)."""


def route_sigterm(trainer, record: Callable) -> None:
    """Make ``record(signum, frame)`` what Lightning's SIGTERM handler calls when ``trainer``'s fit starts."""
    connector = getattr(trainer, "_signal_connector", None)
    if connector is None or not callable(getattr(connector, "_sigterm_notifier_fn", None)):
        raise LightningChanged(f"lightning {lightning.__version__}: Trainer._signal_connector._sigterm_notifier_fn is "
                               "gone, so a SIGTERM at fit start would end the run without a checkpoint; "
                               "sslab/engine/lightning_compat.py needs updating for this version")
    connector._sigterm_notifier_fn = record


__all__ = ["LightningChanged", "route_sigterm"]
