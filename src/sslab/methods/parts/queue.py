"""A FIFO of past keys: MoCo v2's negatives, SwAV's past embeddings, NNCLR's support set.

``stage(keys)`` during ``forward`` only remembers the batch; ``after_step`` writes it (gathered
from every rank with ``gather_keys``, as MoCo's ``concat_all_gather``) at the write pointer,
replacing the oldest keys -- MoCo's ``_dequeue_and_enqueue`` with wrap-around, so any batch size
works. The queue starts empty (zeros, ``filled`` 0) or, with ``init="random"``, as random unit
vectors counted as full (the official MoCo and solo-learn/LightlySSL NNCLR start).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...losses.distributed import gather
from ..base import Part, check_choice
from .count import HostMirror

INITS = ("zeros", "random")


class Queue(HostMirror, Part):
    """The last ``size`` keys of dimension ``dim``: buffers ``keys`` ``(size, dim)``, ``ptr`` (the next
    slot) and ``filled`` (how many slots hold real keys)."""

    def __init__(self, size: int, dim: int, gather_keys: bool = False, init: str = "zeros") -> None:
        super().__init__()
        check_choice("queue init", init, INITS)
        if size < 1:
            raise ValueError(f"queue size must be >= 1, got {size}")
        self.size, self.gather_keys = size, gather_keys
        keys = F.normalize(torch.randn(size, dim), dim=1) if init == "random" else torch.zeros(size, dim)
        self.register_buffer("keys", keys)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.full((), size if init == "random" else 0, dtype=torch.long))
        self._staged: list[torch.Tensor] = []

    @property
    def full(self) -> bool:
        """Whether every slot holds a key (a bool that flips once, so a compiled forward recompiles at most once)."""
        if "full" not in self.__dict__:
            self.__dict__["full"] = self.host_int("filled") >= self.size
        return self.__dict__["full"]

    def values(self) -> torch.Tensor:
        """The keys written so far ``(filled, dim)`` (all of them once the queue is full)."""
        return self.keys[: self.host_int("filled")]

    def stage(self, *keys: torch.Tensor) -> None:
        """Remember key batches to write in ``after_step`` (in this order), detached."""
        self._staged = [k.detach() for k in keys]

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Write ``keys (B, dim)`` at the pointer, wrapping around; with B > size only the last ``size`` stay."""
        n = min(keys.shape[0], self.size)
        idx = (self.ptr + torch.arange(n, device=keys.device)) % self.size
        self.keys[idx] = keys[-n:].to(self.keys.dtype)
        self.ptr.copy_((self.ptr + n) % self.size)
        self.set_int("filled", min(self.host_int("filled") + n, self.size))
        self.__dict__.pop("full", None)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.__dict__.pop("full", None)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        for keys in self._staged:
            self.push(gather(keys) if self.gather_keys else keys)
        self._staged = []
