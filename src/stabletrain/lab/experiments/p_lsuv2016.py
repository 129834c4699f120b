"""P-LSUV2016: Mishkin & Matas (2016), layer-sequential unit-variance init.

"All you need is a good init" (ICLR 2016): orthogonal init, then each layer rescaled in order
until its output variance on a batch is 1 within a tolerance (Algorithm 1); the paper reports
that this trains very deep thin networks faster than Xavier or He (MSRA) init (Figures 2-4).
Here :func:`stabletrain.lsuv_` initializes a deep ReLU MLP on the digits, instead of the paper's
FitNets on CIFAR-10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stabletrain import lsuv_, models
from stabletrain.lab import verdicts
from stabletrain.lab._common import accuracy, digits, layer_signals, train
from stabletrain.lab._init_common import init_linears_
from stabletrain.lab.estimate import Estimate, over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured

DEPTH, WIDTH = 20, 64  # deep and thin, the paper's FitNet regime
LR, BATCH = 0.01, 64  # SGD with momentum 0.9, shared by every init
TOL = 0.1  # LSUV's tolerance on |std - 1| (the paper's Tol_var, on the std here)
LSUV_ROWS = 256
# Faster early training: LSUV's mean training loss over the early budget (the area under its
# learning curve, less noisy than the last steps' loss) is at most the best baseline's; within
# 25% above it is "about as fast" (caveat).
FASTER, FASTER_CAVEAT = 1.0, 1.25
BASELINES = {
    "He (MSRA)": "he_normal",
    "Xavier": "xavier_uniform",
    "orthogonal": "orthogonal",
}
# Quick mode trains He's init only: plain orthogonal and Xavier lose 1/√2 per ReLU layer and
# are never the best baseline (measured mean losses 1.7-2.3 against He's 0.5-0.85 over 500
# steps in 5 seeds). At 200 steps LSUV's lead over He is smaller and noisier (ratio 0.54-1.0
# over 6 seeds) than at 500 (0.45-0.85 over 5 seeds).
QUICK_BASELINES = ("He (MSRA)",)


Sf = tuple[float, float]  # a layer's output std on the LSUV batch and on other rows


@dataclass(frozen=True)
class Arm:
    """One init's early training: mean loss over the budget, final loss, test accuracy."""

    method: str
    mean_loss: float
    final_loss: float
    accuracy: float
    curve: tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class LsuvMeasurements:
    """LSUV's per-layer output std after init and its early training against the baselines."""

    deviation: float = measured("std", "largest |std - 1| of a Linear output on the LSUV batch")
    held_out_deviation: float = measured("std", "largest |std - 1| on 512 other rows")
    speed_ratio: float = measured("ratio", "LSUV's mean training loss / the best baseline's")
    lsuv_loss: float = measured("nats", "LSUV: mean training loss over the budget")
    best_baseline_loss: float = measured("nats", "best baseline: mean training loss")
    stds: tuple[tuple[float, float], ...] = ()  # per Linear layer: (LSUV batch, other rows)
    arms: tuple[Arm, ...] = ()
    best_baseline: str = ""
    steps: int = 0


def _layer_stds(model: torch.nn.Module, batch: torch.Tensor, other: torch.Tensor) -> list[Sf]:
    """Each Linear layer's output std on the LSUV batch and on other rows (layer_signals)."""
    return [
        (s.forward_std, h.forward_std)
        for s, h in zip(layer_signals(model, batch), layer_signals(model, other), strict=True)
    ]


def _run(ctx: Context, method: str, steps: int) -> tuple[Arm, list[Sf]]:
    """Train one init; for LSUV also each Linear layer's output std after init."""
    ctx.seed_all()
    data = digits(ctx.seed)
    model = models.mlp(data.n_features, data.n_classes, DEPTH, WIDTH)
    g = ctx.generator(1)
    stds: list[Sf] = []
    if method == "LSUV":
        batch = data.x_train[:LSUV_ROWS]
        lsuv_(model, batch, tol=TOL, generator=g)
        stds = _layer_stds(model, batch, data.x_train[LSUV_ROWS : LSUV_ROWS + 512])
    else:
        init_linears_(model, BASELINES[method], g)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    log = train(model, opt, data.sampler(BATCH, ctx.generator(2)), steps=steps)
    mean = math.fsum(log.losses) / len(log.losses) if not log.diverged else math.inf
    xs, ys = log.curve(max(steps // 20, 1))
    acc = accuracy(model, data.x_test, data.y_test)
    return Arm(method, mean, log.final_loss(), acc, (tuple(xs), tuple(ys))), stds


@experiment("P-LSUV2016")
class Lsuv2016(Staged[LsuvMeasurements]):
    """LSUV on a depth-20 ReLU MLP: unit std per layer, and early training against He/Xavier.

    Decided on the intervals over seeds of the largest std deviation and of the speed ratio.
    """

    # Eight seeds in both modes: one seed's speed ratio scatters by about ±0.2 (0.45-1.09
    # measured), so three or five seeds left the interval straddling 1 on some seed sets
    # ("holds" on one, "with caveat" or "inconclusive" on another); with eight it lies below
    # 1 at quick and full, seeds 0 and 1 (0.81 ± 0.11, 0.80 ± 0.11, 0.66 ± 0.13, 0.70 ± 0.18).
    seeds = (8, 8)

    def measure(self, ctx: Context) -> LsuvMeasurements:
        steps = ctx.pick(200, 500)
        methods = ("LSUV", *ctx.pick(QUICK_BASELINES, tuple(BASELINES)))
        runs = {method: _run(ctx, method, steps) for method in methods}
        stds = runs["LSUV"][1]
        arms = tuple(arm for arm, _ in runs.values())
        baselines = [a for a in arms if a.method != "LSUV"]
        best = min(baselines, key=lambda a: a.mean_loss)
        lsuv = arms[0]
        return LsuvMeasurements(
            deviation=max(abs(s - 1.0) for s, _ in stds),
            held_out_deviation=max(abs(h - 1.0) for _, h in stds),
            speed_ratio=lsuv.mean_loss / best.mean_loss,
            lsuv_loss=lsuv.mean_loss,
            best_baseline_loss=best.mean_loss,
            stds=tuple(stds),
            arms=arms,
            best_baseline=best.method,
            steps=steps,
        )

    def decide(self, ms: Sequence[LsuvMeasurements]) -> Verdict:
        return verdicts.weakest(  # the speed part first: reported when both parts hold
            [
                verdicts.at_most(
                    Estimate.of(m.speed_ratio for m in ms), FASTER, caveat=FASTER_CAVEAT
                ),
                verdicts.at_most(Estimate.of(m.deviation for m in ms), TOL),
            ]
        )

    def explain(self, ms: Sequence[LsuvMeasurements], verdict: Verdict) -> Explanation:
        first, steps = ms[0], ms[0].steps
        methods = [a.method for a in first.arms]
        mean_loss = {
            k: math.fsum(m.arms[i].mean_loss for m in ms) / len(ms) for i, k in enumerate(methods)
        }
        text = (
            "Paper: Mishkin & Matas (2016) make every layer's output variance 1 on a batch "
            "(orthogonal init, then layer-by-layer rescaling) and report faster training of "
            f"deep thin networks than Xavier or MSRA (He) init. Here: a depth-{DEPTH} ReLU MLP "
            f"of width {WIDTH} on the digits, lsuv_ on {LSUV_ROWS} training rows with tol "
            f"{TOL}, {len(ms)} seed(s). Every Linear layer's output std on that batch is within "
            f"{over(ms, 'deviation').describe()} of 1 (re-measured independently of lsuv_'s "
            "report; "
            f"tolerance {TOL}); on 512 other training rows the largest deviation is "
            f"{over(ms, 'held_out_deviation').describe()}, the batch-to-batch scatter of a deep "
            f"net's statistics. Trained with SGD (lr {LR}, momentum 0.9, batch {BATCH}) for "
            f"{steps} steps, the mean training loss over those steps (mean over seeds) is "
            + ", ".join(f"{k} {v:.3f}" for k, v in mean_loss.items())
            + f": LSUV / best other = {over(ms, 'speed_ratio').describe()} (holds at <= "
            f"{FASTER:g}, caveat <= {FASTER_CAVEAT:g}). Plain orthogonal init (LSUV's starting "
            "point, gain 1) and Xavier lose 1/√2 of the signal per ReLU layer (I7); LSUV's "
            "rescaling is what puts it back. Scale: an MLP on 8x8 digits, not a FitNet on "
            f"CIFAR-10. Verdict: {verdict.outcome}."
        )
        key = (
            f"largest |std - 1| after LSUV = {over(ms, 'deviation').value:.3f}; mean loss over "
            f"{steps} steps: LSUV {over(ms, 'lsuv_loss').value:.3f}, best other "
            f"{over(ms, 'best_baseline_loss').value:.3f}"
        )
        return Explanation(key, text, _tables(first, ms), (_figure(first),))


def _tables(first: LsuvMeasurements, ms: Sequence[LsuvMeasurements]) -> tuple[Table, ...]:
    stds = Table(
        "Output std of every Linear layer after LSUV (first seed)",
        ("layer", "std (LSUV batch)", "|std - 1|", "std (other rows)"),
        tuple((i + 1, s, abs(s - 1.0), h) for i, (s, h) in enumerate(first.stds)),
    )

    def mean(i: int, name: str) -> float:
        return math.fsum(getattr(m.arms[i], name) for m in ms) / len(ms)

    rows = [
        (arm.method, mean(i, "mean_loss"), mean(i, "final_loss"), mean(i, "accuracy"))
        for i, arm in enumerate(first.arms)
    ]
    training = Table(
        f"Early training, {first.steps} steps (mean over seeds)",
        ("init", "mean training loss", "final loss", "test accuracy"),
        tuple(rows),
    )
    return stds, training


def _figure(first: LsuvMeasurements) -> Figure:
    return Figure(
        "Early training loss, first seed (Mishkin & Matas 2016, Figs. 2-4)",
        "step",
        "training loss (running mean)",
        {a.method: a.curve for a in first.arms},
    )
