"""The loss ``diagnose``'s backward pass starts from: the caller's, or a stated default.

Default, without ``loss_fn``: on the model's first floating-point output tensor (a Hugging Face
``ModelOutput``'s first field, e.g. ``last_hidden_state`` or ``logits``)

- with ``target``: cross-entropy when the output is 2-D and ``target`` holds class indices,
  else the mean squared error against ``target``;
- without: cross-entropy against random labels when the output is one tensor that looks like
  logits (2-D floating point, more than one column); else a random projection of every
  floating-point output tensor, ``Σ_t mean(t · r_t)`` with ``r_t ~ N(0, 1)``, so that every
  output receives a gradient. Labels and projections come from a generator seeded with
  ``seed``.

Why a random projection rather than the mean square against zeros: its gradient at the output,
``r/n``, is independent of the output, which is what the backward theory assumes and what a
training loss's gradient looks like at initialization; the gradient of ``mean(y²)``, ``2y/n``, is
parallel to the output, and a LayerNorm at the output removes exactly that direction in its
backward pass (BERT's gradients then measure ×0.2 the theory everywhere below it, an artefact of
the loss, not of the network).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from stabletrain.graph import tensors_in

LossFn = Callable[..., torch.Tensor]


def _looks_like_logits(t: torch.Tensor) -> bool:
    return t.dim() == 2 and t.shape[1] > 1 and t.shape[0] > 0


def compute_loss(
    output: Any, loss_fn: LossFn | None, target: Any, seed: int
) -> tuple[torch.Tensor, str, torch.Tensor | None]:
    """``(loss, what it is, the output tensor the network's forward gain is measured on)``.

    Raises:
        TypeError: ``loss_fn`` returned something other than a floating-point scalar tensor.
        ValueError: no default applies (no floating-point output, a target of another shape),
            or ``loss_fn`` raised (chained).
    """
    floats = [t for t in tensors_in(output) if t.is_floating_point() and t.numel() > 0]
    main = floats[0] if floats else None
    if loss_fn is not None:
        name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        try:
            loss = loss_fn(output) if target is None else loss_fn(output, target)
        except Exception as err:
            call = "loss_fn(output)" if target is None else "loss_fn(output, target)"
            raise ValueError(
                f"diagnose: {call} raised {type(err).__name__}: {err}. Pass a loss_fn that takes "
                "the model's output (and target, when given) and returns a scalar tensor."
            ) from err
        text = f"{name}(output)" if target is None else f"{name}(output, target)"
        return _checked(loss, text), text, main
    if main is None:
        raise ValueError(
            f"diagnose: the model's output ({type(output).__name__}) holds no floating-point "
            "tensor, so no default loss applies; pass loss_fn=lambda out, y: ... (and target)."
        )
    if target is not None:
        if not isinstance(target, torch.Tensor):
            raise TypeError(
                f"diagnose: target must be a tensor, got {type(target).__name__}; or pass "
                "loss_fn to use another kind of target."
            )
        if main.dim() == 2 and not target.is_floating_point() and target.dim() == 1:
            text = f"cross_entropy(output, target of {main.shape[1]} classes)"
            return F.cross_entropy(main, target), text, main
        if target.shape != main.shape:
            raise ValueError(
                f"diagnose: target of shape {tuple(target.shape)} fits neither cross-entropy "
                f"(class indices for a 2-D output) nor MSE against the output of shape "
                f"{tuple(main.shape)}; pass loss_fn."
            )
        return F.mse_loss(main, target.to(main.dtype)), "mse_loss(output, target)", main
    if len(floats) == 1 and _looks_like_logits(main):
        generator = torch.Generator(device=main.device).manual_seed(seed)
        labels = torch.randint(
            0, main.shape[1], (main.shape[0],), generator=generator, device=main.device
        )
        text = f"cross_entropy(output, random labels of {main.shape[1]} classes, seed {seed})"
        return F.cross_entropy(main, labels), text, main
    generator = torch.Generator(device=main.device).manual_seed(seed)
    loss = torch.zeros((), device=main.device)
    for t in floats:
        r = torch.randn(t.shape, generator=generator, device=t.device, dtype=torch.float32)
        loss = loss + (t.float() * r).mean()
    count = f"the {len(floats)} outputs" if len(floats) > 1 else "the output"
    return loss, f"random projection of {count}: mean(output · N(0, 1)), seed {seed}", main


def _checked(loss: Any, text: str) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point() or loss.numel() != 1:
        what = (
            f"a tensor of shape {tuple(loss.shape)} and dtype {loss.dtype}"
            if isinstance(loss, torch.Tensor)
            else type(loss).__name__
        )
        raise TypeError(
            f"diagnose: {text} returned {what}; it must return a floating-point scalar tensor "
            "(reduce with .mean() or .sum())."
        )
    return loss.reshape(())
