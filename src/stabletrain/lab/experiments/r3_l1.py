"""L1 regularization: claim R3 (constant shrink, small weights driven to zero, feature selection).

The task: a regression on 50 inputs of which 5, chosen by the seed, carry the signal. The first
layer of an MLP is penalized with L1 three ways: the library's proximal step
(:func:`~stabletrain.regularization.proximal_l1`, soft-thresholding after each SGD step), the
subgradient of :func:`~stabletrain.regularization.l1_penalty` in the loss, and for comparison
:func:`~stabletrain.regularization.l2_penalty`. SGD, not Adam: Adam moves every coordinate by
about η per step and pushes zeroed weights off zero (see ``proximal_l1``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from stabletrain import models
from stabletrain.lab import verdicts
from stabletrain.lab.experiment import Context, Figure, Result, Table, experiment
from stabletrain.regularization.penalties import l1_penalty, l2_penalty
from stabletrain.regularization.proximal import proximal_l1, sparsity

N_INPUTS, N_INFORMATIVE, N_SAMPLES, HIDDEN = 50, 5, 512, 16
# η = 0.02: at η = 0.05 full-batch training of this net oscillates after a few hundred steps
# (train MSE jumping from 0.05 to 0.2..4), which can put weights back on inputs already dropped.
LR, LAMBDA = 0.02, 0.1
# L2 with the same λ shrinks by η·λ·|w| per step; λ = 0.1 is also the strength at which L1
# recovers the 5 inputs, so the comparison is at equal nominal strength.
LAMBDA_L2 = 0.1
# Recovery: the set of inputs whose first-layer column is not exactly zero must equal the
# informative set (Jaccard index 1: no informative input lost, no irrelevant one kept).
MIN_JACCARD = 1.0
# Sparsity: at least 95% of the irrelevant inputs' first-layer weights exactly 0 (measured
# earlier: 763 of the 800 weights of the whole layer).
MIN_IRRELEVANT_ZEROS = 0.95
# "Shrinks small weights harder than L2": the irrelevant inputs' median column norm, relative
# to the informative ones', at least 3× smaller under (subgradient) L1 than under L2 of the same
# λ.
MIN_L1_VS_L2 = 3.0
NEAR_ZERO = 1e-3  # |w| below this counts as near zero


def _task(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """x (512, 50) standard normal; y = x[:, S]·w_S + 0.1·noise for 5 informative inputs S."""
    informative = sorted(torch.randperm(N_INPUTS, generator=gen)[:N_INFORMATIVE].tolist())
    x = torch.randn(N_SAMPLES, N_INPUTS, generator=gen, dtype=torch.float64)
    w = torch.zeros(N_INPUTS, dtype=torch.float64)
    w[informative] = torch.tensor([1.5, -2.0, 1.0, -1.2, 0.8], dtype=torch.float64)
    y = x @ w + 0.1 * torch.randn(N_SAMPLES, generator=gen, dtype=torch.float64)
    return x, y.unsqueeze(1), informative


@dataclass(frozen=True)
class _Fit:
    weight: torch.Tensor  # first-layer weight (HIDDEN, N_INPUTS), detached
    loss: float  # final data loss (MSE)


def _fit(
    base: nn.Sequential,
    data: tuple[torch.Tensor, torch.Tensor],
    steps: int,
    *,
    proximal: bool = False,
    penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> _Fit:
    model = copy.deepcopy(base)
    linear1 = model.get_submodule("linear1")
    if not isinstance(linear1, nn.Linear):  # mlp() names its first layer linear1
        raise TypeError(f"R3 expects linear1 to be a Linear, got {type(linear1).__name__}.")
    first = linear1.weight
    rest = [p for p in model.parameters() if p is not first]
    # proximal L1 on the first layer's weights only: "l1" per parameter group
    opt = torch.optim.SGD([{"params": [first], "l1": LAMBDA}, {"params": rest, "l1": 0.0}], LR)
    handle = proximal_l1(opt) if proximal else None
    x, y = data
    loss = torch.zeros(())
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x), y)
        total = loss if penalty is None else loss + penalty(first)
        torch.autograd.backward(total)
        opt.step()
    if handle is not None:
        handle.remove()
    return _Fit(first.detach().clone(), float(loss.detach()))


def _one_step_moves() -> list[tuple[float, float, float]]:
    """(|w|, move of one SGD step on λ‖w‖₁ alone, move on (λ/2)‖w‖² alone) for a few sizes."""
    sizes = [1e-3, 1e-2, 1e-1, 1.0]
    rows = []
    penalties: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
        lambda w: l1_penalty([w], LAMBDA),
        lambda w: l2_penalty([w], LAMBDA),
    )
    for penalty in penalties:
        w = nn.Parameter(torch.tensor(sizes, dtype=torch.float64))
        opt = torch.optim.SGD([w], lr=LR)
        torch.autograd.backward(penalty(w))
        before = w.detach().clone()
        opt.step()
        rows.append((before - w.detach()).tolist())
    return [(s, l1, l2) for s, l1, l2 in zip(sizes, rows[0], rows[1], strict=True)]


def _irrelevant_ratio(weight: torch.Tensor, informative: list[int]) -> float:
    """Median first-layer column norm ‖w[:, i]‖ of the irrelevant inputs over that of the
    informative ones (a column holds every weight that reads input i)."""
    mask = torch.zeros(N_INPUTS, dtype=torch.bool)
    mask[informative] = True
    norms = weight.norm(dim=0)
    return float(norms[~mask].median() / norms[mask].median())


@experiment("R3")
def l1_selects_features(ctx: Context) -> Result:
    steps = ctx.pick(300, 600)
    x, y, informative = _task(ctx.generator(1))
    ctx.seed_all(2)
    base = models.mlp(N_INPUTS, 1, depth=1, width=HIDDEN, activation="tanh").double()
    fits = {
        "proximal L1 (SGD)": _fit(base, (x, y), steps, proximal=True),
        "subgradient L1 in the loss": _fit(
            base, (x, y), steps, penalty=lambda w: l1_penalty([w], LAMBDA)
        ),
        "L2 in the loss": _fit(base, (x, y), steps, penalty=lambda w: l2_penalty([w], LAMBDA_L2)),
        "none": _fit(base, (x, y), steps),
    }
    irrelevant = [i for i in range(N_INPUTS) if i not in informative]
    rows = []
    for name, fit in fits.items():
        report = sparsity([("w", fit.weight)], atol=NEAR_ZERO)["w"]
        kept = (fit.weight.norm(dim=0) > 0).nonzero().flatten().tolist()
        zeros_irrelevant = float((fit.weight[:, irrelevant] == 0).float().mean())
        rows.append(
            (
                name,
                report.zeros,
                report.near_zeros,
                len(kept),
                f"{zeros_irrelevant:.3f}",
                f"{_irrelevant_ratio(fit.weight, informative):.2e}",
                f"{fit.loss:.4f}",
            )
        )
    prox = fits["proximal L1 (SGD)"].weight
    kept = set((prox.norm(dim=0) > 0).nonzero().flatten().tolist())
    jaccard = len(kept & set(informative)) / len(kept | set(informative))
    prox_zeros = float((prox[:, irrelevant] == 0).float().mean())
    sub_weight = fits["subgradient L1 in the loss"].weight
    sub_zeros = int((sub_weight == 0).sum())
    sub_near = int((sub_weight.abs() <= NEAR_ZERO).sum())
    l1_vs_l2 = _irrelevant_ratio(fits["L2 in the loss"].weight, informative) / _irrelevant_ratio(
        fits["subgradient L1 in the loss"].weight, informative
    )
    moves = _one_step_moves()
    verdict = verdicts.weakest(
        [
            verdicts.at_least(jaccard, MIN_JACCARD),
            verdicts.at_least(prox_zeros, MIN_IRRELEVANT_ZEROS),
            verdicts.at_least(l1_vs_l2, MIN_L1_VS_L2),
        ]
    )
    total = HIDDEN * N_INPUTS
    return Result(
        verdict=verdict,
        key_number=(
            f"proximal L1 keeps inputs {sorted(kept)} (informative: {informative}); "
            f"{int((prox == 0).sum())}/{total} weights exactly 0"
        ),
        explanation=(
            "Claim: L1 subtracts a constant η·λ·sign(w) per step, shrinks small weights harder "
            "than L2 and drives unimportant weights to ~0, selecting features. One SGD step on "
            f"the penalty alone moves every weight by η·λ = {moves[0][1]:.3g} under L1 whatever "
            f"its size, and by η·λ·|w| under L2 ({moves[0][2]:.1e} for |w| = 1e-3, "
            f"{moves[-1][2]:.3g} for |w| = 1). Trained {steps} SGD steps on a regression with "
            f"{N_INFORMATIVE} informative inputs of {N_INPUTS} (λ={LAMBDA:g} on the first "
            f"layer), the irrelevant inputs' weights end {l1_vs_l2:.0f}× smaller (relative to "
            f"the informative ones) under L1 than under L2 of the same λ (threshold "
            f"{MIN_L1_VS_L2:g}×). The subgradient form leaves them oscillating around 0 "
            f"({sub_zeros} exact zeros, {sub_near} within {NEAR_ZERO:g}); the proximal step "
            "(soft-thresholding) makes "
            f"{100 * prox_zeros:.1f}% of them exactly 0 (threshold {100 * MIN_IRRELEVANT_ZEROS:g}%)"
            f" and the inputs it keeps are {sorted(kept)}, the informative ones {informative}: "
            f"Jaccard index {jaccard:.2f}. Verdict: {verdict.outcome}; exact zeros need the "
            "proximal form."
        ),
        tables=(
            Table(
                "one SGD step on the penalty alone: how far each weight moves toward 0",
                ("|w|", "L1 (λ‖w‖₁)", "L2 ((λ/2)‖w‖²)"),
                tuple((f"{s:g}", f"{a:.3g}", f"{b:.3g}") for s, a, b in moves),
            ),
            Table(
                f"first-layer weights after {steps} SGD steps ({total} weights, {HIDDEN} per "
                "input)",
                (
                    "penalty",
                    "exact zeros",
                    f"|w| <= {NEAR_ZERO:g}",
                    "inputs kept",
                    "irrelevant weights = 0",
                    "irrelevant/informative column norm",
                    "train MSE",
                ),
                tuple(rows),
            ),
        ),
        figures=(
            Figure(
                "first-layer column norm per input",
                "input",
                "‖w[:, i]‖",
                {
                    name: (
                        list(range(N_INPUTS)),
                        [max(float(v), 1e-12) for v in fit.weight.norm(dim=0)],
                    )
                    for name, fit in fits.items()
                },
                logy=True,
                kind="bar",
            ),
        ),
    )
