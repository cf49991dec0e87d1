"""Time one case three ways: the plain loop by phase, the floor, and the engine (Lightning) loop.

* **plain loop** -- the engine's own step without Lightning, the pieces of :func:`sslab.step`
  (:mod:`sslab.methods.step`) with the engine's hooks between them: ``module.make_views`` →
  ``module.step_loss`` (the method's forward, its loss plus the online probe's) → backward → the
  module's pre-step hook (``before_update``, clipping, weight-decay schedule), optimiser step,
  schedule → ``after_update`` (``method.after_step``); each phase timed with the device
  synchronised at its ends, median over the steps;
* **floor** -- the bare forward + backward of the same networks on views made once beforehand:
  ``forward(method, views).loss.backward()`` (an EMA target's forward runs inside it, so it counts
  in the floor); the floor ratio is the full step over this;
* **engine loop** -- the real training loop (``pl.Trainer`` with the engine's module) over the
  same steps, timed end to end without per-step synchronisation, against the plain loop timed
  the same way: what Lightning and the engine's hooks add. With a :class:`SyncCounter`, the same
  loop counts host reads per step (those of logging steps reported apart).
"""

from __future__ import annotations

import statistics
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch

from ..data import TensorImages
from ..engine.module import SSLModule
from ..engine.steps import LoopRun, fit_steps, synchronize
from ..methods.step import after_update, forward
from .case import Case
from .syncs import SyncCounter

PHASES = ("views", "forward", "backward", "optimizer", "after_step")


def autocast(device: torch.device, precision: str):
    """The autocast Lightning's ``precision`` plugin uses (none for 32-true)."""
    if precision == "32-true":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision.startswith("bf16") else torch.float16)


@contextmanager
def outside_trainer():
    """The module's step called without a Trainer: ``self.log`` warns and does nothing there."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*self\.log.*")
        warnings.filterwarnings("ignore", message=r".*self\.trainer.*")
        yield


class Cycle:
    """``length`` batches ``(images, labels, index)`` cycling through the pool of a :class:`TensorImages`."""

    def __init__(self, data: TensorImages, batch: int, length: int) -> None:
        self.data, self.batch, self.length = data, batch, length
        self.pool = len(data) // batch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = slice((i % self.pool) * self.batch, (i % self.pool + 1) * self.batch)
        return self.data.images[s], self.data.labels[s], torch.empty(0)

    def __iter__(self):
        return (self[i] for i in range(self.length))


class PlainLoop:
    """The engine's training step, by hand (see the module docstring)."""

    def __init__(self, module: SSLModule, data: TensorImages, case: Case, device: torch.device, total_steps: int) -> None:
        self.module, self.device, self.case, self.total = module, device, case, total_steps
        self.batches = Cycle(data, case.batch, total_steps)
        conf = module.configure_optimizers()
        self.optimizer, self.schedule = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
        self.scaler = torch.amp.GradScaler(device.type) if case.precision == "16-mixed" else None
        module.train()

    def step(self, i: int, sync: bool = False) -> dict[str, float]:
        """Run step ``i``; with ``sync`` return the seconds of each phase (device synchronised at each mark)."""
        images, labels, _ = self.batches[i]
        m, opt = self.module, self.optimizer
        marks = [time.perf_counter()]

        def mark() -> None:
            if sync:
                synchronize(self.device)
                marks.append(time.perf_counter())

        with outside_trainer():
            views = m.make_views(images)
            mark()
            with autocast(self.device, self.case.precision):
                loss, _ = m.step_loss(views, labels)
            self.last_loss = loss.detach()
            mark()
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            mark()
            m.on_before_optimizer_step(opt)
            if self.scaler:
                self.scaler.step(opt)
                self.scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            self.schedule.step()
            mark()
            after_update(m.method, i)
            mark()
        return {p: marks[k + 1] - marks[k] for k, p in enumerate(PHASES)} if sync else {}


@dataclass
class Timing:
    """Milliseconds: medians of synchronised steps, means of unsynchronised runs; syncs per step."""

    step_ms: float = 0.0  # median full step (plain loop, synchronised)
    phases_ms: dict[str, float] = field(default_factory=dict)
    floor_ms: float = 0.0
    plain_loop_ms: float = 0.0  # mean step of an unsynchronised plain-loop run
    engine_loop_ms: float = 0.0  # mean step of the Lightning loop, the same steps
    syncs_per_step: int | None = None  # the most host reads of a non-logging step of the engine loop
    syncs_per_log_step: int | None = None
    sync_places: dict[str, int] = field(default_factory=dict)
    peak_memory_mb: float | None = None

    @property
    def floor_ratio(self) -> float:
        return self.step_ms / self.floor_ms

    @property
    def engine_overhead(self) -> float:
        return self.engine_loop_ms / self.plain_loop_ms


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def floor_step(module: SSLModule, views: list[torch.Tensor], precision: str, device: torch.device) -> float:
    """Seconds of one ``forward(method, views).loss.backward()`` on fixed views (device synchronised at both ends)."""
    method = module.method
    synchronize(device)
    t0 = time.perf_counter()
    with autocast(device, precision):
        loss = forward(method, views).loss
    loss.backward()
    method.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - t0


def time_plain(loop: PlainLoop, views: list[torch.Tensor], steps: int, warmup: int) -> tuple[float, dict, float, float]:
    """(median step ms, median ms per phase, median floor ms, mean ms per step of an unsynchronised run).

    Full steps and floor steps alternate, so a machine whose speed drifts (a shared 2-core VM) slows
    both alike and their ratio stays put. On the CPU synchronising costs nothing, so the synchronised
    steps also give the unsynchronised mean; on a GPU that is a separate run."""
    for i in range(warmup):
        loop.step(i)
        floor_step(loop.module, views, loop.case.precision, loop.device)
    per_phase = {p: [] for p in PHASES}
    totals, floors = [], []
    for i in range(warmup, warmup + steps):
        phases = loop.step(i, sync=True)
        totals.append(sum(phases.values()))
        for p, t in phases.items():
            per_phase[p].append(t)
        floors.append(floor_step(loop.module, views, loop.case.precision, loop.device))
    mean = 1000 * sum(totals) / steps
    if loop.device.type == "cuda":
        synchronize(loop.device)
        t0 = time.perf_counter()
        for i in range(warmup + steps, warmup + 2 * steps):
            loop.step(i)
        synchronize(loop.device)
        mean = 1000 * (time.perf_counter() - t0) / steps
    return median_ms(totals), {p: median_ms(v) for p, v in per_phase.items()}, median_ms(floors), mean


def engine_loop(module: SSLModule, data: TensorImages, case: Case, device: torch.device, steps: int, warmup: int,
                log_every: int, counter: SyncCounter | None = None) -> LoopRun:
    """The engine's Lightning loop over ``warmup + steps`` steps of the case's batches (with ``counter``:
    each step's host reads)."""
    return fit_steps(module, Cycle(data, case.batch, warmup + steps), device, case.precision, steps, warmup, log_every,
                     counter)
