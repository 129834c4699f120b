"""Claim S4: BatchNorm keeps activations in range under a bad init; the gradient only improves.

A deep ReLU MLP on digits, built by ``stabletrain.models.mlp`` with ``norm=None`` or
``norm="batch"`` (``Linear -> BatchNorm1d -> ReLU``), under three bad weight scales: half of He's
std, Xavier's (1/√2 of He's for a square ReLU layer) and twice He's. Measured, in training mode
(batch statistics): the std of every ReLU's output and of the gradient there (backward from a
standard normal probe, :func:`stabletrain.lab._common.layer_signals`), then the test accuracy
after a fixed SGD budget.

BatchNorm divides each pre-activation by its batch std, so the weights' scale cancels in the
forward pass. Its backward pass is not scale-free in depth: at init a deep BatchNorm ReLU
network's gradient grows by about sqrt(π/(π−1)) ≈ 1.21 per layer going back (Yang et al. 2019,
"A Mean Field Theory of Batch Normalization").
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
from torch import nn

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._common import LayerSignal, accuracy, digits, layer_signals, train
from stabletrain.lab._init_common import init_linears_, per_layer_factor, profile_figure
from stabletrain.lab._stab_common import decades, scaled_he
from stabletrain.lab.experiment import Context, Result, Table, experiment

WIDTH = 64
BAD_SCALES = {"0.5x He": 0.5, "Xavier (1/√2 x He)": 1 / math.sqrt(2), "2x He": 2.0}
# "In range": every layer's activation std within 10x of every other's (one decade).
IN_RANGE_DECADES = 1.0
# The bad inits must be bad: without BN their activations span at least 100x over depth.
BAD_DECADES = 2.0
# "Fixes the gradient": the gradient changes by at most 15% per layer (16x over 20 layers, the
# drift the good inits stay well within); "improves it" (caveat): its per-layer drift, in log
# scale, is smaller than that of every bad init without BN.
DRIFT = 1.15
# "Indirectly fixes": with BN every bad init trains at least 20 points of test accuracy better.
TRAIN_GAIN = 0.2
LR, MOMENTUM, BATCH = 0.01, 0.9, 64


@dataclass(frozen=True)
class _Case:
    label: str
    norm: bool
    signals: list[LayerSignal]  # at every ReLU output
    accuracy: float
    diverged: bool

    @property
    def forward_spread(self) -> float:
        return decades([s.forward_std for s in self.signals])

    @property
    def gradient_spread(self) -> float:
        return decades([s.backward_std for s in self.signals])

    @property
    def gradient_factor(self) -> float:
        return per_layer_factor([s.backward_std for s in reversed(self.signals)])


def _case(ctx: Context, label: str, scale: float, norm: bool, depth: int, steps: int) -> _Case:
    data = digits(ctx.seed)
    ctx.seed_all(1)
    model = models.mlp(64, 10, depth, WIDTH, activation="relu", norm="batch" if norm else None)
    init_linears_(model, scaled_he(scale), ctx.generator(1))
    x = data.x_train[:256]
    signals = layer_signals(model, x, layer_types=(nn.ReLU,), generator=ctx.generator(2))
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    log = train(model, opt, data.sampler(BATCH, ctx.generator(3)), steps=steps)
    acc = accuracy(model, data.x_test, data.y_test)
    return _Case(label, norm, signals, acc, log.diverged)


@experiment("S4")
def batchnorm_range(ctx: Context) -> Result:
    depth, steps = ctx.pick(20, 30), ctx.pick(150, 400)
    cases = [
        _case(ctx, label, scale, norm, depth, steps)
        for label, scale in BAD_SCALES.items()
        for norm in (False, True)
    ]
    plain = [c for c in cases if not c.norm]
    normed = [c for c in cases if c.norm]
    bn_forward = max(c.forward_spread for c in normed)
    bad_forward = min(c.forward_spread for c in plain)
    bn_grad = max(c.gradient_spread for c in normed)
    plain_grad = min(c.gradient_spread for c in plain)
    bn_drift = max(abs(math.log10(c.gradient_factor)) for c in normed)  # decades per layer
    plain_drift = min(abs(math.log10(c.gradient_factor)) for c in plain)
    gain = min(n.accuracy - p.accuracy for p, n in zip(plain, normed, strict=True))
    forward = verdicts.at_most(bn_forward, IN_RANGE_DECADES)
    inits_are_bad = verdicts.at_least(bad_forward, BAD_DECADES)
    flat = math.log10(DRIFT)
    gradient = verdicts.at_most(bn_drift, flat, caveat=max(plain_drift, flat))
    trains = verdicts.at_least(gain, TRAIN_GAIN)
    verdict = verdicts.weakest([forward, inits_are_bad, gradient, trains])
    factor = statistics.fmean(c.gradient_factor for c in normed)
    rows = tuple(
        (
            c.label,
            "BatchNorm" if c.norm else "none",
            min(s.forward_std for s in c.signals),
            max(s.forward_std for s in c.signals),
            c.forward_spread,
            c.gradient_spread,
            c.gradient_factor,
            c.accuracy,
            c.diverged,
        )
        for c in cases
    )
    profiles = {f"{c.label}, {'BN' if c.norm else 'no BN'}": c.signals for c in cases}
    return Result(
        verdict=verdict,
        key_number=(
            f"activation std spans {bn_forward:.2f} decades with BN vs >= {bad_forward:.1f} "
            f"without; gradient x{factor:.2f}/layer with BN"
        ),
        explanation=(
            "Claim: BatchNorm keeps activations in range and indirectly fixes gradient "
            f"problems. Depth-{depth} ReLU MLPs of width {WIDTH} on digits, with and without "
            "BatchNorm before each ReLU, under three bad weight scales ("
            + ", ".join(BAD_SCALES)
            + "). Activations: without BN the ReLU outputs' std spans "
            + ", ".join(f"{c.forward_spread:.1f}" for c in plain)
            + f" decades over depth (they vanish or explode); with BN {bn_forward:.2f} "
            f"decades at most (bound {IN_RANGE_DECADES:g}): in range, whatever the init. "
            f"Gradients: without BN they span {plain_grad:.1f} decades or more; with BN "
            f"{bn_grad:.1f} decades: better, but not flat. With BN the gradient grows by "
            f"{factor:.3f} per layer going back for every init scale (BN's backward is "
            "scale-free but not depth-free; Yang et al. 2019 predict sqrt(π/(π−1)) = 1.21 "
            f"for ReLU), against {10**plain_drift:.3f} or worse (or its inverse) per layer "
            f"without BN. 'Fixed' would be within {DRIFT:g}x per layer; BN's drift of "
            f"{bn_drift:.3f} decades per layer is below the bad inits' {plain_drift:.3f} or "
            "more, so the gradient problem is reduced, not removed: in a deep BN network "
            "the gradient still explodes geometrically, only more slowly. Indirectly: "
            "trained for "
            f"{steps} SGD steps (lr {LR:g}, momentum {MOMENTUM:g}), BN reaches test accuracy "
            + ", ".join(f"{c.accuracy:.2f}" for c in normed)
            + " against "
            + ", ".join(f"{c.accuracy:.2f}" + (" (diverged)" if c.diverged else "") for c in plain)
            + f" without (gain bound {TRAIN_GAIN:g})."
        ),
        tables=(
            Table(
                "Activation and gradient range over depth, with and without BatchNorm",
                (
                    "init",
                    "norm",
                    "min activation std",
                    "max activation std",
                    "activation decades",
                    "gradient decades",
                    "gradient factor per layer (backward)",
                    "test accuracy",
                    "diverged",
                ),
                rows,
            ),
        ),
        figures=(
            profile_figure("Activation std over depth (ReLU outputs)", profiles),
            profile_figure("Gradient std over depth (ReLU outputs)", profiles, what="backward"),
        ),
    )
