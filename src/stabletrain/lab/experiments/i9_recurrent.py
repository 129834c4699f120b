"""Claim I9: orthogonal recurrent weights keep gradients flowing through time.

A vanilla tanh RNN (:func:`stabletrain.models.rnn`, ``kind="rnn"``, hidden size 128) reads a
sequence of N(0, s²) inputs; a standard normal probe is backpropagated from the prediction at
the last step, and the gradient norm reaching each input ``x_t`` is read. Only the
hidden-to-hidden weight differs between settings (input weights Xavier, biases 0).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from stabletrain import init, models
from stabletrain.lab import verdicts
from stabletrain.lab.estimate import Estimate, over
from stabletrain.lab.experiment import (
    OUTCOMES,
    Context,
    Figure,
    Outcome,
    Table,
    Verdict,
    experiment,
)
from stabletrain.lab.staged import Explanation, Staged, measured

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


LINEAR, STANDARD = REGIMES
DEFAULT = "PyTorch default U(±1/√H)"


@dataclass(frozen=True)
class GradientFlow:
    """I9's measurements on one seed: log10 gradient ratios over ``draws`` random draws."""

    linear_orthogonal_worst: float = measured(
        "decades", "orthogonal, near-linear regime: largest |log10 ratio| over the draws"
    )
    standard_orthogonal_worst: float = measured(
        "decades", "orthogonal, standardized inputs: largest |log10 ratio| over the draws"
    )
    default_margin: float = measured(
        "decades", "orthogonal's smallest ratio minus the default's largest, worst regime"
    )
    steps: int = measured("count", "sequence length")
    draws: int = measured("count", "random draws (weights, inputs, probe) on this seed")
    decades: tuple[tuple[str, str, tuple[float, ...]], ...] = ()  # (regime, init, per draw)
    curves: tuple[tuple[str, tuple[float, ...]], ...] = ()  # first draw: gradient / last

    def of(self, regime: str, name: str) -> tuple[float, ...]:
        """The log10 ratios of ``name`` in ``regime``, one per draw."""
        return next(d for r, n, d in self.decades if r == regime and n == name)


def _flow(ctx: Context, steps: int, draws: int) -> GradientFlow:
    decades = []
    curves = []
    for regime, input_std in REGIMES.items():
        for name, scheme in RECURRENT_INITS.items():
            profiles = [_gradient_profile(ctx, d, scheme, input_std, steps) for d in range(draws)]
            decades.append((regime, name, tuple(_decades(p) for p in profiles)))
            last = profiles[0][-1]
            curves.append((f"{name}, {regime}", tuple(v / last for v in profiles[0])))
    m = GradientFlow(0.0, 0.0, 0.0, steps, draws, tuple(decades), tuple(curves))
    return dataclasses.replace(
        m,
        linear_orthogonal_worst=max(abs(d) for d in m.of(LINEAR, "orthogonal")),
        standard_orthogonal_worst=max(abs(d) for d in m.of(STANDARD, "orthogonal")),
        default_margin=min(
            min(m.of(regime, "orthogonal")) - max(m.of(regime, DEFAULT)) for regime in REGIMES
        ),
    )


def _capped(outcome: Outcome) -> Outcome:
    """A "holds" reached by the caveat's route is a "holds with caveat"."""
    return "holds with caveat" if outcome == "holds" else outcome


@experiment("I9")
class OrthogonalRecurrent(Staged[GradientFlow]):
    """Gradient flow through a vanilla tanh RNN under orthogonal, Xavier and default W_hh.

    Quick: three seeds of one draw (weights, inputs, probe) each; full: five seeds of four.
    The verdict reads each seed's worst draw, and the interval of that worst case over seeds.
    """

    def measure(self, ctx: Context) -> GradientFlow:
        return _flow(ctx, steps=ctx.pick(100, 300), draws=ctx.pick(1, 4))

    def decide(self, ms: Sequence[GradientFlow]) -> Verdict:
        linear = verdicts.at_most(over(ms, "linear_orthogonal_worst"), FLOW_DECADES)
        standard = verdicts.at_most(over(ms, "standard_orthogonal_worst"), FLOW_DECADES)
        beats = verdicts.at_least(over(ms, "default_margin"), BEATS_DEFAULT_DECADES)
        full = verdicts.weakest([linear, standard]).outcome
        caveat = _capped(verdicts.weakest([linear, beats]).outcome)
        outcome = min(full, caveat, key=OUTCOMES.index)
        rule = (
            f"holds: orthogonal's |log10(grad at t=0 / grad at t=T-1)| <= {FLOW_DECADES:g} in "
            f"every draw of both regimes; caveat: only in the near-linear regime, and "
            f">= {BEATS_DEFAULT_DECADES:g} decades above the default in both"
        )
        return dataclasses.replace(standard, outcome=outcome, rule=rule)

    def explain(self, ms: Sequence[GradientFlow], verdict: Verdict) -> Explanation:
        m = ms[0]

        def pooled(regime: str, name: str) -> list[float]:
            return [d for x in ms for d in x.of(regime, name)]

        def median(regime: str, name: str) -> float:
            return statistics.median(pooled(regime, name))

        rows = tuple(
            (
                regime,
                name,
                median(regime, name),
                min(pooled(regime, name)),
                max(pooled(regime, name)),
            )
            for regime in REGIMES
            for name in RECURRENT_INITS
        )
        lag = [float(m.steps - 1 - t) for t in range(m.steps)]
        return Explanation(
            key_number=(
                f"log10 gradient ratio over {m.steps} steps, orthogonal: "
                f"{median(LINEAR, 'orthogonal'):+.2f} near-linear, "
                f"{median(STANDARD, 'orthogonal'):+.1f} with unit inputs; default: "
                f"{median(LINEAR, DEFAULT):+.0f}"
            ),
            text=_text(ms, verdict, pooled),
            tables=(
                Table(
                    "log10(gradient at the first input / at the last input), over seeds and draws",
                    ("regime", "W_hh init", "median", "min", "max"),
                    rows,
                ),
            ),
            figures=(
                Figure(
                    "Gradient norm reaching x_t vs steps back (first draw)",
                    "steps back from the last input",
                    "gradient norm / gradient at the last input",
                    {label: (lag, list(curve)) for label, curve in m.curves},
                    logy=True,
                ),
            ),
        )


def _text(
    ms: Sequence[GradientFlow], verdict: Verdict, pooled: Callable[[str, str], list[float]]
) -> str:
    m = ms[0]

    def median(regime: str, name: str) -> float:
        return statistics.median(pooled(regime, name))

    xavier_linear = pooled(LINEAR, "Xavier uniform")
    linear_worst = Estimate.of(x.linear_orthogonal_worst for x in ms)
    return (
        "Claim: orthogonal init suits recurrent networks: it keeps gradients flowing "
        f"through time. Vanilla tanh RNN, hidden size {HIDDEN}, {m.steps} steps, {len(ms)} "
        f"seed(s) of {m.draws} random draws; the number is log10 of the gradient reaching the "
        "first input over the one reaching the last. Near-linear regime: orthogonal W_hh keeps "
        f"it within {linear_worst.describe()} decades (worst draw per seed; every singular "
        f"value is 1), Xavier's Gaussian W_hh scatters from {min(xavier_linear):+.2f} to "
        f"{max(xavier_linear):+.2f} (its eigenvalues fill the unit disk, some near the edge, "
        f"the singular values spread), and the default U(±1/√H) loses "
        f"{-median(LINEAR, DEFAULT):.0f} decades. With standardized inputs the hidden state "
        f"reaches tanh's curved part and orthogonal drops {-median(STANDARD, 'orthogonal'):.1f} "
        f"decades, like Xavier ({-median(STANDARD, 'Xavier uniform'):.1f}): orthogonality "
        "fixes the linear part of the Jacobian, not tanh's derivative, so over long spans "
        "gradients still vanish (gating, as in LSTMs, addresses the rest). "
        + (
            f"Verdict: {verdict.outcome}, since the flow (within {FLOW_DECADES:g} decade) holds "
            "only in the near-linear regime, though orthogonal beats the default by "
            f"{Estimate.of(x.default_margin for x in ms).describe()} decades at worst "
            f"(needed {BEATS_DEFAULT_DECADES:g})."
            if verdict.outcome == "holds with caveat"
            else f"Verdict: {verdict.outcome}."
        )
    )
