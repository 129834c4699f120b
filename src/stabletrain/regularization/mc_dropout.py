"""Monte-Carlo dropout: predictive mean and variance from n stochastic forward passes.

Gal & Ghahramani 2016 ("Dropout as a Bayesian Approximation: Representing Model Uncertainty in
Deep Learning"): keeping dropout on at test time and averaging n passes approximates the
predictive distribution of a Bayesian network; the spread of the passes estimates the model's
uncertainty. The average of the sub-networks is also what the weight-scaling rule of
evaluation-mode dropout approximates in one pass (claim R8); for a network that is linear
after its dropout layers the two are equal in expectation.

Only the dropout modules run in training mode: BatchNorm and everything else stay in evaluation
mode, so running statistics are used, never updated. Every module's mode (and every buffer) is
restored afterwards, also when the model raises.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from stabletrain._checks import check_choice, check_positive_int
from stabletrain.graph import call_model, check_example_input, preserved_state
from stabletrain.regularization.dropout import ClassicDropout, DropPath

__all__ = ["DROPOUT_TYPES", "MCPrediction", "mc_dropout_mode", "mc_predict"]

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.MultiheadAttention,  # its attention dropout is functional, gated by its own flag
    DropPath,
    ClassicDropout,
)
# In evaluation mode under no_grad these take a fused fast path that skips their dropout
# children, which would make every pass identical; training mode changes nothing else in them.
_FAST_PATH_TYPES: tuple[type[nn.Module], ...] = (nn.TransformerEncoderLayer,)


class MCPrediction(NamedTuple):
    """Per-element mean and variance over the passes, structured like the model's output."""

    mean: Any
    variance: Any


def _rate(module: nn.Module) -> float | None:
    """The module's drop probability, or None where it has no ``p`` (assumed stochastic)."""
    if isinstance(module, nn.MultiheadAttention):
        return float(module.dropout)
    rate = getattr(module, "p", None)
    return float(rate) if isinstance(rate, numbers.Real) else None


def _check_types(dropout_types: Any, *, where: str) -> tuple[type[nn.Module], ...]:
    try:
        types = (dropout_types,) if isinstance(dropout_types, type) else tuple(dropout_types)
    except TypeError:
        types = (dropout_types,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise TypeError(
                f"{where}: dropout_types must be nn.Module subclasses, got {t!r}; "
                "e.g. dropout_types=(*DROPOUT_TYPES, MyDropout)."
            )
    return types


@contextlib.contextmanager
def mc_dropout_mode(
    model: nn.Module, dropout_types: Sequence[type[nn.Module]] = DROPOUT_TYPES
) -> Iterator[list[str]]:
    """Put ``model`` in evaluation mode with only its dropout modules in training mode.

    Yields the names of the dropout modules found. On exit every module's ``training`` flag and
    every buffer are restored to what they were, also after an exception.

    Raises ``ValueError`` if the model has no dropout module with a rate > 0: Monte-Carlo
    passes would then all be equal and report zero variance, which reads as certainty, so this
    is an error rather than a warning. Dropout applied functionally
    (``F.dropout(x, self.p, self.training)``) is found by passing the class of the module that
    owns it: ``dropout_types=(*DROPOUT_TYPES, MyBlock)`` (only that module's own flag is set).

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.1))
        >>> with mc_dropout_mode(model) as names:
        ...     names, model[1].training, model[2].training
        (['2'], False, True)
        >>> model.training
        True
    """
    where = "mc_dropout_mode"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: model must be an nn.Module, got {type(model).__name__}.")
    types = _check_types(dropout_types, where=where)
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, types)]
    if not any(_rate(m) != 0.0 for _, m in found):
        what = "only dropout modules with rate 0" if found else "no dropout module"
        raise ValueError(
            f"{where}: the model has {what} (looked for "
            f"{', '.join(t.__name__ for t in types)}), so every Monte-Carlo pass would give the "
            "same output and zero variance. Add dropout to the model, or pass the class of a "
            "module that applies dropout functionally in dropout_types."
        )
    with preserved_state(model):
        model.eval()
        for module in model.modules():
            if isinstance(module, types + _FAST_PATH_TYPES):
                module.training = True  # this module only, not its children
        yield [name for name, _ in found]


def _device_type(model: nn.Module, inputs: Any) -> str:
    """The accelerator type in use, for forking its random state (``"cuda"`` if none)."""
    tensors = [*tree_flatten(inputs)[0], *model.parameters(), *model.buffers()]
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "cpu":
            return t.device.type
    return "cuda"


@contextlib.contextmanager
def _seeded(seed: int | None, device_type: str) -> Iterator[None]:
    """Seed torch's generators for the block and restore their states afterwards."""
    if seed is None:
        yield
        return
    count = getattr(getattr(torch, device_type, None), "device_count", lambda: 0)
    devices = list(range(count()))
    with torch.random.fork_rng(devices=devices, device_type=device_type):
        torch.manual_seed(seed)
        yield


def _leaves(output: Any, *, where: str) -> tuple[list[torch.Tensor], Any]:
    leaves, spec = tree_flatten(output)
    for i, leaf in enumerate(leaves):
        if not (isinstance(leaf, torch.Tensor) and leaf.is_floating_point()):
            kind = f"a {leaf.dtype} tensor" if isinstance(leaf, torch.Tensor) else None
            what = kind or f"of type {type(leaf).__name__}"
            raise TypeError(
                f"{where}: output leaf {i} is {what}; Monte-Carlo averaging needs "
                "floating-point tensors (return logits or probabilities, not class indices)."
            )
    return leaves, spec


class _Welford:
    """Running mean and sum of squared deviations M2 of z = y − y₁, the shift by the first pass.

    The shift keeps z at the scale of the spread, not of the mean: a running mean of values
    near 1e4 in float32 would be rounded to 1e-3 and carry that error into M2.
    """

    def __init__(self, first: torch.Tensor) -> None:
        self.shift = first.to(torch.promote_types(first.dtype, torch.float32), copy=True)
        self.mean = torch.zeros_like(self.shift)
        self.m2 = torch.zeros_like(self.shift)

    def update(self, y: torch.Tensor, k: int) -> None:
        """Add pass k >= 2 (pass 1, z = 0, leaves mean and M2 at 0)."""
        z = y.to(self.shift.dtype) - self.shift
        delta = z - self.mean
        self.mean.add_(delta, alpha=1.0 / k)
        self.m2.addcmul_(delta, z.sub_(self.mean))


def mc_predict(
    model: nn.Module,
    inputs: Any,
    n: int = 32,
    *,
    seed: int | None = None,
    correction: int = 1,
    dropout_types: Sequence[type[nn.Module]] = DROPOUT_TYPES,
) -> MCPrediction:
    """Mean and variance of ``n`` forward passes with dropout on (Gal & Ghahramani 2016).

    mean = (1/n)·Σ_k y_k and variance = Σ_k (y_k − mean)² / (n − correction), per element,
    accumulated with Welford's update (mean_k = mean_{k−1} + δ/k, M2_k = M2_{k−1} + δ·(y_k −
    mean_k), δ = y_k − mean_{k−1}; Welford 1962) on the passes shifted by the first one:
    numerically stable where E[y²] − E[y]² cancels, and memory independent of ``n`` (three
    buffers per output; no pass is kept). Runs under ``torch.no_grad`` inside
    :func:`mc_dropout_mode` (dropout in training mode, BatchNorm and the rest in evaluation mode;
    modes restored afterwards).

    Args:
        model: the network; it must contain a dropout module (see :func:`mc_dropout_mode`).
        inputs: a tensor, a tuple of positional inputs or a dict of keyword inputs.
        n: the number of passes (>= 1; >= 2 with ``correction=1``).
        seed: seed torch's generators for the passes (the previous random state is restored
            afterwards), for reproducible results; ``None`` uses the current state.
        correction: 1 for the unbiased sample variance (as ``torch.var``), 0 for the population
            variance.
        dropout_types: the module classes put in training mode.

    Returns:
        An :class:`MCPrediction` ``(mean, variance)``, each structured like the model's output
        (a tensor, or a tuple/list/dict of tensors), in the output's dtype promoted to at least
        float32.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
        >>> mean, var = mc_predict(model, torch.randn(5, 3), n=64, seed=0)
        >>> mean.shape, bool((var > 0).all())
        (torch.Size([5, 2]), True)
    """
    where = "mc_predict"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{where}: model must be an nn.Module, got {type(model).__name__}.")
    check_example_input(inputs, where=where)
    n = check_positive_int("n", n, where=where)
    check_choice("correction", correction, (0, 1), where=where)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"{where}: seed must be an int or None, got {type(seed).__name__}.")
    if n <= correction:
        raise ValueError(
            f"{where}: n={n} passes give no unbiased variance (correction=1 needs n >= 2); "
            "use more passes or correction=0."
        )
    stats: list[_Welford] = []
    spec: Any = None
    with (
        _seeded(seed, _device_type(model, inputs)),
        mc_dropout_mode(model, dropout_types),
        torch.no_grad(),
    ):
        for k in range(1, n + 1):
            leaves, spec_k = _leaves(call_model(model, inputs), where=where)
            if k == 1:
                spec, stats = spec_k, [_Welford(y) for y in leaves]
                continue
            if spec_k != spec or [y.shape for y in leaves] != [s.shift.shape for s in stats]:
                raise ValueError(
                    f"{where}: the model's output changed structure or shape between passes; "
                    "Monte-Carlo averaging needs the same output layout every pass."
                )
            for y, s in zip(leaves, stats, strict=True):
                s.update(y, k)
    means = [s.shift.add_(s.mean) for s in stats]
    variances = [s.m2.div_(n - correction) for s in stats]
    return MCPrediction(tree_unflatten(means, spec), tree_unflatten(variances, spec))
