"""Helpers of the dropout experiments (R8 and its neighbours): a train/validation/test split of
the digits, training that records the held-out loss, accuracy and calibration at regular steps,
and the expected calibration error.

The validation split chooses a step (early stopping); the test split, which plays no part in
that choice, scores it, so the score at the chosen step is not biased by the choice.

Example:
    >>> import torch
    >>> from stabletrain import models
    >>> split = three_way_digits(0, n_train=100)
    >>> len(split.x_train), len(split.x_val), len(split.x_test)
    (100, 719, 719)
    >>> _ = torch.manual_seed(0)
    >>> model = models.mlp(64, 10, depth=1, width=32)
    >>> curve = fit_tracked(model, torch.optim.Adam(model.parameters(), 1e-2), split, 40, 10)
    >>> curve.steps
    (10, 20, 30, 40)
    >>> 0.0 <= curve.test_ece[curve.best] <= 1.0
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stabletrain.lab._common import digits

__all__ = [
    "Curve",
    "ThreeWaySplit",
    "expected_calibration_error",
    "fit_tracked",
    "three_way_digits",
]

# 20% of the 1797 digits (359 rows) is the pool the training rows are drawn from; the other
# 1438 rows are halved into validation (719) and test (719).
TRAIN_POOL = 0.2


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> float:
    """ECE with ``bins`` equal-width confidence bins (Naeini et al. 2015; Guo et al. 2017).

    The confidence of a row is its largest probability; bin ``b`` holds the rows with confidence
    in ``(b/bins, (b+1)/bins]`` (the first bin also holds 0). ECE = Σ_b (n_b/n)·|acc_b − conf_b|,
    with acc_b the fraction of the bin's rows whose arg-max is the label and conf_b their mean
    confidence.

    Args:
        probs: (n, classes) probabilities (rows sum to 1).
        labels: (n,) class indices.
        bins: the number of bins (>= 1).

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
        >>> round(expected_calibration_error(p, torch.tensor([0, 1]), bins=10), 6)
        0.35
    """
    if bins < 1:
        raise ValueError(f"expected_calibration_error: bins must be >= 1, got {bins}.")
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(
            "expected_calibration_error: need probs (n, classes) and labels (n,), got "
            f"{tuple(probs.shape)} and {tuple(labels.shape)}."
        )
    conf, pred = probs.max(-1)
    correct = (pred == labels).to(probs.dtype)
    index = (torch.ceil(conf * bins).long() - 1).clamp(0, bins - 1)  # (n,)
    conf_sum = torch.zeros(bins, dtype=probs.dtype).index_add_(0, index, conf)
    correct_sum = torch.zeros(bins, dtype=probs.dtype).index_add_(0, index, correct)
    return float((conf_sum - correct_sum).abs().sum() / len(labels))


@dataclass(frozen=True)
class ThreeWaySplit:
    """Training, validation and test rows of the digits (features standardized on training)."""

    x_train: Tensor  # (n_train, 64)
    y_train: Tensor  # (n_train,)
    x_val: Tensor  # (719, 64)
    y_val: Tensor  # (719,)
    x_test: Tensor  # (719, 64)
    y_test: Tensor  # (719,)


def three_way_digits(seed: int, *, n_train: int) -> ThreeWaySplit:
    """``n_train`` (<= 359) training digits, 719 validation and 719 test digits, split by
    ``seed`` (:func:`stabletrain.lab._common.digits`, its held-out rows halved)."""
    s = digits(seed, train_fraction=TRAIN_POOL, n_train=n_train)
    half = len(s.x_test) // 2
    return ThreeWaySplit(
        s.x_train, s.y_train, s.x_test[:half], s.y_test[:half], s.x_test[half:], s.y_test[half:]
    )


@dataclass(frozen=True)
class Curve:
    """Held-out scores (evaluation mode) at regular steps of one training run.

    Attributes:
        steps: the steps evaluated (after that many updates).
        val_loss: validation cross-entropy at each.
        test_loss, test_accuracy, test_ece: test cross-entropy, accuracy and ECE at each.
    """

    steps: tuple[int, ...]
    val_loss: tuple[float, ...]
    test_loss: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    test_ece: tuple[float, ...]

    @property
    def best(self) -> int:
        """The index of the lowest validation loss (the early-stopping step)."""
        return min(range(len(self.steps)), key=lambda i: self.val_loss[i])

    @property
    def overfit_rise(self) -> float:
        """Final test loss − the lowest test loss: > 0 when the test loss rose after its minimum."""
        return self.test_loss[-1] - min(self.test_loss)


@torch.no_grad()
def _scores(model: nn.Module, split: ThreeWaySplit, bins: int) -> tuple[float, ...]:
    model.eval()
    val = float(F.cross_entropy(model(split.x_val), split.y_val))
    logits = model(split.x_test)
    test = float(F.cross_entropy(logits, split.y_test))
    acc = float((logits.argmax(-1) == split.y_test).float().mean())
    ece = expected_calibration_error(F.softmax(logits, -1), split.y_test, bins)
    model.train()
    return val, test, acc, ece


def fit_tracked(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    split: ThreeWaySplit,
    steps: int,
    every: int,
    *,
    bins: int = 15,
) -> Curve:
    """Full-batch training for ``steps`` steps, scoring the held-out splits every ``every``."""
    model.train()
    rows = []
    for step in range(1, steps + 1):
        loss = F.cross_entropy(model(split.x_train), split.y_train)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        if step % every == 0:
            rows.append((step, *_scores(model, split, bins)))
    if not rows:
        raise ValueError(f"fit_tracked: every ({every}) must be <= steps ({steps}).")
    cols = list(zip(*rows, strict=True))
    return Curve(
        tuple(int(s) for s in cols[0]),
        tuple(cols[1]),
        tuple(cols[2]),
        tuple(cols[3]),
        tuple(cols[4]),
    )
