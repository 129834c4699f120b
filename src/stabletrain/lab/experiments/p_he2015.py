"""P-HE2015: He et al. (2015), a 30-layer plain ReLU net: Xavier stalls, He's init trains.

"Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet
Classification" (ICCV 2015), Section 2.2 and Figure 3: a 30-layer plain (no normalization,
no skip) ReLU network initialized with Xavier does not train at all, while the same network
with Var(w) = 2/n_in converges. Here the network is an MLP on the digits, not a conv net on
ImageNet.
"""

from __future__ import annotations

import math

import torch

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._common import LayerSignal, TrainLog, accuracy, digits, layer_signals, train
from stabletrain.lab._init_common import init_linears_
from stabletrain.lab.experiment import Context, Figure, Result, Table, experiment

DEPTH = 30  # the paper's plain network
LR, BATCH = 0.003, 64  # SGD with momentum 0.9, the same for both inits (the paper: shared lr)
CHANCE = math.log(10)  # the loss of a uniform prediction over 10 classes
# Stalled: the final loss is still within 5% of chance. Trains: below half of chance (1.15).
STALLED, TRAINS = 0.95 * CHANCE, 0.5 * CHANCE
SCHEMES = {"He (Var(w) = 2/n_in)": "he_normal", "Xavier": "xavier_uniform"}


def _run(ctx: Context, scheme: str, width: int, steps: int) -> tuple[TrainLog, float, float]:
    """Training log, test accuracy and the input-dependent std at the last hidden layer."""
    ctx.seed_all()
    data = digits(ctx.seed)
    model = models.mlp(data.n_features, data.n_classes, DEPTH, width)
    init_linears_(model, scheme, ctx.generator(1))
    signals: list[LayerSignal] = layer_signals(model, data.x_train[:256])
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    log = train(model, opt, data.sampler(BATCH, ctx.generator(2)), steps=steps)
    return log, accuracy(model, data.x_test, data.y_test), signals[DEPTH - 1].batch_std


@experiment("P-HE2015")
def he2015(ctx: Context) -> Result:
    width, steps = ctx.pick(64, 128), ctx.pick(400, 1000)
    runs = {label: _run(ctx, scheme, width, steps) for label, scheme in SCHEMES.items()}
    he_log, he_acc, he_signal = runs["He (Var(w) = 2/n_in)"]
    xa_log, xa_acc, xa_signal = runs["Xavier"]
    he_loss, xa_loss = he_log.final_loss(), xa_log.final_loss()
    verdict = verdicts.weakest(
        [
            verdicts.at_least(xa_loss, STALLED),
            verdicts.at_most(he_loss, TRAINS, caveat=STALLED),
        ]
    )
    window = steps // 20
    return Result(
        verdict=verdict,
        key_number=(
            f"final loss after {steps} steps: Xavier {xa_loss:.3f} (chance {CHANCE:.3f}), He "
            f"{he_loss:.3f}"
        ),
        explanation=(
            "Paper: He et al. (2015, Figure 3) train a 30-layer plain ReLU network: with "
            "Xavier init it does not learn at all, with their Var(w) = 2/n_in it converges. "
            f"Here: a {DEPTH}-layer ReLU MLP of width {width} (no normalization, no skip) on "
            f"the digits, SGD lr {LR}, momentum 0.9, batch {BATCH}, {steps} steps, the same for "
            f"both. Xavier's final loss is {xa_loss:.3f} against chance {CHANCE:.3f} (stalled "
            f"above {STALLED:.3f}), test accuracy {xa_acc:.3f}: its input-dependent signal at "
            f"layer {DEPTH} is {xa_signal:.1e} (1/√2 per layer, I7), so the output ignores the "
            f"input. He's init reaches loss {he_loss:.3f} (needed below {TRAINS:.3f}) and "
            f"accuracy {he_acc:.3f}, with a signal of {he_signal:.2f} at layer {DEPTH}. "
            "The direction matches the paper; the scale is CPU-sized (an MLP on 8x8 digits, "
            "not a conv net on ImageNet), and the paper's Xavier run stalls for the same "
            "reason (2^-15 of the signal left after 30 layers)."
        ),
        tables=(
            Table(
                f"{DEPTH}-layer plain ReLU MLP on the digits, {steps} SGD steps",
                ("init", "final loss", "test accuracy", f"signal std at layer {DEPTH}"),
                tuple(
                    (label, log.final_loss(), acc, signal)
                    for label, (log, acc, signal) in runs.items()
                ),
            ),
        ),
        figures=(
            Figure(
                "Training loss (He et al. 2015, Fig. 3)",
                "step",
                "training loss (running mean)",
                {label: log.curve(window) for label, (log, _, _) in runs.items()},
            ),
        ),
    )
