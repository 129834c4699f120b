"""Weight norms and update ratios estimated from a fixed random sample of each parameter's entries.

Measuring ``‖θ_t − θ_{t−1}‖ / ‖θ_t‖`` exactly needs a copy of every trainable weight before the
step and two passes over all of them after it: three or four extra passes over the model per
logged step, as much memory traffic as the training step itself on a small model. The sample
needs a few thousand entries per tensor instead.

Estimator. Parameter ``p`` with ``n`` entries keeps ``k = min(n, size)`` distinct indices ``S``,
drawn once, uniformly without replacement, from a private generator (the global random state is
untouched). Any sum of squares over ``p`` (its weights ``θ``, or its change ``Δθ``) is estimated by
the Horvitz–Thompson sum ``(n / k) Σ_{j in S} v_j²``, unbiased; a layer's sum adds those of its
parameters, and the ratio ``sqrt(ΣΔ² / Σθ²)`` of two such sums is consistent. When ``k = n`` the
value is exact. (A tensor of more than 4M entries draws its sample with replacement, the
Hansen–Hurwitz estimator, unbiased too; with ``k ≪ n`` the two hardly differ.) The relative
standard error of one parameter's sum of squares is

    ``RSE(Σ v²) = sqrt((1 − k/n) / k) · CV(v²)``,

``CV(v²) = std(v²) / mean(v²)`` over the tensor's entries; a norm (the square root) has half of
it. For Gaussian-like entries ``CV(v²) = √2``: with ``k = 4096``, about 2.2% on the sum of squares
and 1.1% on a norm, and a ratio of two estimated norms from the same sample about 1.5%.
Heavy-tailed entries raise ``CV``: an update concentrated on a few rows (an embedding whose batch
touches a handful of tokens, trained with SGD) can be estimated far less well. Pass
``exact=True`` to :class:`~stabletrain.monitoring.TrainingMonitor` for the exact computation.

Non-finite values: a NaN or inf in an entry outside the sample is not seen by the estimate. The
monitor's gradient norms are exact, and a non-finite weight makes the next step's gradients
non-finite, so the step after it reports it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stabletrain.monitoring.metrics import real_view

SAMPLE_SIZE = 4096
"""Entries sampled per parameter (all of them for smaller parameters)."""
_SEED = 1  # of the private generator that draws the samples
_PERMUTE_MAX = 1 << 22  # larger tensors draw their sample with replacement


class SampledNorms:
    """Per-layer squared norms of weights and of their changes, from fixed per-parameter samples.

    The samples are laid out parameter by parameter, those of the full ``size`` first, so that
    per-parameter sums are the row sums of a ``(parameters, size)`` view (one kernel) plus a
    scatter of the smaller parameters' entries; a layer's sum then adds a few numbers per
    parameter instead of scattering every sampled entry.

    Args:
        params: the parameters, ``params[i]`` owned by layer ``owners[i]`` of ``n_layers``.
        updated: per parameter, whether the optimizer updates it (its entries count in the
            denominator of the update ratio).
        device: where the per-layer sums are made (the monitor's device).
        size: entries sampled per parameter.
        seed: of the private generator that draws the samples.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        owners: Sequence[int],
        n_layers: int,
        updated: Sequence[bool],
        device: torch.device,
        size: int = SAMPLE_SIZE,
        seed: int = _SEED,
    ) -> None:
        self.params = list(params)
        self.n_layers = n_layers
        self.device = device
        gen = torch.Generator().manual_seed(seed)
        self.index: list[torch.Tensor | None] = []
        counts: list[tuple[int, int]] = []  # (k, n) per parameter
        for p in self.params:
            n = real_view(p.detach()).numel()
            k = min(n, size)
            if k < n:
                if n <= _PERMUTE_MAX:
                    idx = torch.randperm(n, generator=gen)[:k].sort().values
                else:  # with replacement: no n-long permutation for a huge tensor
                    idx = torch.randint(n, (k,), generator=gen).sort().values
                self.index.append(idx.to(p.device))
            else:
                self.index.append(None)
            counts.append((k, n))
        # the layout: parameters sampled at the full size first, then the others
        full = [i for i, (k, _) in enumerate(counts) if k == size > 0]
        rest = [i for i, (k, _) in enumerate(counts) if not k == size > 0]
        self.order = full + rest
        self._size, self._n_full, self._n_rest = size, len(full), len(rest)
        lengths = torch.tensor([counts[i][0] for i in rest], dtype=torch.long)
        self._rest_owner = torch.repeat_interleave(torch.arange(len(rest)), lengths).to(device)
        self.layer = torch.tensor([owners[i] for i in self.order], dtype=torch.long, device=device)
        self.scale = torch.tensor(
            [n / k if k else 0.0 for k, n in (counts[i] for i in self.order)],
            dtype=torch.float64,
            device=device,
        )
        self.updated = torch.tensor(
            [1.0 if updated[i] else 0.0 for i in self.order], dtype=torch.float64, device=device
        )

    def gather(self) -> torch.Tensor:
        """The sampled entries of every parameter now, as one float64 vector (a new tensor)."""
        parts = []
        with torch.no_grad():
            for i in self.order:
                flat = real_view(self.params[i].detach()).reshape(-1)
                idx = self.index[i]
                part = flat if idx is None else flat.index_select(0, idx)
                if part.device != self.device:
                    part = part.to(self.device, non_blocking=True)
                parts.append(part)
            if not parts:
                return torch.zeros(0, dtype=torch.float64, device=self.device)
            return torch.cat(parts).to(torch.float64)

    def _param_sums(self, values: torch.Tensor) -> torch.Tensor:
        """``(rows, parameters)`` sums of ``(rows, entries)`` sampled values, in layout order."""
        head_len = self._n_full * self._size
        head = values[:, :head_len].reshape(len(values), self._n_full, self._size).sum(-1)
        tail = values.new_zeros(len(values), self._n_rest)  # the smaller parameters: few entries
        tail.index_add_(1, self._rest_owner, values[:, head_len:])
        return torch.cat([head, tail], dim=1)

    def _layer_sums(self, per_param: torch.Tensor) -> torch.Tensor:
        """``(rows, n_layers)`` sums of ``(rows, parameters)`` values."""
        out = per_param.new_zeros(len(per_param), self.n_layers)
        return out.index_add_(1, self.layer, per_param)

    def weight_sums(self, now: torch.Tensor | None = None) -> torch.Tensor:
        """Estimated ``Σ_{p in layer} ‖p‖²`` per layer: a ``(n_layers,)`` float64 tensor."""
        now = self.gather() if now is None else now
        with torch.no_grad():
            squares = self._param_sums(now.square().unsqueeze(0))
            return self._layer_sums(squares * self.scale)[0]

    def update(
        self, before: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weight, updated, delta, now)`` against the sample ``before``: per layer, estimated
        ``‖θ‖²`` of all the layer's parameters, of its updated ones only, and ``‖θ − before‖²``
        of its updated ones; and the sample now (to keep as the next ``before``)."""
        now = self.gather()
        with torch.no_grad():
            squares = torch.stack([now.square(), (now - before).square_()])
            sums = self._param_sums(squares).mul_(self.scale)  # (2, parameters): θ², Δθ²
            rows = torch.stack([sums[0], sums[0] * self.updated, sums[1] * self.updated])
            weight, updated, delta = self._layer_sums(rows)
        return weight, updated, delta, now
