"""One host transfer per logged step: every measurement is flattened into one tensor, which is
copied to the host once (``.tolist()``: a single device synchronization)."""

from __future__ import annotations

from collections.abc import Hashable

import torch


class Pack:
    """Collects tensors under keys; :meth:`read` returns all their values from one copy."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self._parts: list[torch.Tensor] = []
        self._slots: dict[Hashable, tuple[int, int]] = {}
        self._size = 0

    def add(self, key: Hashable, tensor: torch.Tensor) -> None:
        """Queue ``tensor`` (any shape, any float or int dtype) under ``key``."""
        flat = tensor.detach().reshape(-1)
        if flat.device != self.device:
            flat = flat.to(self.device, non_blocking=True)
        self._slots[key] = (self._size, self._size + flat.numel())
        self._size += flat.numel()
        self._parts.append(flat)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slots

    def read(self) -> dict[Hashable, list[float]]:
        """Every queued tensor's values, by key, from one device-to-host copy."""
        if not self._parts:
            return {}
        values: list[float] = torch.cat(self._parts).to(self.dtype).tolist()  # the one copy
        return {key: values[a:b] for key, (a, b) in self._slots.items()}
