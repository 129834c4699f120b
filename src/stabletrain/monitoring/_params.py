"""A fixed list of parameters arranged for fused passes: grouped by (device, dtype), with the
layer of each, so that per-layer sums of squared norms cost a few kernels however many
parameters there are."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stabletrain.monitoring.metrics import CPU_DOT_MIN, real_view, segment_sums, squared_norms

_LOW_PRECISION = (torch.float16, torch.bfloat16, torch.complex32)  # half, or its real view


class ParamSet:
    """Parameters ``params[i]`` owned by layer ``owners[i]`` of ``n_layers``.

    Vectors of per-parameter values (``squared``, ``update``) are in *fused order*: group by
    group; ``gather`` sums them by layer.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        owners: Sequence[int],
        n_layers: int,
        device: torch.device,
    ) -> None:
        self.params = list(params)
        self.owners = list(owners)
        self.n_layers = n_layers
        self.device = device
        groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, p in enumerate(self.params):
            groups.setdefault((p.device, p.dtype), []).append(i)
        self.groups = list(groups.values())
        self.order = [i for group in self.groups for i in group]
        self.gather = self.gather_for(range(len(self.params)))
        # large float CPU parameters take a per-parameter path (see ``update``)
        self._own_pass = [
            p.device.type == "cpu" and p.dtype not in _LOW_PRECISION and p.numel() >= CPU_DOT_MIN
            for p in self.params
        ]

    def gather_for(self, members: Sequence[int] | range) -> torch.Tensor:
        """A ``segment_sums`` index summing, per layer, the parameters ``members``."""
        slot = {i: k for k, i in enumerate(self.order)}
        per_layer: list[list[int]] = [[] for _ in range(self.n_layers)]
        for i in members:
            per_layer[self.owners[i]].append(slot[i])
        width = max((len(s) for s in per_layer), default=0) or 1
        pad = len(self.order)
        rows = [s + [pad] * (width - len(s)) for s in per_layer]
        return torch.tensor(rows, dtype=torch.long, device=self.device).reshape(
            self.n_layers, width
        )

    def squared(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """``‖t_i‖²`` for tensors aligned with the parameters, in fused order (float64)."""
        parts = [squared_norms([tensors[i] for i in g]).to(self.device) for g in self.groups]
        if not parts:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def layer_sums(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """``Σ_{i in layer} ‖t_i‖²`` for every layer: a ``(n_layers,)`` float64 tensor."""
        return segment_sums(self.squared(tensors), self.gather)

    def snapshot(self, into: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Copy the parameters' current values (into ``into`` when given, else new tensors)."""
        if into is None:
            into = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in self.params]
        with torch.no_grad():
            for g in self.groups:
                torch._foreach_copy_([into[i] for i in g], [self.params[i].detach() for i in g])
        return into

    def update(
        self, snapshot: list[torch.Tensor], refresh: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(‖θ‖², ‖θ − snapshot‖²)`` per parameter, in fused order; then, if ``refresh``, copy
        the parameters into ``snapshot`` for the next step. ``snapshot`` is overwritten.

        Small parameters (and every parameter on accelerators) go through fused multi-tensor
        kernels: ``snapshot −= θ``, two ``_foreach_norm``, ``_foreach_copy_``. Each large CPU
        parameter makes all four passes one after the other while it is in the cache, which
        reads it from memory once instead of four times. Complex parameters are measured through
        their real view (``Σ |z|²``; a complex dot ``z·z`` has no conjugate).
        """
        weights: list[torch.Tensor | None] = [None] * len(self.params)
        deltas: list[torch.Tensor | None] = [None] * len(self.params)
        with torch.no_grad():
            for g in self.groups:
                fused = [i for i in g if not self._own_pass[i]]
                if fused:
                    ws = [real_view(self.params[i].detach()) for i in fused]
                    ss = [real_view(snapshot[i]) for i in fused]
                    torch._foreach_sub_(ss, ws)
                    low = ws[0].dtype in _LOW_PRECISION
                    dtype = torch.float32 if low else None
                    wn = torch._foreach_norm(ws, 2, dtype=dtype)
                    dn = torch._foreach_norm(ss, 2, dtype=dtype)
                    squares = zip(
                        torch._foreach_mul(wn, wn), torch._foreach_mul(dn, dn), strict=True
                    )
                    for i, (w, d) in zip(fused, squares, strict=True):
                        weights[i], deltas[i] = w, d
                    if refresh:
                        torch._foreach_copy_(ss, ws)
                for i in g:
                    if not self._own_pass[i]:
                        continue
                    w = real_view(self.params[i].detach()).reshape(-1)
                    s = real_view(snapshot[i]).view(-1)
                    s.sub_(w)
                    deltas[i], weights[i] = s.dot(s), w.dot(w)
                    if refresh:
                        s.copy_(w)
        ordered = [(weights[i], deltas[i]) for i in self.order]
        w_sq = torch.stack([w for w, _ in ordered if w is not None]).double()
        d_sq = torch.stack([d for _, d in ordered if d is not None]).double()
        return w_sq.to(self.device), d_sq.to(self.device)
