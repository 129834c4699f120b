"""The truncated normal: its moments and an inverse-CDF sampler."""

from __future__ import annotations

import math

import torch

from stabletrain.init.schemes._core import LOW_PRECISION


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def truncated_std(alpha: float, beta: float) -> float:
    """Std of N(0, 1) truncated to [alpha, beta].

    ``Var = 1 + (α φ(α) − β φ(β)) / Z − ((φ(α) − φ(β)) / Z)²`` with ``Z = Φ(β) − Φ(α)``; for
    ±2 it is 0.8796256610342398, the factor JAX and Keras divide by.
    """
    z = _cdf(beta) - _cdf(alpha)
    pa, pb = _pdf(alpha), _pdf(beta)
    ta = alpha * pa if math.isfinite(alpha) else 0.0
    tb = beta * pb if math.isfinite(beta) else 0.0
    return math.sqrt(max(1.0 + (ta - tb) / z - ((pa - pb) / z) ** 2, 0.0))


TWO_SIGMA_STD = truncated_std(-2.0, 2.0)


def parent_std_for(std: float, mean: float, a: float, b: float) -> float:
    """The parent std whose truncation to [a, b] around ``mean`` has std ``std`` (bisection).

    The result's std grows with the parent's, from 0 towards that of U(a, b), ``(b − a)/√12``,
    so it is unique; callers check ``std`` is below that limit.
    """

    def result_std(sigma: float) -> float:
        return sigma * truncated_std((a - mean) / sigma, (b - mean) / sigma)

    lo, hi = std, std
    for _ in range(1100):  # doubling reaches float's range long before this
        if result_std(hi) >= std:
            break
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if result_std(mid) < std else (lo, mid)
    return 0.5 * (lo + hi)


def sample_truncated_(
    tensor: torch.Tensor,
    mean: float,
    std: float,
    a: float,
    b: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Fill ``tensor`` with N(mean, std²) truncated to [a, b] by inverse CDF.

    Draw ``u ~ U(Φ(α), Φ(β))`` and return ``mean + std·√2·erfinv(2u − 1)``; clamping removes the
    rounding that can put a float32 draw a hair outside [a, b].
    """
    lo, hi = _cdf((a - mean) / std), _cdf((b - mean) / std)
    if lo > 0.5 or hi < 0.5:  # all in one tail: float32 uniforms there take few distinct values
        out = tensor.double()
    else:
        out = tensor.float() if tensor.dtype in LOW_PRECISION else tensor
    out.uniform_(2 * lo - 1, 2 * hi - 1, generator=generator)
    out.erfinv_().mul_(std * math.sqrt(2.0)).add_(mean).clamp_(min=a, max=b)
    if out is not tensor:
        tensor.copy_(out)
    return tensor
