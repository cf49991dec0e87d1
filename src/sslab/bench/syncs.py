"""Count the host–device synchronisations a piece of code would make on an accelerator, on any device.

On a GPU, an operation whose result the host has to read (``loss.item()``, ``if tensor:``, a
boolean-mask gather whose output size depends on the data, ``nonzero``) stalls the CPU until the
GPU has finished everything queued before it; with one per step the CPU can never run ahead,
and CUDA graphs / ``torch.compile`` cannot help. On the CPU nothing stalls, so the same
operations are counted instead: :class:`SyncCounter` is a ``TorchDispatchMode`` that sees every
ATen call (forward and backward) and counts those that need the value of a tensor on the host:

* ``aten._local_scalar_dense`` — ``.item()``, ``float(t)``, ``int(t)``, ``bool(t)`` / ``if t:``;
* data-dependent output shapes — ``nonzero``, ``masked_select``, ``unique*``, ``repeat_interleave``
  without ``output_size``, indexing or index-assignment with a boolean mask;
* ``is_nonzero`` and ``equal``;
* the linear-algebra decompositions (``eigh``, ``svd``, ``eig``, checked factorisations), whose
  CUDA kernels read their solver's status on the host;
* plus ``Tensor.tolist`` / ``Tensor.numpy``, patched at the Python level (they bypass dispatch).

Host constants (``torch.tensor(list)``, ``x.new_tensor(list)``: a host→device copy on a GPU, though
not a stall) are counted apart as ``host_copies``. On a GPU, ``torch.cuda.set_sync_debug_mode("error")``
is the authoritative check; this counter is what a CPU-only test can assert.
"""

from __future__ import annotations

import traceback
from collections import Counter
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_ALWAYS = {"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.is_nonzero", "aten.equal",
           "aten._unique", "aten._unique2", "aten.unique_dim", "aten.unique_consecutive", "aten.nonzero_static",
           "aten._linalg_eigh", "aten._linalg_svd", "aten.linalg_eig", "aten._linalg_check_errors"}
_HOST_COPY = {"aten.lift_fresh"}
_BOOL_INDEX = {"aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_"}


def _packet(func) -> str:
    return str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func).rsplit(".", 1)[0]


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (indices or ()))


def is_sync(func, args, kwargs) -> bool:
    """Whether the ATen call ``func(*args, **kwargs)`` must read device data on the host."""
    name = _packet(func)
    if name == "aten.nonzero_static":
        return False  # its output size is given: no read-back (the reason it exists)
    if name in _ALWAYS:
        return True
    if name in _BOOL_INDEX:
        return _has_bool_index(args)
    if name == "aten.repeat_interleave":
        return "output_size" not in (kwargs or {}) and isinstance(args[0], torch.Tensor) and len(args) < 3
    return False


class SyncCounter(TorchDispatchMode):
    """``with SyncCounter() as c: ...`` then ``c.syncs`` (count), ``c.by_op`` (a Counter by ATen op),
    ``c.host_copies`` and, with ``where=True``, ``c.places``: the Python frame of each sync (for a report
    that says which line to fix)."""

    def __init__(self, where: bool = False) -> None:
        super().__init__()
        self.where = where
        self.reset()

    def reset(self) -> None:
        self.by_op: Counter[str] = Counter()
        self.places: Counter[str] = Counter()
        self.host_copies = 0

    @property
    def syncs(self) -> int:
        return sum(self.by_op.values())

    def reads(self) -> dict[str, int]:
        """Every read by kind, host copies included (as ``host copy``)."""
        return dict(self.by_op) | ({"host copy": self.host_copies} if self.host_copies else {})

    def record(self, name: str) -> None:
        self.by_op[name] += 1
        if self.where:
            self.places[_caller()] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if is_sync(func, args, kwargs):
            self.record(_packet(func))
        elif _packet(func) in _HOST_COPY:
            self.host_copies += 1
            if self.where:
                self.places[f"host copy at {_caller()}"] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self._patches = _patch_python_reads(self)
        self._patches.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._patches.__exit__(*exc)


@contextmanager
def _patch_python_reads(counter: SyncCounter):
    saved = {name: getattr(torch.Tensor, name) for name in ("tolist", "numpy")}

    def wrap(name, original):
        def read(self, *args, **kwargs):
            counter.record(f"Tensor.{name}")
            return original(self, *args, **kwargs)
        return read

    for name, original in saved.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(torch.Tensor, name, original)


def _caller() -> str:
    """The innermost frame outside torch and this module: the line that asked for the value."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        f = frame.filename
        if "/torch/" not in f and f != __file__:
            return f"{f.rsplit('/site-packages/', 1)[-1].rsplit('/src/', 1)[-1]}:{frame.lineno}"
    return "?"
