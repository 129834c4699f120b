"""Helpers of the regularization experiments (R1–R14, P-ADAMW2019, P-DROPOUT2014) on top of
:mod:`stabletrain.lab._common`: small-data digits splits, full-batch training, and the train/test
scores whose gap is what regularization is meant to shrink.

Example:
    >>> import torch
    >>> from stabletrain import models
    >>> split = small_digits(100, seed=0)
    >>> split.x_train.shape, split.x_test.shape
    (torch.Size([100, 64]), torch.Size([1438, 64]))
    >>> _ = torch.manual_seed(0)
    >>> model = models.mlp(64, 10, depth=1, width=32)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    >>> scores = fit_and_score(model, opt, split, steps=100)
    >>> scores.train_accuracy, scores.gap > 0
    (1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from stabletrain.lab._common import DigitsSplit, LossFn, Sampler, TrainLog, accuracy, digits, train

__all__ = [
    "FitScores",
    "eval_loss",
    "fit_and_score",
    "full_batch",
    "small_digits",
]

# 20% of the 1797 digits (359 rows) is the pool the small training sets are drawn from; the
# other 1438 rows test, so a test accuracy has a standard error of about 0.8 points at 90%.
TRAIN_POOL = 0.2


def small_digits(n_train: int, seed: int) -> DigitsSplit:
    """``n_train`` (<= 359) training digits and 1438 test digits, split by ``seed``."""
    return digits(seed, train_fraction=TRAIN_POOL, n_train=n_train)


def full_batch(x: torch.Tensor, y: torch.Tensor) -> Sampler:
    """A sampler that returns the whole training set every step (full-batch training)."""
    return lambda: (x, y)


@torch.no_grad()
def eval_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of ``model`` (put in eval mode) on ``(x, y)``."""
    model.eval()
    return float(F.cross_entropy(model(x), y))


@dataclass(frozen=True)
class FitScores:
    """Accuracies and cross-entropies (evaluation mode) on both splits after training, the log."""

    train_accuracy: float
    test_accuracy: float
    train_loss: float
    test_loss: float
    log: TrainLog

    @property
    def gap(self) -> float:
        """Train accuracy − test accuracy: the overfitting a regularizer should reduce."""
        return self.train_accuracy - self.test_accuracy

    @property
    def loss_gap(self) -> float:
        """Test loss − train loss: overfitting as overconfidence, visible when accuracy is not."""
        return self.test_loss - self.train_loss


def fit_and_score(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    split: DigitsSplit,
    *,
    steps: int,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    loss_fn: LossFn = F.cross_entropy,
) -> FitScores:
    """Train on ``split`` (full batch, or minibatches of ``batch_size`` from ``generator``),
    then score both splits in evaluation mode."""
    if batch_size is None:
        sample = full_batch(split.x_train, split.y_train)
    else:
        sample = split.sampler(batch_size, generator or torch.Generator().manual_seed(0))
    log = train(model, optimizer, sample, steps=steps, loss_fn=loss_fn)
    return FitScores(
        accuracy(model, split.x_train, split.y_train),
        accuracy(model, split.x_test, split.y_test),
        eval_loss(model, split.x_train, split.y_train),
        eval_loss(model, split.x_test, split.y_test),
        log,
    )
