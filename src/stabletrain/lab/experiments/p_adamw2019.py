"""P-ADAMW2019: Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization" (ICLR).

The paper trains over a grid of learning rate α × weight decay λ and finds that with Adam + L2
the best λ moves with α (a diagonal valley), while decoupled decay (AdamW) makes them
separable: the best λ stays put when α changes. Here the same grid at CPU scale: an MLP on a
small digits split, held-out cross-entropy per cell, two ways of decaying:

- Adam + L2: :func:`~stabletrain.regularization.l2_penalty` in the loss;
- decoupled decay: ``Adam`` + :func:`~stabletrain.regularization.decouple_weight_decay` with
  ``scaling="schedule"``, θ ← θ·(1 − d) before each step, d the shrink per step.

One set of decoupled runs answers for both parametrizations of AdamW: the paper's Algorithm 2
decays by η_t·λ (η_t the schedule multiplier, 1 here), so λ = d; ``torch.optim.AdamW`` decays by
α·λ, so λ = d/α. Their best λ differ by the factor 1/α, and the slopes of log best λ against
log α differ by exactly 1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import mean

import torch
from torch import nn
from torch.nn import functional as F

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._common import DigitsSplit
from stabletrain.lab._reg_common import fit_and_score, small_digits
from stabletrain.lab.estimate import Estimate, over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured
from stabletrain.regularization.decoupled import decouple_weight_decay
from stabletrain.regularization.param_groups import decay_parameters, param_groups
from stabletrain.regularization.penalties import l2_penalty

N_TRAIN, WIDTH, BATCH = 300, 128, 64
# Adam's α. At 1e-3 the decay hardly changes the held-out loss within the budget (a flat
# profile whose minimum is noise); at 3e-2 the undecayed runs blow up.
LRS = (3e-3, 1e-2, 3e-2)
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)  # λ of (λ/2)‖θ‖² in the loss
# d, the decoupled shrink per step; 1 (weights zeroed before each step) only bounds the
# parabola when the best d at the largest α is 0.1
DECAY_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
COUPLED, TORCH, PAPER = "Adam + L2", "AdamW (torch: α·λ)", "AdamW (paper: η_t·λ)"
# Coupling = the slope of log10(best λ) against log10(α): 0 when the best λ stays put, ±1 when
# it moves in proportion to α. The claim has two parts, both decided on the mean signed slope
# over the seeds (a mean of |slope| per split would read the scatter as coupling):
# - decoupled: Adam + L2's slope at least MIN_COUPLING_GAP further from 0, in its direction,
#   than AdamW's (the contrast of the paper's Fig. 2);
# - separable: AdamW's slope within ±MAX_SEPARABLE, the best λ moving by at most half a decade
#   per decade of α (the paper: it stays put).
# Both: holds; one: holds with caveat.
MAX_SEPARABLE = 0.5
MIN_COUPLING_GAP = 0.5
# 200 Adam steps in both modes. Per split the slopes scatter: AdamW's (torch's λ) -0.28..+0.84,
# Adam + L2's -0.07..+1.5 over 32 splits, so 3 or 5 seeds left both parts' intervals across
# their bounds. Over 16 seeds AdamW's slope is +0.23 ± 0.15 and +0.04 ± 0.10 (seeds 0 and 1),
# the gap 0.76 ± 0.17 and 0.79 ± 0.10. With 300-400 steps the grid was noisier (Adam + L2's
# slope +0.37..+0.84, AdamW's +0.1..+0.7 over two splits): longer training brings Adam + L2
# closer to the minimizer of loss + (λ/2)‖θ‖², which does not depend on α.
STEPS = 200


@dataclass(frozen=True)
class AdamWMeasurements:
    """The slopes of log10 best λ against log10 α on one data split, and the grid behind them."""

    coupled_slope: float = measured("decades/decade", "Adam + L2: slope of log best λ vs log α")
    torch_slope: float = measured("decades/decade", "AdamW, torch's λ (shrink α·λ): slope")
    paper_slope: float = measured("decades/decade", "AdamW, the paper's λ (shrink λ): slope")
    l2_loss: tuple[tuple[float, ...], ...] = ()  # per α, held-out loss per λ of L2_GRID
    decay_loss: tuple[tuple[float, ...], ...] = ()  # per α, per d of DECAY_GRID
    best: tuple[tuple[float, ...], ...] = ()  # per method (COUPLED, TORCH, PAPER), per α


def _held_out_loss(
    base: nn.Module, split: DigitsSplit, seed: int, steps: int, lr: float, *, l2: float, d: float
) -> float:
    """Held-out loss after Adam at ``lr`` with L2 ``l2`` in the loss or decoupled shrink ``d``."""
    model = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed)
    if l2 > 0:
        weights = decay_parameters(model)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        return fit_and_score(
            model,
            opt,
            split,
            steps=steps,
            batch_size=BATCH,
            generator=gen,
            loss_fn=lambda out, y: F.cross_entropy(out, y) + l2_penalty(weights, l2),
        ).test_loss
    opt = torch.optim.Adam(param_groups(model, d), lr=lr)
    with decouple_weight_decay(opt, scaling="schedule"):  # θ·(1 − d): no lr factor
        return fit_and_score(
            model, opt, split, steps=steps, batch_size=BATCH, generator=gen
        ).test_loss


def _best_log_lambda(grid: tuple[float, ...], losses: Sequence[float]) -> float:
    """log10 of the best λ: the vertex of the parabola through the grid's minimum and its two
    neighbours (in log10 λ), clipped to them; the grid end when the minimum is at an end."""
    logs = [math.log10(v) for v in grid]
    i = min(range(len(grid)), key=lambda k: losses[k])
    if i in (0, len(grid) - 1):
        return logs[i]
    (x0, x1, x2), (y0, y1, y2) = logs[i - 1 : i + 2], losses[i - 1 : i + 2]
    curvature = y0 - 2 * y1 + y2  # > 0 at an interior minimum (equal steps in log λ)
    if curvature <= 0:
        return x1
    vertex = x1 - (x1 - x0) * (y2 - y0) / (2 * curvature)
    return min(max(vertex, x0), x2)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = mean(xs), mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def _decoupled(ms: Sequence[AdamWMeasurements]) -> str:
    """The more separable AdamW parametrization over the seeds (mean slope nearer 0)."""
    torch_abs = abs(mean(m.torch_slope for m in ms))
    paper_abs = abs(mean(m.paper_slope for m in ms))
    return TORCH if torch_abs <= paper_abs else PAPER


def _decoupled_slope(m: AdamWMeasurements, method: str) -> float:
    return m.torch_slope if method == TORCH else m.paper_slope


def _both_or_one(decoupled: Verdict, separable: Verdict) -> Verdict:
    """Holds when both parts hold, with caveat when one does; else inconclusive when either
    part is, else does not hold. The number reported is the decoupling gap's."""
    held = [v for v in (decoupled, separable) if v.outcome == "holds"]  # decoupled first
    if len(held) == 2:
        return decoupled
    if held:
        missing = separable if held[0] is decoupled else decoupled
        rule = f"{held[0].rule}; caveat: not {missing.rule} ({missing.measured:.3g})"
        return replace(decoupled, outcome="holds with caveat", rule=rule)
    if "inconclusive" in (decoupled.outcome, separable.outcome):
        return replace(decoupled, outcome="inconclusive")
    return replace(decoupled, outcome="does not hold")


@experiment("P-ADAMW2019")
class AdamW2019(Staged[AdamWMeasurements]):
    """Best weight decay against Adam's learning rate, with L2 and with decoupled decay.

    One data split and initial model per seed; decided on the intervals over seeds of
    AdamW's slope (the more separable parametrization) and of Adam + L2's excess over it.
    """

    seeds = (16, 16)  # see STEPS

    def measure(self, ctx: Context) -> AdamWMeasurements:
        split = small_digits(N_TRAIN, ctx.seed)
        torch.manual_seed(ctx.seed)
        base = models.mlp(64, 10, depth=2, width=WIDTH)
        l2_loss = tuple(
            tuple(_held_out_loss(base, split, ctx.seed, STEPS, lr, l2=v, d=0.0) for v in L2_GRID)
            for lr in LRS
        )
        decay_loss = tuple(
            tuple(_held_out_loss(base, split, ctx.seed, STEPS, lr, l2=0.0, d=v) for v in DECAY_GRID)
            for lr in LRS
        )
        log_lrs = [math.log10(lr) for lr in LRS]
        coupled = [_best_log_lambda(L2_GRID, row) for row in l2_loss]
        paper = [_best_log_lambda(DECAY_GRID, row) for row in decay_loss]
        torch_best = [b - a for a, b in zip(log_lrs, paper, strict=True)]  # λ = d/α
        return AdamWMeasurements(
            coupled_slope=_slope(log_lrs, coupled),
            torch_slope=_slope(log_lrs, torch_best),
            paper_slope=_slope(log_lrs, paper),
            l2_loss=l2_loss,
            decay_loss=decay_loss,
            best=(tuple(coupled), tuple(torch_best), tuple(paper)),
        )

    def decide(self, ms: Sequence[AdamWMeasurements]) -> Verdict:
        method = _decoupled(ms)
        slope = Estimate.of(_decoupled_slope(m, method) for m in ms)
        direction = 1.0 if mean(m.coupled_slope for m in ms) >= 0 else -1.0
        gap = Estimate.of(direction * (m.coupled_slope - _decoupled_slope(m, method)) for m in ms)
        separable = verdicts.weakest(
            [verdicts.at_most(slope, MAX_SEPARABLE), verdicts.at_least(slope, -MAX_SEPARABLE)]
        )
        return _both_or_one(verdicts.at_least(gap, MIN_COUPLING_GAP), separable)

    def explain(self, ms: Sequence[AdamWMeasurements], verdict: Verdict) -> Explanation:
        coupled, torch_s, paper = (
            over(ms, "coupled_slope"),
            over(ms, "torch_slope"),
            over(ms, "paper_slope"),
        )
        key = (
            f"slope of log best λ vs log lr: Adam + L2 {coupled.value:+.2f}, AdamW "
            f"{torch_s.value:+.2f} (torch's λ), {paper.value:+.2f} (the paper's λ); 0: separable"
        )
        text = (
            "Paper: over a learning rate × weight decay grid, AdamW's best weight decay does "
            "not move with the learning rate, Adam + L2's does (Loshchilov & Hutter 2019, Fig. "
            f"2: CIFAR-10, 26-layer ResNets, 100 epochs). Here: a 64-{WIDTH}-{WIDTH}-10 MLP, "
            f"{STEPS} Adam steps (batch {BATCH}) on {N_TRAIN} digits, held-out cross-entropy "
            f"on 1438, α in {', '.join(f'{lr:g}' for lr in LRS)}, one split per seed, "
            f"{len(ms)} seed(s). The best λ per α (parabola through the grid's minimum) moves "
            f"with slope {coupled.describe()} decades per decade of α under Adam + L2; under "
            f"decoupled decay, {torch_s.describe()} with torch's λ (shrink α·λ per step) and "
            f"{paper.describe()} with the paper's Algorithm 2 λ (shrink λ per step). "
            f"The claim holds when AdamW decouples (Adam + L2's slope at least "
            f"{MIN_COUPLING_GAP} further from 0 than AdamW's) and separates (AdamW's slope "
            f"within ±{MAX_SEPARABLE}: the best λ stays put), with a caveat when only one is "
            f"shown; AdamW is the more separable of the two parametrizations over the seeds, here "
            f"{_decoupled(ms)}. Which AdamW separates is a matter of "
            f"parametrization: the best shrink per step d grows with α (slope "
            f"{paper.value:+.2f}; Adam's steps, and with them the weight scale, grow with α), "
            "which torch's λ = d/α absorbs. The scale differs from the paper: a small MLP, "
            "hundreds of steps, no schedule, and at the largest α the undecayed runs blow up, "
            f"so there the decay also keeps training stable. Verdict: {verdict.outcome}."
        )
        return Explanation(key, text, _tables(ms), (_figure(ms),))


def _mean_grid(rows: Sequence[tuple[tuple[float, ...], ...]]) -> list[list[float]]:
    """The element-wise mean over seeds of per-α rows."""
    return [[mean(r[i][j] for r in rows) for j in range(len(rows[0][i]))] for i in range(len(LRS))]


def _tables(ms: Sequence[AdamWMeasurements]) -> tuple[Table, ...]:
    l2 = _mean_grid([m.l2_loss for m in ms])
    dec = _mean_grid([m.decay_loss for m in ms])
    best = [[mean(m.best[k][i] for m in ms) for i in range(len(LRS))] for k in range(3)]
    grid = Table(
        "held-out cross-entropy (mean over seeds): Adam + L2 (λ) and decoupled decay (shrink d "
        "per step)",
        ("α", *(f"L2 λ={v:g}" for v in L2_GRID), *(f"decoupled d={v:g}" for v in DECAY_GRID)),
        tuple(
            (f"{lr:g}", *(f"{v:.3f}" for v in l2[i]), *(f"{v:.3f}" for v in dec[i]))
            for i, lr in enumerate(LRS)
        ),
    )
    bests = Table(
        "best λ per learning rate, geometric mean over seeds (AdamW torch: λ = d/α; paper: λ = d)",
        ("α", COUPLED, TORCH, PAPER),
        tuple(
            (f"{lr:g}", *(f"{10 ** best[k][i]:.2g}" for k in range(3))) for i, lr in enumerate(LRS)
        ),
    )
    return grid, bests


def _figure(ms: Sequence[AdamWMeasurements]) -> Figure:
    log_lrs = [math.log10(lr) for lr in LRS]
    return Figure(
        "best weight decay vs learning rate (mean over seeds)",
        "log10 α",
        "log10 best λ",
        {
            method: (log_lrs, [mean(m.best[k][i] for m in ms) for i in range(len(LRS))])
            for k, method in enumerate((COUPLED, TORCH, PAPER))
        },
    )
