"""Mini-batches of an in-memory uint8 dataset, shuffled on the device, no worker processes.

The epoch's order is a permutation drawn from ``(seed, epoch)`` alone, so a run resumed at an
epoch boundary visits exactly the batches an uninterrupted run would; the loader's state (Lightning
saves it in checkpoints: ``state_dict`` / ``load_state_dict``) is its place in the epoch, so a run
resumed from a checkpoint written mid-epoch (on SIGTERM) continues with the next batch. Under DDP every rank cuts
the same permutation into global batches of ``batch_size x world`` images and takes every
``world``-th image of each, so the global batch is the union of the ranks' batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .datasets import TensorImages


def seeded_generator(device: torch.device | str, *keys: int) -> torch.Generator:
    """A generator on ``device`` seeded by a deterministic mix of integer ``keys``."""
    seed = 0x9E3779B97F4A7C15
    for k in keys:
        seed = (seed * 6364136223846793005 + int(k) + 1442695040888963407) % (1 << 63)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


class _EpochSampler:
    """What Lightning calls ``set_epoch`` on at the start of each epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class EpochPlace:
    """A loader's place in the epoch as its state (Lightning saves ``state_dict`` in checkpoints and hands it to
    ``load_state_dict`` on resume): the epoch and the batches of it trained on (``position``, counted by the
    engine's LoaderPlace callback). The loader calls :meth:`start_batch` when an epoch's iteration begins."""

    position = 0
    _resume_at: tuple[int, int] | None = None

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        epoch, position = int(state["epoch"]), int(state["position"])
        if position >= len(self):  # written at the epoch's end: the next epoch starts from its beginning
            epoch, position = epoch + 1, 0
        self.sampler.set_epoch(epoch)  # Lightning may create the iterator before it calls set_epoch
        self._resume_at = (epoch, position)

    def start_batch(self) -> int:
        """The first batch of the epoch now beginning: after the trained ones when resuming into it, else 0."""
        start = 0
        if self._resume_at is not None and self._resume_at[0] == self.sampler.epoch:
            start = self._resume_at[1]
        self._resume_at, self.position = None, start
        return start


class TensorBatches(EpochPlace):
    """Iterate shuffled batches ``(images uint8, labels, indices)`` of a :class:`TensorImages`.

    ``batch_size`` is per rank; the last incomplete batch is dropped (``drop_last``), as every
    SSL recipe does, so batch statistics never see a tiny batch.
    """

    def __init__(
        self,
        data: TensorImages,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world: int = 1,
        drop_last: bool = True,
    ) -> None:
        n_global = batch_size * world
        if len(data) < n_global:
            raise ValueError(f"batch_size {batch_size} x {world} rank(s) exceeds the {len(data)} images of the dataset")
        self.images, self.labels = data.images, data.labels
        self.to(device)
        self.batch_size, self.seed, self.rank, self.world, self.drop_last = batch_size, seed, rank, world, drop_last
        self.sampler = _EpochSampler()

    def to(self, device: torch.device | str) -> TensorBatches:
        """Move the whole dataset to ``device`` once (the engine calls this with the training device)."""
        self.images, self.labels = self.images.to(device), self.labels.to(device)
        return self

    def __len__(self) -> int:
        n = len(self.labels) // (self.batch_size * self.world)
        if not self.drop_last and len(self.labels) % (self.batch_size * self.world):
            n += 1
        return n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        g = seeded_generator("cpu", self.seed, self.sampler.epoch)
        order = torch.randperm(len(self.labels), generator=g).to(self.images.device)
        step = self.batch_size * self.world
        for b in range(self.start_batch(), len(self)):
            idx = order[b * step : (b + 1) * step][self.rank :: self.world]
            yield self.images[idx], self.labels[idx], idx


class SeededOrder(torch.utils.data.Sampler):
    """The sampler of an image-folder DataLoader in one process: epoch ``e``'s order is the permutation drawn
    from ``(seed, e)`` (Lightning calls ``set_epoch``), as :class:`TensorBatches`' is, instead of one drawn
    from the global generator, which a resumed process does not restore; ``skip`` leaves out the first
    images of the next epoch iterated (a resume after them)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.n, generator=seeded_generator("cpu", self.seed, self.epoch))
        skip, self.skip = self.skip, 0
        return iter(order[skip:].tolist())


class ResumableLoader(EpochPlace, torch.utils.data.DataLoader):
    """A DataLoader over :class:`SeededOrder` whose state (Lightning keeps it in checkpoints) is its place in
    the epoch, so a run resumed mid-epoch continues with the next batch of the same order."""

    def __init__(self, data, batch_size: int, seed: int = 0, **kw) -> None:
        super().__init__(data, batch_size=batch_size, sampler=SeededOrder(len(data), seed), drop_last=True, **kw)

    def __iter__(self):
        return self._batches()

    def _batches(self):
        """A generator, so the epoch's order is drawn when the first batch is asked for (after ``set_epoch``)."""
        self.sampler.skip = self.start_batch() * self.batch_size
        yield from super().__iter__()
