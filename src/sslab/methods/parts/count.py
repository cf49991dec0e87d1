"""Integer buffers read every step, mirrored on the host so that reading them never waits for the device.

``int(buffer)`` on a GPU waits for every kernel queued before it: DINO's and SwAV's epoch-based
schedules and MoCo's queue fill read a count each step, which made every step wait. A count only
changes in ``after_step``, where its new value is known on the host, so :class:`HostMirror` keeps a
host copy in step there. The buffer stays what checkpoints carry (same keys as before); the copy
is read from the device once, after construction or a checkpoint load.
"""

from __future__ import annotations

import torch


class HostMirror:
    """Mixin for an ``nn.Module`` with 0-dim integer buffers: ``self.host_int(name)`` reads the host copy,
    ``self.set_int(name, value)`` writes the buffer and the copy."""

    def host_int(self, name: str) -> int:
        mirror = self.__dict__.setdefault("_host_ints", {})
        if name not in mirror:
            mirror[name] = int(getattr(self, name))  # once after construction or a load
        return mirror[name]

    @torch.no_grad()
    def set_int(self, name: str, value: int) -> None:
        getattr(self, name).fill_(value)
        self.__dict__.setdefault("_host_ints", {})[name] = value

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.__dict__.get("_host_ints", {}).clear()
