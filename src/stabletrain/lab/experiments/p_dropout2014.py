"""P-DROPOUT2014: Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: A
Simple Way to Prevent Neural Networks from Overfitting" (JMLR 15).

The paper's MNIST MLPs: dropout (0.2 on the inputs, 0.5 on the hidden units) with a max-norm
constraint on every unit's incoming weights cut the test error of a standard net from about
1.6% to 1.05% (Tables 2 and 9), and max-norm is what lets dropout use large learning rates
(Sec. 5.1). Here the same recipe at CPU scale on a small digits split, with the library's
:func:`~stabletrain.regularization.max_norm_constraint`.
"""

from __future__ import annotations

from statistics import mean

import torch
from torch import nn

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab._common import DigitsSplit
from stabletrain.lab._reg_common import FitScores, fit_and_score, small_digits
from stabletrain.lab.experiment import Context, Figure, Result, Table, experiment
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


@experiment("P-DROPOUT2014")
def dropout_and_max_norm_reduce_the_gap(ctx: Context) -> Result:
    # the test-error reduction varies between splits (1% to 32% over four at 800 steps), so
    # even the quick run averages two
    steps, high_steps = ctx.pick((500, 300), (800, 300))
    seeds = [ctx.seed + k for k in range(ctx.pick(2, 4))]
    scores: dict[str, list[FitScores]] = {name: [] for name in CONFIGS}
    norm: dict[str, list[float]] = {name: [] for name in CONFIGS}
    high: dict[str, list[float]] = {"dropout": [], "dropout + max-norm": []}
    for seed in seeds:
        split = small_digits(N_TRAIN, seed)
        for name, (dropout, max_norm) in CONFIGS.items():
            s, n = _run(split, seed, steps, LR, dropout=dropout, max_norm=max_norm)
            scores[name].append(s)
            norm[name].append(n)
        for name in high:
            _, max_norm = CONFIGS[name]
            s, _ = _run(split, seed, high_steps, HIGH_LR, dropout=True, max_norm=max_norm)
            high[name].append(s.train_accuracy)

    def avg(name: str, field: str) -> float:
        return mean(float(getattr(s, field)) for s in scores[name])

    error = {name: 1 - avg(name, "test_accuracy") for name in CONFIGS}
    reduction = 1 - error["dropout + max-norm"] / error["standard"]
    verdict = verdicts.at_least(reduction, MIN_REDUCTION, caveat=CAVEAT_REDUCTION)
    rows = tuple(
        (
            name,
            f"{avg(name, 'train_accuracy'):.3f}",
            f"{avg(name, 'test_accuracy'):.3f}",
            f"{avg(name, 'gap'):.3f}",
            f"{100 * error[name]:.2f}%",
            f"{mean(norm[name]):.2f}",
        )
        for name in CONFIGS
    )
    return Result(
        verdict=verdict,
        key_number=(
            f"test error {100 * error['standard']:.2f}% -> {100 * error['dropout + max-norm']:.2f}%"
            f" with dropout + max-norm ({100 * reduction:.0f}% lower; paper: 1.6% -> 1.05%, 34%)"
        ),
        explanation=(
            "Paper: dropout (0.2 inputs, 0.5 hidden) with a max-norm constraint cuts an MNIST "
            "MLP's test error from about 1.6% to 1.05% (34% lower), and max-norm lets dropout "
            "train at large learning rates. Here: a 64-256-256-10 MLP, SGD (momentum "
            f"{MOMENTUM}, batch {BATCH}) for {steps} steps at lr {LR} on {N_TRAIN} digits, "
            f"tested on 1438, mean of {len(seeds)} split(s), max-norm c = {MAX_NORM}. Training "
            f"accuracy is at least {min(avg(n, 'train_accuracy') for n in CONFIGS):.3f}; the "
            "train/test gap is "
            f"{avg('standard', 'gap'):.3f} for the standard net, {avg('dropout', 'gap'):.3f} "
            f"with dropout and {avg('dropout + max-norm', 'gap'):.3f} with dropout + max-norm, "
            f"a test error {100 * reduction:.0f}% lower than the standard net's (holds at "
            f"{100 * MIN_REDUCTION:.0f}%, caveat at {100 * CAVEAT_REDUCTION:.0f}%). At lr "
            f"{HIGH_LR}, dropout alone ends at training accuracy {mean(high['dropout']):.3f} "
            f"and dropout + max-norm at {mean(high['dropout + max-norm']):.3f} after "
            f"{high_steps} steps: the constraint keeps the weights bounded where they would run "
            "away. The scale differs: 300 8×8 digits instead of 60,000 MNIST images, 256-unit "
            f"layers instead of 1024–4096, {steps} steps without a learning-rate schedule. "
            f"Verdict: {verdict.outcome}."
        ),
        tables=(
            Table(
                f"lr {LR}: accuracy, gap, test error and the largest unit norm (mean over "
                f"{len(seeds)} split(s))",
                ("MLP", "train acc", "test acc", "gap", "test error", "max unit norm"),
                rows,
            ),
            Table(
                f"lr {HIGH_LR}, {high_steps} steps: training accuracy",
                ("MLP", "train acc"),
                tuple((name, f"{mean(v):.3f}") for name, v in high.items()),
            ),
        ),
        figures=(
            Figure(
                "test error (0: standard, 1: dropout, 2: dropout + max-norm)",
                "MLP",
                "test error",
                {"test error": ([0.0, 1.0, 2.0], [error[name] for name in CONFIGS])},
                kind="bar",
            ),
        ),
    )
