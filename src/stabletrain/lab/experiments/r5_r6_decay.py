"""Weight decay in practice: claims R5 (it reduces overfitting) and R6 (no decay for biases and
normalization parameters).

Both train MLPs on small digits splits, where a wide network fits the training set perfectly;
the decay is given through :func:`~stabletrain.regularization.param_groups`, which leaves
biases and normalization parameters out unless told otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, fields
from statistics import mean

import torch
from torch import nn

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._reg_common import FitScores, fit_and_score, small_digits
from stabletrain.lab.estimate import describe, over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured
from stabletrain.models import NormName
from stabletrain.regularization.param_groups import (
    decay_parameters,
    explain_param_groups,
    param_groups,
)

# --- R5 ---------------------------------------------------------------------------------------

R5_N_TRAIN, R5_WIDTH = 100, 256  # 100 digits, 64-256-256-10 (~85k weights): fits them all
R5_LR, R5_MOMENTUM = 0.05, 0.9
# The λ the verdict compares with 0, fixed in advance: mid-range for SGD's coupled decay (the
# grid of the full run shows the neighbours).
R5_LAMBDA = 3e-3
R5_GRID = ((0.0, R5_LAMBDA), (0.0, 1e-3, R5_LAMBDA, 1e-2))
# "Reduces overfitting": the train−test accuracy gap shrinks by at least 2 points (2.5 standard
# errors of a paired difference on 1438 test digits). Caveat: only the cross-entropy gap
# (test − train loss, overconfidence) shrinks, by at least 20%.
R5_MIN_ACC_GAP_CUT = 0.02
R5_MIN_LOSS_GAP_CUT = 0.20
R5_QUICK_STEPS = 300


@dataclass(frozen=True)
class _DecayRun:
    lam: float
    scores: FitScores
    weight_norm: float  # Σ‖W‖² of the decayed weights: the "model complexity" decay limits


def _decay_run(base: nn.Module, ctx_seed: int, lam: float, steps: int) -> _DecayRun:
    model = copy.deepcopy(base)
    opt = torch.optim.SGD(param_groups(model, lam), lr=R5_LR, momentum=R5_MOMENTUM)
    scores = fit_and_score(model, opt, small_digits(R5_N_TRAIN, ctx_seed), steps=steps)
    with torch.no_grad():
        norm = float(sum(p.pow(2).sum() for p in decay_parameters(model)))
    return _DecayRun(lam, scores, norm)


@dataclass(frozen=True)
class DecayPoint:
    """Scores after training with decay λ (a row of R5's table)."""

    lam: float
    train_accuracy: float
    test_accuracy: float
    gap: float  # train − test accuracy
    train_loss: float
    test_loss: float
    loss_gap: float  # test − train cross-entropy
    weight_norm: float  # Σ‖W‖² of the decayed weights


@dataclass(frozen=True)
class DecayEffect:
    """R5's measurements on one split: the train/test gaps without decay and at R5_LAMBDA."""

    acc_gap_cut: float = measured("accuracy", "accuracy gap at λ=0 minus at R5_LAMBDA")
    loss_gap_cut: float = measured("fraction", "1 − loss gap at R5_LAMBDA / loss gap at λ=0")
    test_loss_cut: float = measured("nats", "test loss at λ=0 minus at R5_LAMBDA")
    steps: int = measured("steps", "full-batch SGD steps")
    points: tuple[DecayPoint, ...] = ()  # per λ of the grid, 0 first


def _point(run: _DecayRun) -> DecayPoint:
    sc = run.scores
    return DecayPoint(
        run.lam,
        sc.train_accuracy,
        sc.test_accuracy,
        sc.gap,
        sc.train_loss,
        sc.test_loss,
        sc.loss_gap,
        run.weight_norm,
    )


def _mean_points(ms: Sequence[DecayEffect]) -> list[DecayPoint]:
    """Each λ's scores averaged over the seeds."""
    out = []
    for k, first in enumerate(ms[0].points):
        per_seed = [m.points[k] for m in ms]
        values = [mean(getattr(p, f.name) for p in per_seed) for f in fields(DecayPoint)[1:]]
        out.append(DecayPoint(first.lam, *values))
    return out


@experiment("R5")
class WeightDecayReducesOverfitting(Staged[DecayEffect]):
    """R5: decay λ=R5_LAMBDA against none on small digits splits, one split per seed."""

    # Twelve seeds in both modes: one split's loss-gap cut scatters from about 0.15 to 0.40
    # around a mean near 0.3, so on 3 or 5 seeds its interval straddled the 20% caveat bound
    # ("inconclusive" on some seed sets, "holds with caveat" on others). On 12 it is
    # 0.27-0.34 ± 0.05 at quick and full, seeds 0 and 1: "holds with caveat" on all four.
    seeds = (12, 12)

    def measure(self, ctx: Context) -> DecayEffect:
        steps = ctx.pick(R5_QUICK_STEPS, 400)
        ctx.seed_all()
        base = models.mlp(64, 10, depth=2, width=R5_WIDTH)
        points = tuple(_point(_decay_run(base, ctx.seed, lam, steps)) for lam in ctx.pick(*R5_GRID))
        by_lam = {p.lam: p for p in points}
        none, decayed = by_lam[0.0], by_lam[R5_LAMBDA]
        return DecayEffect(
            acc_gap_cut=none.gap - decayed.gap,
            loss_gap_cut=1 - decayed.loss_gap / none.loss_gap,
            test_loss_cut=none.test_loss - decayed.test_loss,
            steps=steps,
            points=points,
        )

    def decide(self, ms: Sequence[DecayEffect]) -> Verdict:
        return verdicts.holds_or_partly(
            verdicts.at_least(over(ms, "acc_gap_cut"), R5_MIN_ACC_GAP_CUT),
            verdicts.at_least(over(ms, "loss_gap_cut"), R5_MIN_LOSS_GAP_CUT),
        )

    def explain(self, ms: Sequence[DecayEffect], verdict: Verdict) -> Explanation:
        pts = _mean_points(ms)
        none, decayed = pts[0], next(p for p in pts if p.lam == R5_LAMBDA)
        text = (
            "Claim: weight decay reduces overfitting (the train/test gap) by limiting model "
            f"complexity. A 64-{R5_WIDTH}-{R5_WIDTH}-10 MLP trained {ms[0].steps} full-batch "
            f"SGD steps (momentum {R5_MOMENTUM}) on {R5_N_TRAIN} digits, tested on 1438, one "
            f"split per seed ({len(ms)} seeds): decay λ={R5_LAMBDA:g} (weights only, via "
            f"param_groups) cuts the weights' Σ‖W‖² from {none.weight_norm:.0f} to "
            f"{decayed.weight_norm:.0f} at a training accuracy of {decayed.train_accuracy:.3f}; "
            f"the accuracy gap goes from {none.gap:.3f} to {decayed.gap:.3f} (a cut of "
            f"{describe(ms, 'acc_gap_cut', '.3f')}; threshold {R5_MIN_ACC_GAP_CUT}), while the "
            f"cross-entropy gap (test − train loss) falls by a fraction "
            f"{describe(ms, 'loss_gap_cut', '.2f')} (caveat threshold {R5_MIN_LOSS_GAP_CUT})"
            + (
                ": at this scale decay mostly tames overconfidence (test loss) rather than "
                "changing which digits are misclassified"
                if verdict.outcome == "holds with caveat"
                else _R5_INCONCLUSIVE
                if verdict.outcome == "inconclusive"
                else ""
            )
            + f". Verdict: {verdict.outcome}."
        )
        return Explanation(
            f"λ={R5_LAMBDA:g} vs 0: accuracy gap {none.gap:.3f} -> {decayed.gap:.3f}, test loss "
            f"{none.test_loss:.3f} -> {decayed.test_loss:.3f}",
            text,
            tables=(_r5_table(pts, len(ms)),),
            figures=(
                Figure(
                    "train/test gap vs weight decay",
                    "λ",
                    "gap",
                    {
                        "accuracy gap": ([p.lam for p in pts], [p.gap for p in pts]),
                        "loss gap (test − train)": (
                            [p.lam for p in pts],
                            [p.loss_gap for p in pts],
                        ),
                    },
                ),
            ),
        )


_R5_INCONCLUSIVE = (
    ": the loss-gap cut varies between splits (from about 15% to 40%, with an accuracy gap that "
    "barely moves) more than this many seeds can place against the 20% threshold; decay clearly "
    "shrinks the weights and lowers the test loss on every split, but by how much depends on "
    "how overconfident the undecayed net happens to get"
)


def _r5_table(pts: Sequence[DecayPoint], seeds: int) -> Table:
    return Table(
        f"SGD + weight decay on {R5_N_TRAIN} digits (mean over {seeds} split(s))",
        ("λ", "train acc", "test acc", "acc gap", "train loss", "test loss", "Σ‖W‖²"),
        tuple(
            (
                f"{p.lam:g}",
                f"{p.train_accuracy:.3f}",
                f"{p.test_accuracy:.3f}",
                f"{p.gap:.3f}",
                f"{p.train_loss:.3f}",
                f"{p.test_loss:.3f}",
                f"{p.weight_norm:.0f}",
            )
            for p in pts
        ),
    )


# --- R6 ---------------------------------------------------------------------------------------

R6_N_TRAIN, R6_WIDTH, R6_DEPTH = 300, 128, 3
R6_LR, R6_MOMENTUM, R6_BATCH = 0.05, 0.9, 64
# Typical SGD decays, 200 steps in both modes. Beyond that these nets are not a fair test: at
# λ = 2e-2, or after 500-800 steps at 1e-2, SGD with momentum makes them train erratically
# whichever parameters decay (weights before a norm shrink, so the effective step grows; test
# accuracy 0.1..0.95 between splits), which measures instability, not the claim.
R6_LAMBDA = 1e-2
R6_GRID = ((R6_LAMBDA,), (5e-3, R6_LAMBDA))
R6_STEPS = 200
# At 300 steps the effect already scatters by ±0.015 between splits (the momentum runs start to
# wander), so 3 seeds could not place it against ±0.02; at 200 it scatters by about ±0.003.
# The effect: test accuracy with biases and norms spared (param_groups) minus with everything
# decayed, averaged over the norms, λ and splits. Holds: sparing gains at least 2 points (2.5
# standard errors of a paired difference on 1438 test digits); caveat: it costs at most 2
# points (the advice is safe, but its benefit is not measurable here); does not hold: decaying
# everything is better by more than 2 points.
R6_MIN_EFFECT, R6_CAVEAT_EFFECT = 0.02, -0.02
NORM_TYPES = (nn.LayerNorm, nn.BatchNorm1d)


def _groups_are_right(model: nn.Module, lam: float) -> tuple[float, list[tuple[str, str, str]]]:
    """(fraction of parameters whose decay is what the claim says, the table rows)."""
    report = explain_param_groups(model, lam)
    right = 0
    rows = []
    for row in report.rows:
        expected = 0.0 if row.category in ("bias", "norm") else lam
        right += row.weight_decay == expected
        rows.append((row.name, row.category, f"{row.weight_decay:g}"))
    return right / len(report.rows), rows


def _norm_gain(model: nn.Module) -> float:
    """Mean |γ| over the normalization layers."""
    gains = [m.weight.detach().abs().mean() for m in model.modules() if isinstance(m, NORM_TYPES)]
    return float(torch.stack(gains).mean())


@dataclass(frozen=True)
class _EffectRun:
    test_accuracy: float
    gain: float  # mean |γ| of the norm layers after training


def _effect_run(base: nn.Module, seed: int, lam: float, steps: int, *, spare: bool) -> _EffectRun:
    """SGD with decay λ on the weights only (``spare``: param_groups) or on every parameter."""
    model = copy.deepcopy(base)
    groups = (
        param_groups(model, lam)
        if spare
        else [{"params": list(model.parameters()), "weight_decay": lam}]
    )
    opt = torch.optim.SGD(groups, lr=R6_LR, momentum=R6_MOMENTUM)
    scores = fit_and_score(
        model,
        opt,
        small_digits(R6_N_TRAIN, seed),
        steps=steps,
        batch_size=R6_BATCH,
        generator=torch.Generator().manual_seed(seed),
    )
    return _EffectRun(scores.test_accuracy, _norm_gain(model))


NORMS: tuple[NormName, ...] = ("layer", "batch")
NORM_LABEL = {"layer": "LayerNorm", "batch": "BatchNorm"}


@dataclass(frozen=True)
class SparingRow:
    """One norm and λ: test accuracy and mean |γ| with biases and norms spared or decayed."""

    norm: NormName
    lam: float
    acc_spared: float
    acc_decayed: float
    gain_spared: float
    gain_decayed: float

    @property
    def effect(self) -> float:
        """Test accuracy spared minus everything decayed."""
        return self.acc_spared - self.acc_decayed


@dataclass(frozen=True)
class SparingEffect:
    """R6's measurements on one split: param_groups' grouping and what sparing changes."""

    effect: float = measured("accuracy", "test accuracy, spared minus all decayed (mean)")
    grouping_right: float = measured(
        "fraction", "parameters param_groups decays as the claim says (0 for biases and norms)"
    )
    layer_gain_spared: float = measured("|γ|", f"LayerNorm mean |γ| at λ={R6_LAMBDA:g}, spared")
    layer_gain_decayed: float = measured("|γ|", "the same, everything decayed")
    batch_gain_decayed: float = measured("|γ|", "BatchNorm mean |γ|, everything decayed")
    rows: tuple[SparingRow, ...] = ()  # per norm and λ
    group_rows: tuple[tuple[str, str, str], ...] = ()  # (parameter, category, decay)


def _sparing_row(norm: NormName, lam: float, seed: int, steps: int) -> SparingRow:
    torch.manual_seed(seed)
    base = models.mlp(64, 10, depth=R6_DEPTH, width=R6_WIDTH, norm=norm)
    spared = _effect_run(base, seed, lam, steps, spare=True)
    decayed = _effect_run(base, seed, lam, steps, spare=False)
    return SparingRow(
        norm, lam, spared.test_accuracy, decayed.test_accuracy, spared.gain, decayed.gain
    )


@experiment("R6")
class NoDecayForBiasesAndNorms(Staged[SparingEffect]):
    """R6: param_groups spares biases and norms; the effect on test accuracy, one split per seed."""

    def measure(self, ctx: Context) -> SparingEffect:
        steps = R6_STEPS
        right, group_rows = _groups_are_right(
            models.mlp(64, 10, depth=1, width=8, norm="batch"), 0.1
        )
        rows = tuple(
            _sparing_row(norm, lam, ctx.seed, steps) for norm in NORMS for lam in ctx.pick(*R6_GRID)
        )
        at = {r.norm: r for r in rows if r.lam == R6_LAMBDA}
        return SparingEffect(
            effect=mean(r.effect for r in rows),
            grouping_right=right,
            layer_gain_spared=at["layer"].gain_spared,
            layer_gain_decayed=at["layer"].gain_decayed,
            batch_gain_decayed=at["batch"].gain_decayed,
            rows=rows,
            group_rows=tuple(group_rows),
        )

    def decide(self, ms: Sequence[SparingEffect]) -> Verdict:
        return verdicts.weakest(
            [
                verdicts.at_least(over(ms, "effect"), R6_MIN_EFFECT, caveat=R6_CAVEAT_EFFECT),
                verdicts.at_least(over(ms, "grouping_right"), 1.0),
            ]
        )

    def explain(self, ms: Sequence[SparingEffect], verdict: Verdict) -> Explanation:
        effect = describe(ms, "effect", "+.3f")
        text = (
            "Claim: biases and normalization parameters should get no or less decay. "
            f"param_groups gives {100 * over(ms, 'grouping_right').value:.0f}% of the "
            "parameters the decay the claim asks (0 for every bias and norm gain/shift, λ for "
            f"the weights). The effect: 64-{R6_WIDTH}×{R6_DEPTH}-10 MLPs with LayerNorm or "
            f"BatchNorm trained SGD (momentum {R6_MOMENTUM}, batch {R6_BATCH}) on {R6_N_TRAIN} "
            f"digits, one split per seed ({len(ms)} seeds), once decaying every parameter, once "
            "sparing biases and norms. Decaying everything shrinks the norm gains |γ| from "
            f"about {describe(ms, 'layer_gain_spared', '.2f')} to "
            f"{describe(ms, 'layer_gain_decayed', '.2f')} (LayerNorm) and "
            f"{describe(ms, 'batch_gain_decayed', '.2f')} (BatchNorm) at λ={R6_LAMBDA:g}; "
            f"sparing them changes test accuracy by {effect} on average (per norm and λ in the "
            f"table; holds at +{R6_MIN_EFFECT}, caveat down to {R6_CAVEAT_EFFECT})"
            + (
                ": the grouping is right and safe, and whether sparing norms also generalizes "
                "better is below what this scale measures reliably (the next layer absorbs the "
                "shrunk scale)"
                if verdict.outcome == "holds with caveat"
                else ""
            )
            + f". Verdict: {verdict.outcome}."
        )
        return Explanation(
            f"test accuracy, biases and norms spared minus everything decayed: {effect} "
            f"(LayerNorm |γ| {over(ms, 'layer_gain_spared').value:.2f} spared, "
            f"{over(ms, 'layer_gain_decayed').value:.2f} decayed)",
            text,
            tables=_r6_tables(ms),
            figures=(_r6_figure(ms),),
        )


def _r6_mean_rows(ms: Sequence[SparingEffect]) -> list[SparingRow]:
    """Each norm and λ averaged over the seeds."""
    out = []
    for k, r in enumerate(ms[0].rows):
        per_seed = [m.rows[k] for m in ms]
        values = [mean(getattr(x, f.name) for x in per_seed) for f in fields(SparingRow)[2:]]
        out.append(SparingRow(r.norm, r.lam, *values))
    return out


def _r6_tables(ms: Sequence[SparingEffect]) -> tuple[Table, ...]:
    rows = _r6_mean_rows(ms)
    return (
        Table(
            "param_groups(model, 0.1) on an MLP with BatchNorm: decay per parameter",
            ("parameter", "category", "weight decay"),
            ms[0].group_rows,
        ),
        Table(
            f"test accuracy and mean |γ| after training (mean over {len(ms)} split(s))",
            (
                "norm",
                "λ",
                "test acc, spared",
                "test acc, all decayed",
                "difference",
                "|γ|, spared",
                "|γ|, all decayed",
            ),
            tuple(
                (
                    NORM_LABEL[r.norm],
                    f"{r.lam:g}",
                    f"{r.acc_spared:.3f}",
                    f"{r.acc_decayed:.3f}",
                    f"{r.effect:+.3f}",
                    f"{r.gain_spared:.2f}",
                    f"{r.gain_decayed:.2f}",
                )
                for r in rows
            ),
        ),
    )


def _r6_figure(ms: Sequence[SparingEffect]) -> Figure:
    at = [r for r in _r6_mean_rows(ms) if r.lam == R6_LAMBDA]
    xs = [float(k) for k in range(len(at))]
    return Figure(
        f"test accuracy at λ={R6_LAMBDA:g} (0: LayerNorm, 1: BatchNorm)",
        "norm layer",
        "test accuracy",
        {
            "biases and norms spared": (xs, [r.acc_spared for r in at]),
            "everything decayed": (xs, [r.acc_decayed for r in at]),
        },
        kind="bar",
    )
