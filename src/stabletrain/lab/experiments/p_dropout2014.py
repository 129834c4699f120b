"""P-DROPOUT2014: Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: A
Simple Way to Prevent Neural Networks from Overfitting" (JMLR 15).

The paper's MNIST MLPs: dropout (0.2 on the inputs, 0.5 on the hidden units) with a max-norm
constraint on every unit's incoming weights cut the test error of a standard net from about
1.6% to 1.05% (Tables 2 and 9), and max-norm is what lets dropout use large learning rates
(Sec. 5.1). Here the same recipe at CPU scale on a small digits split, with the library's
:func:`~stabletrain.regularization.max_norm_constraint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._common import DigitsSplit
from stabletrain.lab._reg_common import FitScores, fit_and_score, small_digits
from stabletrain.lab.estimate import over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured, named_numbers
from stabletrain.regularization.max_norm import max_norm_constraint

N_TRAIN, WIDTH, BATCH, MOMENTUM = 300, 256, 64, 0.9
P_INPUT, P_HIDDEN = 0.2, 0.5  # the paper's rates
# c = 2: the unconstrained nets' largest unit norm reaches about 2.4 here (256 inputs per
# hidden unit), so the paper's c = 3–4 (for its 1024–4096-unit layers) would never bind.
MAX_NORM = 2.0
# At lr 0.2 (momentum 0.9) dropout alone collapses to chance within 300 steps in every split
# tried, while dropout + max-norm trains (training accuracy 0.88–0.96); at 0.1 only sometimes.
LR, HIGH_LR = 0.05, 0.2
# The paper's reduction of the test error, standard net -> dropout + max-norm: 1.6% -> 1.05%,
# about 34%. Holds: at least 20% here (the same direction, a comparable size); caveat: at least
# 5% (the same direction, smaller); does not hold: less.
MIN_REDUCTION, CAVEAT_REDUCTION = 0.20, 0.05
# (steps at lr 0.05, steps at lr 0.2), the same in both modes. The reduction is noisy per split
# (standard deviation about 0.1: each test error counts some 70 of 1438 digits), so the seeds,
# not the length, set the interval. At 300 steps it sat at the caveat threshold (0.069 ± 0.067
# and 0.078 ± 0.043 over 20 seeds, seeds 0 and 1): no number of seeds would decide it. At 800
# steps it is 0.176 ± 0.068 and 0.172 ± 0.052 over 12 seeds (0.161 ± 0.054 and 0.158 ± 0.048
# over 16), clear of 5% and below 20%.
STEPS = (800, 300)
CONFIGS = {  # (dropout, max-norm)
    "standard": (False, False),
    "dropout": (True, False),
    "dropout + max-norm": (True, True),
}


def _run(
    split: DigitsSplit, seed: int, steps: int, lr: float, *, dropout: bool, max_norm: bool
) -> tuple[FitScores, float]:
    """(scores, largest incoming-weight norm of any unit after training)."""
    torch.manual_seed(seed)
    body = models.mlp(64, 10, depth=2, width=WIDTH, dropout=P_HIDDEN if dropout else 0.0)
    model = nn.Sequential(nn.Dropout(P_INPUT), body) if dropout else body
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM)
    handle = max_norm_constraint(opt, model, MAX_NORM) if max_norm else None
    gen = torch.Generator().manual_seed(seed)
    scores = fit_and_score(model, opt, split, steps=steps, batch_size=BATCH, generator=gen)
    if handle is not None:
        handle.remove()
    with torch.no_grad():
        norms = [m.weight.norm(dim=1).max() for m in model.modules() if isinstance(m, nn.Linear)]
    return scores, float(torch.stack(norms).max())


_FIELDS = {"standard": "standard", "dropout": "dropout", "dropout + max-norm": "maxnorm"}


@dataclass(frozen=True)
class PDropoutMeasure:
    """One seed (one split) of P-DROPOUT2014: each MLP's accuracies, test error and largest
    unit norm at lr 0.05, and the training accuracy of the two dropout nets at lr 0.2."""

    reduction: float = measured("fraction", "1 − test error (dropout + max-norm) / (standard)")
    error_standard: float = measured("error", "test error, standard net")
    error_dropout: float = measured("error", "test error, dropout")
    error_maxnorm: float = measured("error", "test error, dropout + max-norm")
    train_acc_standard: float = measured("accuracy", "training accuracy, standard net")
    train_acc_dropout: float = measured("accuracy", "training accuracy, dropout")
    train_acc_maxnorm: float = measured("accuracy", "training accuracy, dropout + max-norm")
    norm_standard: float = measured("L2 norm", "largest incoming-weight norm, standard net")
    norm_dropout: float = measured("L2 norm", "largest incoming-weight norm, dropout")
    norm_maxnorm: float = measured("L2 norm", "largest incoming-weight norm, with max-norm")
    high_lr_dropout: float = measured("accuracy", f"training accuracy at lr {HIGH_LR}, dropout")
    high_lr_maxnorm: float = measured("accuracy", f"training accuracy at lr {HIGH_LR}, max-norm")


def _measure_split(split: DigitsSplit, seed: int, steps: int, high_steps: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, (dropout, max_norm) in CONFIGS.items():
        s, n = _run(split, seed, steps, LR, dropout=dropout, max_norm=max_norm)
        out[f"error_{_FIELDS[name]}"] = 1 - s.test_accuracy
        out[f"train_acc_{_FIELDS[name]}"] = s.train_accuracy
        out[f"norm_{_FIELDS[name]}"] = n
    for name in ("dropout", "dropout + max-norm"):
        s, _ = _run(split, seed, high_steps, HIGH_LR, dropout=True, max_norm=CONFIGS[name][1])
        out[f"high_lr_{_FIELDS[name]}"] = s.train_accuracy
    return out


@experiment("P-DROPOUT2014")
class DropoutAndMaxNormReduceTheGap(Staged[PDropoutMeasure]):
    """Srivastava et al. 2014 at CPU scale: standard, dropout and dropout + max-norm MLPs on
    300 digits, seed by seed; the test-error reduction of dropout + max-norm is the key
    number, and at a large learning rate max-norm keeps dropout training."""

    seeds = (12, 12)  # see STEPS: about ±0.06 on the reduction

    def measure(self, ctx: Context) -> PDropoutMeasure:
        steps, high_steps = STEPS
        out = _measure_split(small_digits(N_TRAIN, ctx.seed), ctx.seed, steps, high_steps)
        reduction = 1 - out["error_maxnorm"] / out["error_standard"]
        return PDropoutMeasure(reduction=reduction, **out)

    def decide(self, ms: Sequence[PDropoutMeasure]) -> Verdict:
        return verdicts.at_least(over(ms, "reduction"), MIN_REDUCTION, caveat=CAVEAT_REDUCTION)

    def explain(self, ms: Sequence[PDropoutMeasure], verdict: Verdict) -> Explanation:
        v = {n.name: f"{n.estimate.value:.3f}" for n in named_numbers(ms)}
        red = over(ms, "reduction")
        text = (
            "Paper: dropout (0.2 inputs, 0.5 hidden) with a max-norm constraint cuts an MNIST "
            "MLP's test error from about 1.6% to 1.05% (34% lower), and max-norm lets dropout "
            "train at large learning rates. Here: a 64-256-256-10 MLP, SGD (momentum "
            f"{MOMENTUM}, batch {BATCH}) at lr {LR} on {N_TRAIN} digits, tested on 1438, "
            f"{len(ms)} seeds (splits), max-norm c = {MAX_NORM}. Test error: standard "
            f"{v['error_standard']}, dropout {v['error_dropout']}, dropout + max-norm "
            f"{v['error_maxnorm']} (training accuracy at least "
            f"{min(v[f'train_acc_{f}'] for f in _FIELDS.values())}); per seed, the test error "
            f"of dropout + max-norm is lower than the standard net's by {red.describe()} of it "
            f"(holds at {MIN_REDUCTION:.0%}, caveat at {CAVEAT_REDUCTION:.0%}). At lr {HIGH_LR} "
            f"dropout alone ends at training accuracy {v['high_lr_dropout']} and dropout + "
            f"max-norm at {v['high_lr_maxnorm']}: the constraint keeps the weights bounded where "
            "they would run away. The scale differs: 300 8×8 digits instead of 60,000 MNIST "
            "images, 256-unit layers instead of 1024–4096, "
            f"{STEPS[0]} steps without a learning-rate schedule. Verdict: {verdict.outcome}."
        )
        key = (
            f"test error {100 * over(ms, 'error_standard').value:.2f}% -> "
            f"{100 * over(ms, 'error_maxnorm').value:.2f}% with dropout + max-norm, "
            f"{red.describe()} lower (paper: 1.6% -> 1.05%, 0.34)"
        )
        return Explanation(key, text, _tables(ms), (_figure(ms),))


def _tables(ms: Sequence[PDropoutMeasure]) -> tuple[Table, ...]:
    def cell(name: str) -> str:
        return over(ms, name).describe()

    return (
        Table(
            f"lr {LR}: accuracy, test error and the largest unit norm (mean ± 95% interval over "
            f"{len(ms)} seeds)",
            ("MLP", "train acc", "test error", "max unit norm"),
            tuple(
                (name, cell(f"train_acc_{f}"), cell(f"error_{f}"), cell(f"norm_{f}"))
                for name, f in _FIELDS.items()
            ),
        ),
        Table(
            f"lr {HIGH_LR}: training accuracy",
            ("MLP", "train acc"),
            (
                ("dropout", cell("high_lr_dropout")),
                ("dropout + max-norm", cell("high_lr_maxnorm")),
            ),
        ),
    )


def _figure(ms: Sequence[PDropoutMeasure]) -> Figure:
    return Figure(
        "test error (0: standard, 1: dropout, 2: dropout + max-norm)",
        "MLP",
        "test error",
        {
            "test error": (
                [0.0, 1.0, 2.0],
                [over(ms, f"error_{f}").value for f in _FIELDS.values()],
            )
        },
        kind="bar",
    )
