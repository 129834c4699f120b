"""The quantities the monitor measures, as pure functions of tensors: no hooks, no state.

Every function runs on its inputs' device and returns tensors; none reads a value back to the
host, so the monitor stacks all the results of a step and copies them to the host once.

Definitions (L2 norms throughout; a layer's norm is over all its parameters together):

- gradient norm ``‖g‖ = sqrt(Σ_p ‖∂L/∂p‖²)``, weight norm ``‖θ‖ = sqrt(Σ_p ‖p‖²)``;
- update ratio ``‖θ_t − θ_{t−1}‖ / ‖θ_t‖``: the relative change of the weights in one optimizer
  step; about 1e-3 is the rule of thumb for a healthy learning rate (Karpathy, CS231n notes,
  "Neural Networks Part 3: ratio of weights:updates");
- activation mean and std ``E[y]``, ``sqrt(E[y²] − E[y]²)`` over every element of a batch, or of
  a sample of its rows (:func:`sample_activation_rows`) (population std, float32 accumulation
  in one pass: accurate while ``|mean| ≪ 1e3·std``);
- dead units: a unit (a feature of a Linear, a channel of a convolution) of a ReLU-family layer is
  dead when its output was never > 0 over a window of batches (Lu et al. 2019, "Dying ReLU and
  Initialization");
- saturation: the fraction of outputs of a bounded activation within 1% of a bound
  (``|tanh(z)| > 0.99``), where its derivative is < 0.02 (Glorot & Bengio 2010);
- symmetric units: the largest cosine similarity between two rows of a weight matrix (two output
  units); rows that start equal stay equal under gradient descent (claim I1). Short rows point
  the same way by chance (48 random rows of 2 entries always hold a pair at cosine > 0.999):
  :func:`chance_cosine` is the cosine chance reaches.

Complex tensors are measured through their real view (:func:`real_view`: each entry ``a + bi``
as the pair ``(a, b)``), so ``‖z‖² = Σ |z_k|² = Σ a_k² + b_k²``, as
``torch.linalg.vector_norm`` gives; a histogram or the moments of a complex tensor are those of
its real and imaginary parts together.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "CPU_DOT_MIN",
    "chance_cosine",
    "dead_units",
    "histogram",
    "max_row_cosine",
    "moments",
    "real_view",
    "refresh_last_alive",
    "sample_activation_rows",
    "sample_rows",
    "saturated_count",
    "segment_sums",
    "squared_norms",
    "unit_max",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)
CPU_DOT_MIN = 1 << 15
"""On the CPU, tensors of at least this many entries get their squared norm from a BLAS dot."""


def real_view(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself if real; a complex ``t`` as a real tensor with a trailing dim of 2 (its real
    and imaginary parts, ``torch.view_as_real``), without a copy unless its conjugate bit is set.

    The squared norm of the real view is ``Σ |z|²``; a product of the complex tensor with itself
    (``z.dot(z) = Σ z²``, no conjugate) is not a norm at all.

    Example:
        >>> real_view(torch.tensor([3 + 4j])).tolist()
        [[3.0, 4.0]]
    """
    return torch.view_as_real(t.resolve_conj()) if t.is_complex() else t


def squared_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``‖t‖²`` of every tensor, as one float64 vector, in one fused pass.

    On accelerators one ``torch._foreach_norm`` (a multi-tensor kernel). On the CPU that kernel
    reduces each tensor on one thread, so tensors of :data:`CPU_DOT_MIN` entries or more take a
    BLAS dot product ``⟨t, t⟩`` instead, which uses every core (measured about 2x faster); the
    small ones still share one ``_foreach_norm`` call, which costs no Python per tensor. A
    float32 sum of squares overflows past a norm of ~1.8e19: reported as an infinite norm.

    Args:
        tensors: tensors of one device and one dtype (empty tensors count as 0). Half-precision
            norms are accumulated in float32, so that they do not overflow at 65504; complex
            ones are measured through their real view (``Σ |z|²``).

    Example:
        >>> squared_norms([torch.tensor([3.0, 4.0]), torch.ones(2, 2)])
        tensor([25.,  4.], dtype=torch.float64)
    """
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)
    if tensors[0].is_complex():  # the dot below would be Σ z², not Σ |z|²
        tensors = [real_view(t) for t in tensors]
    first = tensors[0]
    low = first.dtype in _LOW_PRECISION
    if first.device.type != "cpu" or low:
        norms = torch._foreach_norm(tensors, 2, dtype=torch.float32 if low else None)
        return torch.stack(norms).double().square()
    big = [i for i, t in enumerate(tensors) if t.numel() >= CPU_DOT_MIN]
    flats = [tensors[i].reshape(-1) for i in big]
    dots = [f.dot(f) for f in flats]
    if len(big) == len(tensors):
        return torch.stack(dots).double()
    small = [i for i, t in enumerate(tensors) if t.numel() < CPU_DOT_MIN]
    small_sq = torch.stack(torch._foreach_norm([tensors[i] for i in small])).double().square()
    if not big:
        return small_sq
    out = torch.empty(len(tensors), dtype=torch.float64)
    out[small] = small_sq
    out[big] = torch.stack(dots).double()
    return out


def segment_sums(values: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` by segment: ``out[i] = Σ_j values[gather[i, j]]``, index ``len(values)``
    standing for 0 (padding of the shorter segments).

    A gather and a row sum: deterministic on every device, and each segment is summed on its
    own (a cumulative-sum difference would lose a tiny layer next to a huge one).

    Example:
        >>> segment_sums(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([[0, 2], [1, 3]]))
        tensor([5., 2.])
    """
    padded = torch.cat([values, values.new_zeros(1)])
    return padded[gather].sum(dim=1)


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ x, Σ x²)`` over every element, in one pass each (float32 for half inputs).

    ``mean = Σx / n`` and ``std = sqrt(Σx²/n − mean²)`` with ``n = x.numel()``; for a complex
    ``x``, of its real view (``Σx²`` is then ``Σ |z|²``, and ``n = 2 x.numel()``).

    Example:
        >>> s, q = moments(torch.tensor([1.0, 2.0, 3.0]))
        >>> float(s), float(q)
        (6.0, 14.0)
    """
    flat = real_view(x.detach()).reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    return flat.sum(), torch.dot(flat, flat)


def unit_max(x: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """The largest value of each unit: max over every dim of ``x`` but ``unit_dim``.

    Example:
        >>> unit_max(torch.tensor([[1.0, -2.0], [-3.0, -1.0]]), unit_dim=-1)
        tensor([ 1., -1.])
    """
    x = x.detach()
    unit = unit_dim % x.dim()
    dims = [d for d in range(x.dim()) if d != unit]
    return x.amax(dim=dims) if dims else x.clone()


def refresh_last_alive(last_alive: torch.Tensor, umax: torch.Tensor, batch: int) -> torch.Tensor:
    """Record batch number ``batch`` for every unit whose max output ``umax`` is > 0.

    ``last_alive`` holds, per unit, the last batch on which it was positive; with it a window of
    any length costs one integer per unit (no ring of masks).

    Example:
        >>> refresh_last_alive(torch.tensor([-9, 3]), torch.tensor([0.5, -1.0]), batch=4)
        tensor([4, 3])
    """
    return torch.where(umax > 0, batch, last_alive)


def dead_units(last_alive: torch.Tensor, batch: int, window: int) -> torch.Tensor:
    """How many units were never > 0 on batches ``batch - window + 1 .. batch``.

    Units never positive at all (``last_alive`` still at its initial, very negative value) are
    dead whatever the window; before ``window`` batches were seen this counts the units never
    positive so far.

    Example:
        >>> dead_units(torch.tensor([-9, 3, 4]), batch=4, window=1)
        tensor(2)
    """
    return (last_alive <= batch - window).sum()


def saturated_count(x: torch.Tensor, center: float, threshold: float) -> torch.Tensor:
    """How many elements have ``|x − center| > threshold`` (e.g. ``|tanh(z)| > 0.99``).

    Example:
        >>> saturated_count(torch.tensor([0.999, -0.995, 0.5]), 0.0, 0.99)
        tensor(2)
    """
    x = x.detach()
    dev = x.abs() if center == 0 else (x - center).abs()
    return (dev > threshold).sum()


def sample_rows(rows: int, k: int, generator: torch.Generator) -> torch.Tensor | None:
    """``k`` sorted distinct row indices drawn with ``generator``; None when ``rows <= k`` (all).

    Example:
        >>> sample_rows(5, 8, torch.Generator().manual_seed(0)) is None
        True
        >>> sample_rows(100, 3, torch.Generator().manual_seed(0)).shape
        torch.Size([3])
    """
    if rows <= k:
        return None
    return torch.randperm(rows, generator=generator)[:k].sort().values


def sample_activation_rows(
    x: torch.Tensor, unit_dim: int, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, int]:
    """At most ``k`` rows of an activation, and the dim of the sample that indexes units.

    A *row* is the vector of all units at one position: one sample of a Linear's ``(B, U)``
    output, one (sample, token) of a ``(B, T, U)`` one, one (sample, pixel) of a convolution's
    ``(B, U, H, W)``. When ``x`` has more than ``k`` rows, ``k`` of them are drawn uniformly
    with replacement (``generator``, on ``x``'s device: no host round trip) and gathered into a
    ``(k, U)`` tensor, unit dim ``-1``; otherwise ``x`` itself is returned with ``unit_dim``.

    Statistics of the sample estimate those of the batch: the mean and the saturated fraction
    with a standard error ``σ / sqrt(k·U)`` at most (rows are not independent of each other's
    units, so ``σ / sqrt(k)`` is the safe bound); a unit's maximum over ``k`` rows misses a unit
    that is positive on fewer than about ``1/k`` of the rows, which the dead-unit window (several
    logged batches) then sees.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> rows, dim = sample_activation_rows(torch.randn(8, 5, 4, 4), 1, 64, gen)
        >>> tuple(rows.shape), dim
        ((64, 5), -1)
    """
    x = x.detach()
    unit = unit_dim % x.dim()
    moved = x.movedim(unit, -1)  # (..., U), a view
    lead = moved.shape[:-1]
    count = lead.numel()
    if count <= k:
        return x, unit_dim
    flat = torch.randint(count, (k,), generator=generator, device=x.device)
    if len(lead) == 1:
        return moved.index_select(0, flat), -1
    try:  # rows laid out as one (count, U) matrix (a Linear's (B, T, U) output): one gather
        return moved.view(count, moved.shape[-1]).index_select(0, flat), -1
    except RuntimeError:  # strides that do not flatten (a convolution's (B, U, H, W))
        pass
    index = []  # unravelled with Python sizes: no index tensor is copied to the device
    for size in reversed(lead[1:]):
        index.append(flat % size)
        flat = flat // size
    index.append(flat)
    return moved[tuple(reversed(index))], -1


_SHORT_ROW = 16  # rows of at most this many entries are compared in float64


def max_row_cosine(weight: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """The largest cosine similarity between two rows of ``weight`` (flattened to 2-D).

    ``cos(w_i, w_j) = ⟨w_i, w_j⟩ / (‖w_i‖ ‖w_j‖)`` over pairs ``i ≠ j``; 1 when two rows point the
    same way: the units compute the same function up to scale and get the same gradient. Two
    all-zero rows count as identical (cosine 1); a zero row is orthogonal to any other. Complex
    rows are compared through their real view (``Re⟨w_i, w_j⟩ / (‖w_i‖ ‖w_j‖)``).

    Args:
        weight: ``(out, ...)``: one row per output unit (a Linear's ``(out, in)``, a conv's
            ``(out, in, kH, kW)``).
        rows: indices of the rows to compare (a sample, for large layers); all when None.

    Raises:
        ValueError: fewer than 2 rows to compare.

    Example:
        >>> float(max_row_cosine(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])))
        1.0
    """
    w = real_view(weight.detach()).reshape(weight.shape[0], -1)
    if rows is not None:
        w = w.index_select(0, rows)
    if w.shape[0] < 2:
        raise ValueError(
            f"max_row_cosine: a weight with {w.shape[0]} row(s) has no pair of rows to compare."
        )
    if w.shape[1] <= _SHORT_ROW:  # where chance reaches 1 − 1e-7, float32 cannot tell
        w = w.double()
    elif w.dtype not in (torch.float32, torch.float64):
        w = w.float()
    norms = torch.linalg.vector_norm(w, dim=1)
    unit = w / norms.clamp_min(torch.finfo(w.dtype).tiny).unsqueeze(1)
    cos = unit @ unit.T
    cos.fill_diagonal_(-2.0)
    two_zero_rows = (norms == 0).sum() >= 2
    return torch.where(two_zero_rows, torch.ones_like(cos[0, 0]), cos.amax())


def chance_cosine(dim: int, pairs: int, alpha: float = 1e-3) -> float:
    """The cosine that ``pairs`` pairs of independent random rows of ``dim`` entries exceed, at
    their largest, with probability ``alpha``: above it two rows are the same unit, not chance.

    For two independent directions uniform on the sphere of ``R^dim`` the cosine ``c`` has the
    density ``(1 − c²)^((dim − 3)/2) / B((dim − 1)/2, 1/2)``, so near 1, with ``a = (dim − 1)/2``,
    ``P(c > 1 − ε) ≈ (2ε)^a / (2a · B(a, 1/2))``. The union bound over the pairs gives
    ``ε = ½ · (2a · B(a, 1/2) · alpha / pairs)^(1/a)``, and the result is ``1 − ε``. For
    ``dim >= 3`` the approximation's density ``(2(1 − c))^(a − 1)`` is at least the true one, so
    chance exceeds the result with probability at most ``alpha``; in 2-D the angle is uniform and
    the result exact, ``cos(π · alpha / pairs)``. Any random
    init whose rows are independent and isotropic (Gaussian, orthogonal rows are closer still
    to independent) is covered. Rows of one entry are parallel or opposite whatever their
    values: 1.0, no cosine tells. Two rows of 2 entries among 48 (an SE block's expand conv)
    need ``1 − 4e-12``; 32 rows of 64 entries, below 0.7.

    Args:
        dim: the entries of a row (a Linear's ``in_features``, a conv's ``in·kH·kW``), ``>= 1``.
        pairs: the pairs of rows compared, ``>= 1``.
        alpha: the chance of a false alarm allowed, in ``(0, 1)``.

    Example:
        >>> round(chance_cosine(2, 1, 0.5), 6)  # in 2-D, P(c > cos θ) = θ/π
        0.0
        >>> chance_cosine(2, 1128) > 1 - 1e-11  # 48 rows of 2 entries
        True
        >>> chance_cosine(1, 10)
        1.0
        >>> chance_cosine(64, 496) < 0.7
        True
    """
    if dim < 1 or pairs < 1 or not 0 < alpha < 1:
        raise ValueError(
            f"chance_cosine: needs dim >= 1, pairs >= 1 and 0 < alpha < 1; got dim={dim}, "
            f"pairs={pairs}, alpha={alpha}."
        )
    if dim == 1:
        return 1.0
    if dim == 2:
        return math.cos(math.pi * alpha / pairs)
    a = (dim - 1) / 2
    log_beta = math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)
    log_eps = (math.log(2 * a) + log_beta + math.log(alpha / pairs)) / a - math.log(2)
    return 1.0 - min(math.exp(log_eps), 2.0)


def histogram(x: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(counts, low, high)``: ``bins`` equal-width buckets from ``x.min()`` to ``x.max()``.

    Computed without reading anything back to the host (``torch.histc`` needs its range as
    Python numbers): bucket indices on the device, then ``torch.bincount`` on the CPU (where it
    needs no transfer) or a scatter-add elsewhere. Non-finite entries are counted as 0. Bucket
    ``i`` covers ``[low + i·w, low + (i+1)·w)``, ``w = (high − low) / bins``; the maximum falls
    in the last. A complex ``x`` is counted through its real view (real and imaginary parts).

    Example:
        >>> counts, lo, hi = histogram(torch.tensor([0.0, 0.1, 0.9, 1.0]), bins=2)
        >>> counts.tolist(), float(lo), float(hi)
        ([2.0, 2.0], 0.0, 1.0)
    """
    flat = real_view(x.detach()).reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    flat = torch.nan_to_num(flat, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = torch.aminmax(flat)
    scale = bins / (hi - lo).clamp_min(bins * torch.finfo(flat.dtype).tiny)  # finite
    # non-negative before the cast, so truncation is the floor
    index = (flat - lo).mul_(scale).clamp_(0, bins - 1).to(torch.int32)
    return _bucket_counts(index, bins, bincount=flat.device.type == "cpu"), lo, hi


def _bucket_counts(index: torch.Tensor, bins: int, *, bincount: bool) -> torch.Tensor:
    """How many entries of ``index`` (all in ``[0, bins)``) fall in each bucket, as float64.

    ``torch.bincount`` sizes its output from the largest index, which an accelerator would have
    to send to the host; a scatter-add into ``bins`` zeros needs nothing back.
    """
    if bincount:
        return torch.bincount(index, minlength=bins).double()
    ones = torch.ones((), dtype=torch.float64, device=index.device).expand(index.numel())
    counts = torch.zeros(bins, dtype=torch.float64, device=index.device)
    return counts.index_add_(0, index, ones)
