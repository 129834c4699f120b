"""The truncated normal: its moments, an inverse-CDF sampler, and the limit of what it can draw.

Probabilities are taken on the side of the mean where they are small (Φ(x) = erfc(−x/√2)/2 for
x < 0 keeps full relative precision down to float64's smallest normal number, 2.2e-308, where
1 − Φ(x) would round to 0 beyond 8.3σ), so an interval in either tail is sampled as accurately as
one around the mean.
"""

from __future__ import annotations

import math

import torch

from stabletrain.init.schemes.core import LOW_PRECISION


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _cdf(x: float) -> float:
    """Φ(x), with full relative precision in the lower tail (erfc, not 1 + erf)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _mass(alpha: float, beta: float) -> float:
    """Φ(β) − Φ(α), computed in the tail the interval lies in so that nothing cancels."""
    if alpha > 0:
        return _cdf(-alpha) - _cdf(-beta)
    return _cdf(beta) - _cdf(alpha)


# Below this, the probabilities the inverse CDF needs are float64 subnormals or 0.
SMALLEST_MASS = torch.finfo(torch.float64).tiny


def check_sampleable(mean: float, std: float, a: float, b: float, *, where: str) -> None:
    """Raise ``ValueError`` if N(mean, std²) puts too little mass on [a, b] to sample from it.

    The sampler draws the probabilities Φ(α)..Φ(β) of the tail nearer the interval in float64
    (whatever the tensor's dtype); once even the larger of them is below float64's smallest
    normal number (2.2e-308: the interval starts ~37.5σ from the mean) they cannot be
    represented, and every draw would land on one bound. Such an interval is almost always a
    mistake (bounds meant in std units, a swapped mean and std), so it is refused with the mass
    it holds and the fix.
    """
    alpha, beta = (a - mean) / std, (b - mean) / std
    near = -alpha if alpha > 0 else beta  # the nearer bound, reflected into the lower tail
    if near > 0 or _cdf(near) >= SMALLEST_MASS:
        return
    far = -beta if alpha > 0 else alpha
    log_near, log_far = torch.special.log_ndtr(torch.tensor([near, far], dtype=torch.float64))
    gap = float(log_far - log_near)  # 0 where float64 cannot tell the bounds apart so far out
    log_mass = float(log_near) + math.log1p(-math.exp(gap)) if gap < 0 else -math.inf
    held = (
        f"a fraction 10^{log_mass / math.log(10):.1f}"
        if math.isfinite(log_mass)
        else "a fraction float64 cannot tell from 0"
    )
    side = "above" if alpha > 0 else "below"
    raise ValueError(
        f"{where}: [a, b] = [{a:g}, {b:g}] starts {abs(near):.4g} std {side} the mean (mean "
        f"{mean:g}, std {std:g}) and holds {held} of "
        f"N(mean, std²), below {SMALLEST_MASS:.2g}, the smallest probability float64 can "
        "resolve: every draw would land on a bound. a and b are absolute values, not multiples "
        f"of std: for ±2 std around the mean pass a=mean-2*std, b=mean+2*std (here "
        f"a={mean - 2 * std:g}, b={mean + 2 * std:g}); or move mean or widen std so that [a, b] "
        "holds some mass."
    )


def truncated_std(alpha: float, beta: float) -> float:
    """Std of N(0, 1) truncated to [alpha, beta].

    ``Var = 1 + (α φ(α) − β φ(β)) / Z − ((φ(α) − φ(β)) / Z)²`` with ``Z = Φ(β) − Φ(α)``; for
    ±2 it is 0.8796256610342398, the factor JAX and Keras divide by.
    """
    z = _mass(alpha, beta)
    if z == 0.0:  # an interval beyond float64's reach: the std tends to 0 there
        return 0.0
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

    Around the mean: draw ``u ~ U(Φ(α), Φ(β))`` and return ``mean + std·√2·erfinv(2u − 1)``
    (in float32 for half-precision tensors). In one tail (α >= 0 or β <= 0): reflect the
    interval into the lower tail, where Φ keeps full relative precision, draw ``u`` there in
    float64 and return ``mean ± std·Φ⁻¹(u)`` cast to the tensor's dtype; 2u − 1 would round
    to −1 beyond ~8σ and put every draw on a bound. Clamping removes the rounding that can put
    a draw a hair outside [a, b]. :func:`check_sampleable` says which intervals are too far.
    """
    alpha, beta = (a - mean) / std, (b - mean) / std
    if alpha < 0 < beta:
        lo, hi = _cdf(alpha), _cdf(beta)
        out = tensor.float() if tensor.dtype in LOW_PRECISION else tensor
        out.uniform_(2 * lo - 1, 2 * hi - 1, generator=generator)
        out.erfinv_().mul_(std * math.sqrt(2.0))
    else:
        sign = -1.0 if alpha >= 0 else 1.0  # the upper tail, mirrored: [α, β] -> [−β, −α]
        lo, hi = (_cdf(-beta), _cdf(-alpha)) if sign < 0 else (_cdf(alpha), _cdf(beta))
        out = tensor.double()
        out.uniform_(lo, hi, generator=generator)
        torch.special.ndtri(out, out=out).mul_(sign * std)
    out.add_(mean).clamp_(min=a, max=b)
    if out is not tensor:
        tensor.copy_(out)
    return tensor
