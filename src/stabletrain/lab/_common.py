"""Shared helpers of the lab's experiments: the digits data, a small train loop, per-layer signals.

Everything is seeded by the caller (a ``torch.Generator`` or a seed) and runs on the CPU in
seconds at the lab's sizes. Nothing is downloaded: the data is scikit-learn's bundled 8x8 digits.

Example:
    >>> import torch
    >>> from stabletrain import models
    >>> data = digits(seed=0)
    >>> data.x_train.shape, data.n_classes
    (torch.Size([1437, 64]), 10)
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = models.mlp(64, 10, depth=2, width=32)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> log = train(model, opt, data.sampler(64, torch.Generator().manual_seed(0)), steps=50)
    >>> log.diverged, log.final_loss(10) < log.losses[0]
    (False, True)
    >>> accuracy(model, data.x_test, data.y_test) > 0.5
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn
from torch.nn import functional as F

from stabletrain._checks import check_positive_int, check_real

__all__ = [
    "DigitsSplit",
    "LayerSignal",
    "Sampler",
    "TrainLog",
    "accuracy",
    "digits",
    "layer_signals",
    "train",
]

Tensor = torch.Tensor
Sampler = Callable[[], tuple[Tensor, Tensor]]
"""A function returning the next training batch ``(x, y)``."""
LossFn = Callable[[Tensor, Tensor], Tensor]


@cache
def _raw_digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float32)  # (1797, 64)
    y = torch.as_tensor(data.target, dtype=torch.long)  # (1797,)
    return x, y


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split of the digits, features standardized with the training statistics."""

    x_train: Tensor  # (n_train, 64)
    y_train: Tensor  # (n_train,)
    x_test: Tensor  # (n_test, 64)
    y_test: Tensor  # (n_test,)

    @property
    def n_features(self) -> int:
        """Features per sample (64)."""
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Classes (10)."""
        return 10

    def sampler(self, batch_size: int, generator: torch.Generator) -> Sampler:
        """Minibatches of ``batch_size`` rows drawn with replacement from the training split."""
        batch_size = check_positive_int("batch_size", batch_size, where="DigitsSplit.sampler")
        n = len(self.x_train)

        def sample() -> tuple[Tensor, Tensor]:
            idx = torch.randint(0, n, (batch_size,), generator=generator)
            return self.x_train[idx], self.y_train[idx]

        return sample


def digits(seed: int, *, train_fraction: float = 0.8, n_train: int | None = None) -> DigitsSplit:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), split by a seeded permutation.

    The first ``train_fraction`` of the permuted rows train, the rest test; ``n_train`` keeps
    only that many of the training rows (small-data experiments). Features are standardized with
    the (kept) training rows' mean and std; constant pixels stay 0.

    Raises:
        ValueError: for ``train_fraction`` outside ``(0, 1)`` or ``n_train`` larger than the
            training split.
    """
    where = "digits"
    fraction = check_real("train_fraction", train_fraction, where=where, positive=True)
    if fraction >= 1:
        raise ValueError(f"{where}: train_fraction must be in (0, 1), got {fraction}.")
    x, y = _raw_digits()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(fraction * len(x))
    train_idx, test_idx = order[:cut], order[cut:]
    if n_train is not None:
        n_train = check_positive_int("n_train", n_train, where=where)
        if n_train > cut:
            raise ValueError(
                f"{where}: n_train={n_train} exceeds the {cut} training rows of train_fraction="
                f"{fraction}; use n_train <= {cut} or a larger train_fraction."
            )
        train_idx = train_idx[:n_train]
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    z = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
    return DigitsSplit(z[train_idx], y[train_idx], z[test_idx], y[test_idx])


@dataclass(frozen=True)
class TrainLog:
    """Per-step training losses; ``diverged`` when a loss became non-finite (training stopped)."""

    losses: tuple[float, ...]
    diverged: bool

    def final_loss(self, window: int = 20) -> float:
        """Mean of the last ``window`` losses (``inf`` if training diverged)."""
        if self.diverged or not self.losses:
            return math.inf
        tail = self.losses[-window:]
        return sum(tail) / len(tail)

    def curve(self, window: int) -> tuple[list[float], list[float]]:
        """The loss averaged over consecutive windows of ``window`` steps: (end steps, means),
        one point per window, for plotting."""
        window = check_positive_int("window", window, where="TrainLog.curve")
        steps, means = [], []
        for end in range(window, len(self.losses) + 1, window):
            steps.append(float(end))
            means.append(sum(self.losses[end - window : end]) / window)
        return steps, means

    def first_below(self, level: float, window: int = 10) -> int | None:
        """First step whose running mean over ``window`` losses is ``<= level``; else None."""
        for end in range(window, len(self.losses) + 1):
            if sum(self.losses[end - window : end]) / window <= level:
                return end
        return None


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    sample: Sampler,
    *,
    steps: int,
    loss_fn: LossFn = F.cross_entropy,
    before_step: Callable[[], None] | None = None,
) -> TrainLog:
    """Train ``model`` for ``steps`` steps on batches from ``sample``; stop at a non-finite loss.

    ``before_step`` runs between ``backward`` and ``optimizer.step`` (e.g. gradient clipping).
    The model is left in train mode.
    """
    steps = check_positive_int("steps", steps, where="train")
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        x, y = sample()
        loss = loss_fn(model(x), y)
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value):
            return TrainLog(tuple(losses), diverged=True)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        if before_step is not None:
            before_step()
        optimizer.step()
    return TrainLog(tuple(losses), diverged=False)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of rows whose arg-max output equals the label (model put in eval mode)."""
    model.eval()
    return float((model(x).argmax(-1) == y).float().mean())


@dataclass(frozen=True)
class LayerSignal:
    """One layer's forward and backward signal for one batch.

    Attributes:
        name: the module's qualified name.
        forward_std: std of the layer's output over all entries.
        batch_std: mean over units of the std across the batch: the input-dependent part of the
            signal (a bias adds a constant that ``forward_std`` counts and this does not).
        backward_std: std of the gradient of the backpropagated quantity w.r.t. the output.
    """

    name: str
    forward_std: float
    batch_std: float
    backward_std: float


@contextmanager
def _capture(modules: Sequence[tuple[str, nn.Module]]) -> Iterator[dict[str, list[Tensor]]]:
    store: dict[str, list[Tensor]] = {name: [] for name, _ in modules}
    handles: list[torch.utils.hooks.RemovableHandle] = []

    def hook_for(name: str) -> Callable[[nn.Module, object, Tensor], None]:
        def hook(_module: nn.Module, _inputs: object, output: Tensor) -> None:
            store[name].append(output.detach())
            if output.requires_grad:
                output.register_hook(lambda g: store[name].append(g.detach()))  # type: ignore[no-untyped-call]

        return hook

    try:
        for name, module in modules:
            handles.append(module.register_forward_hook(hook_for(name)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def layer_signals(
    model: nn.Module,
    x: Tensor,
    *,
    layer_types: tuple[type[nn.Module], ...] = (nn.Linear,),
    generator: torch.Generator | None = None,
    target: Tensor | None = None,
    loss_fn: LossFn = F.cross_entropy,
) -> list[LayerSignal]:
    """Forward and backward std at the output of every module of ``layer_types``, in call order.

    The backward pass starts from a standard normal vector at the model's output (drawn from
    ``generator``): gradient propagation independent of any loss; or, with ``target``, from
    ``loss_fn(output, target)`` (the back-propagated gradients of a cost, as in Glorot & Bengio
    2010). Each module must be called once per forward pass. Parameters' ``.grad`` are left
    untouched.

    Example:
        >>> from stabletrain import models
        >>> _ = torch.manual_seed(0)
        >>> net = models.mlp(32, 4, depth=3, width=64, activation="tanh")
        >>> [s.name for s in layer_signals(net, torch.randn(128, 32))]
        ['linear1', 'linear2', 'linear3', 'head']
    """
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, layer_types)]
    if not modules:
        names = ", ".join(t.__name__ for t in layer_types)
        raise ValueError(f"layer_signals: the model has no module of type {names}.")
    x = x.detach().requires_grad_(True)  # so the first layer's output carries a gradient
    with _capture(modules) as store:
        out = model(x)
        if target is None:
            probe = torch.randn(out.shape, generator=generator, dtype=out.dtype)
            torch.autograd.grad(out, [x], probe)  # parameters' .grad stay untouched
        else:
            torch.autograd.grad(loss_fn(out, target), [x])
    signals = []
    for name, _ in modules:
        if len(store[name]) != 2:
            raise ValueError(
                f"layer_signals: module {name!r} was called {len(store[name]) // 2 or 'no'} "
                "times in one forward pass; pass layer_types that are called exactly once."
            )
        act, grad = store[name]
        flat = act.reshape(act.shape[0], -1)  # (batch, units)
        signals.append(
            LayerSignal(
                name=name,
                forward_std=float(act.std()),
                batch_std=float(flat.std(0).mean()),
                backward_std=float(grad.std()),
            )
        )
    return signals
