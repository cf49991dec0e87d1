"""One training step of a method: the protocol every loop runs, written once.

:func:`step` on a plain optimiser (what the claims runner's timing, the tests and the README's Python
example call; ``sslab bench``'s plain loop calls its pieces, with the engine's own hooks between them)::

    forward        out = method(views)                       (no state changes)
    backward       optimizer.zero_grad(); out.loss.backward()
    before_update  method.before_optimizer_step(step)        step = steps done before this one (0-based):
                                                             frozen layers drop their gradients
    update         optimizer.step()
    after_update   method.after_step(step + 1, total_steps)  steps done with this one (1-based): EMA
                                                             targets, queues, centers, predictor resets

``method.configure_schedule(steps_per_epoch, total_steps)`` is part of the contract: :func:`forward`
refuses a method that was not told the length of its training (its epoch-based schedules would count
steps as epochs and ``after_step`` would not know ``total_steps``).

The engine keeps Lightning's automatic optimisation (mixed precision, gradient scaling, clipping), so
it cannot call :func:`step` whole; it runs the same pieces from Lightning's hooks, one each:
:func:`forward` in ``training_step``, :func:`before_update` in ``on_before_optimizer_step`` and
:func:`after_update` right after the optimiser's step in ``optimizer_step``, with Lightning's
``global_step`` (steps done before this one) as ``step``. The index conventions live only here;
``tests/test_engine.py`` checks that a few engine steps and a few :func:`step` calls give the same weights.
"""

from __future__ import annotations

import torch

from .base import SSLMethod, StepOutput


def require_schedule(method: SSLMethod) -> None:
    """One-line error for a method that was never told the length of its training."""
    if not method.schedule_configured:
        raise ValueError(f"{type(method).__name__} has no schedule: call method.configure_schedule(steps_per_epoch, "
                         "total_steps) before its first training step")


def forward(method: SSLMethod, views: list[torch.Tensor]) -> StepOutput:
    """The method's output on ``views``, for a training step (its schedule must be configured)."""
    require_schedule(method)
    return method(views)


def before_update(method: SSLMethod, step: int) -> None:
    """Between backward and the optimiser's update of step ``step`` (0-based: steps done before it)."""
    method.before_optimizer_step(step)


def after_update(method: SSLMethod, step: int) -> None:
    """Right after the optimiser's update of step ``step`` (0-based): the parts' ``after_step`` with the count
    of steps done, this one included (1-based), and the configured total."""
    method.after_step(step + 1, method.total_steps)


def step(method: SSLMethod, optimizer: torch.optim.Optimizer, views: list[torch.Tensor], step: int) -> StepOutput:
    """Train ``method`` for one step on ``views``: forward → backward → ``before_optimizer_step(step)`` →
    ``optimizer.step()`` → ``after_step(step + 1, total_steps)``. ``step`` counts the steps done before this
    one (0 for the first). Returns the forward's :class:`StepOutput` (its loss still on the device: reading it
    is a host sync)."""
    out = forward(method, views)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    before_update(method, step)
    optimizer.step()
    after_update(method, step)
    return out
