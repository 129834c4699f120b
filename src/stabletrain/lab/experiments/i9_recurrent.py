"""Claim I9: orthogonal recurrent weights keep gradients flowing through time.

A vanilla tanh RNN (:func:`stabletrain.models.rnn`, ``kind="rnn"``, hidden size 128) reads a
sequence of N(0, s²) inputs; a standard normal probe is backpropagated from the prediction at
the last step, and the gradient norm reaching each input ``x_t`` is read. Only the
hidden-to-hidden weight differs between settings (input weights Xavier, biases 0).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch

from stabletrain import init, models
from stabletrain.lab.experiment import Context, Figure, Outcome, Result, Table, Verdict, experiment

HIDDEN, INPUTS = 128, 8
# Gradients "flow" when the gradient reaching the first input is within 10x (one decade) of
# the one reaching the last input, in every random draw.
FLOW_DECADES = 1.0
# Orthogonal must beat the PyTorch default (U(±1/√H), gain 1/√3) by this many decades for
# the caveat outcome: the default loses ~0.6x per step, 1e-20 over 100 steps.
BEATS_DEFAULT_DECADES = 3.0
REGIMES = {
    # inputs of std 0.01 keep the hidden state small: tanh is linear, only W_hh matters
    "near-linear (input std 0.01)": 0.01,
    # standardized inputs: the hidden state reaches tanh's curved part
    "standardized (input std 1)": 1.0,
}
_Init = Callable[[torch.Tensor, torch.Generator], object]
RECURRENT_INITS: dict[str, _Init] = {
    "orthogonal": lambda w, g: init.orthogonal_(w, generator=g),
    "Xavier uniform": lambda w, g: init.xavier_uniform_(w, generator=g),
    "PyTorch default U(±1/√H)": lambda w, g: init.standard_(w, generator=g),
}


def _gradient_profile(
    ctx: Context, draw: int, scheme: _Init, input_std: float, steps: int
) -> list[float]:
    """Mean gradient norm w.r.t. each input x_t, t = 0 .. steps-1, for one random draw."""
    g = ctx.generator(1000 * draw + 1)
    # float64: the default init's gradient falls below float32's range (1e-45) within 200 steps
    model = models.rnn("rnn", INPUTS, HIDDEN, out_features=1).double()
    cell = model.recurrent
    init.xavier_uniform_(cell.get_parameter("weight_ih_l0"), generator=g)
    scheme(cell.get_parameter("weight_hh_l0"), g)
    init.zeros_(cell.get_parameter("bias_ih_l0"))
    init.zeros_(cell.get_parameter("bias_hh_l0"))
    init.xavier_uniform_(model.head.get_parameter("weight"), generator=g)
    x = input_std * torch.randn(64, steps, INPUTS, generator=g, dtype=torch.float64)
    x.requires_grad_(True)
    out = model(x)  # (64, 1): the prediction from the last step
    probe = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(out, [x], probe)
    return [float(v) for v in grad.norm(dim=2).mean(0)]  # (steps,)


def _decades(profile: list[float]) -> float:
    """log10 of (gradient at the first input / gradient at the last input)."""
    first, last = profile[0], profile[-1]
    return math.log10(first / last) if first > 0 else -math.inf  # -inf: below float64


@experiment("I9")
def orthogonal_recurrent(ctx: Context) -> Result:
    steps, draws = ctx.pick(100, 300), ctx.pick(4, 12)
    decades: dict[tuple[str, str], list[float]] = {}
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for regime, input_std in REGIMES.items():
        for name, scheme in RECURRENT_INITS.items():
            profiles = [_gradient_profile(ctx, d, scheme, input_std, steps) for d in range(draws)]
            decades[regime, name] = [_decades(p) for p in profiles]
            last = profiles[0][-1]
            lag = [float(steps - 1 - t) for t in range(steps)]
            curves[f"{name}, {regime}"] = (lag, [v / last for v in profiles[0]])

    def worst(regime: str, name: str) -> float:
        return max(abs(d) for d in decades[regime, name])

    linear, standard = REGIMES
    flows = {regime: worst(regime, "orthogonal") <= FLOW_DECADES for regime in REGIMES}
    beats_default = all(
        min(decades[regime, "orthogonal"]) - max(decades[regime, "PyTorch default U(±1/√H)"])
        >= BEATS_DEFAULT_DECADES
        for regime in REGIMES
    )
    outcome: Outcome = "does not hold"
    if all(flows.values()):
        outcome = "holds"
    elif flows[linear] and beats_default:
        outcome = "holds with caveat"
    verdict = Verdict(
        outcome,
        measured=worst(standard, "orthogonal"),
        threshold=FLOW_DECADES,
        rule=(
            f"holds: orthogonal's |log10(grad at t=0 / grad at t=T-1)| <= {FLOW_DECADES:g} in "
            f"every draw of both regimes; caveat: only in the near-linear regime, and "
            f">= {BEATS_DEFAULT_DECADES:g} decades above the default in both"
        ),
    )

    def median(regime: str, name: str) -> float:
        return statistics.median(decades[regime, name])

    rows = tuple(
        (regime, name, median(regime, name), min(decades[regime, name]), max(decades[regime, name]))
        for regime in REGIMES
        for name in RECURRENT_INITS
    )
    xavier_linear = decades[linear, "Xavier uniform"]
    return Result(
        verdict=verdict,
        key_number=(
            f"log10 gradient ratio over {steps} steps, orthogonal: "
            f"{median(linear, 'orthogonal'):+.2f} near-linear, "
            f"{median(standard, 'orthogonal'):+.1f} with unit inputs; default: "
            f"{median(linear, 'PyTorch default U(±1/√H)'):+.0f}"
        ),
        explanation=(
            "Claim: orthogonal init suits recurrent networks: it keeps gradients flowing "
            f"through time. Vanilla tanh RNN, hidden size {HIDDEN}, {steps} steps, {draws} "
            "random draws; the number is log10 of the gradient reaching the first input over "
            "the one reaching the last. Near-linear regime: orthogonal W_hh keeps it within "
            f"{worst(linear, 'orthogonal'):.2f} decades (every singular value is 1), Xavier's "
            f"Gaussian W_hh scatters from {min(xavier_linear):+.2f} to {max(xavier_linear):+.2f} "
            "(its eigenvalues fill the unit disk, some near the edge, the singular values "
            "spread), and the default U(±1/√H) loses "
            f"{-median(linear, 'PyTorch default U(±1/√H)'):.0f} decades. With standardized "
            f"inputs the hidden state reaches tanh's curved part and orthogonal drops "
            f"{-median(standard, 'orthogonal'):.1f} decades, like Xavier "
            f"({-median(standard, 'Xavier uniform'):.1f}): orthogonality fixes the linear "
            "part of the Jacobian, not tanh's derivative, so over long spans gradients still "
            "vanish (gating, as in LSTMs, addresses the rest). "
            + (
                f"Verdict: {outcome}, since the flow (within {FLOW_DECADES:g} decade) holds "
                f"only in the near-linear regime, though orthogonal beats the default by "
                f"{BEATS_DEFAULT_DECADES:g}+ decades in both."
                if outcome == "holds with caveat"
                else f"Verdict: {outcome}."
            )
        ),
        tables=(
            Table(
                "log10(gradient at the first input / at the last input), over random draws",
                ("regime", "W_hh init", "median", "min", "max"),
                rows,
            ),
        ),
        figures=(
            Figure(
                "Gradient norm reaching x_t vs steps back (first draw)",
                "steps back from the last input",
                "gradient norm / gradient at the last input",
                curves,
                logy=True,
            ),
        ),
    )
