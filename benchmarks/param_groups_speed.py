"""Time ``param_groups`` on a 1B-parameter-shaped language model built on the meta device.

The model is ``stabletrain.models.transformer`` with GPT-2-XL-like sizes (d_model 2048, 20
Pre-LN blocks, vocab 50 257, 1024 positions; about 1.2 B parameters) created under
``torch.device("meta")``: shapes only, no memory, so it builds in a moment on any machine.

Rows, each the median of ``--repeats`` alternating calls:

- ``name-split``: the baseline most training scripts use (Hugging Face Trainer's rule): no decay
  for parameters named ``*bias`` or ``*LayerNorm.weight`` / ``*norm*.weight``, a two-group list.
- ``param_groups``: stabletrain's structural split (biases, norms, embeddings, positions).
- ``explain_param_groups``: the explanation report (every parameter, its group and reason).
- ``param_groups+layer_decay``: BEiT-style layer-wise lr decay by execution depth, which needs one
  forward pass on the meta device to find the order (``example_input`` on ``meta``).

The ratio column is each row over ``name-split``.
Run ``python benchmarks/param_groups_speed.py`` (under a minute); ``--quick`` builds a small
model (seconds).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from _timing import alternating_medians
from stabletrain.models import transformer
from stabletrain.regularization import explain_param_groups, param_groups

WEIGHT_DECAY = 0.1


def build(quick: bool) -> tuple[nn.Module, torch.Tensor]:
    """The meta-device language model and a meta batch of token ids."""
    sizes: dict[str, Any] = (
        dict(d_model=64, n_heads=4, n_layers=4, vocab_size=1000, max_len=128)
        if quick
        else dict(d_model=2048, n_heads=16, n_layers=20, vocab_size=50257, max_len=1024)
    )
    with torch.device("meta"):
        model = transformer(**sizes, out_features=sizes["vocab_size"], causal=True)
        ids = torch.zeros(2, 16, dtype=torch.long)
    return model, ids


def name_split(model: nn.Module) -> list[dict[str, Any]]:
    """The common name-based rule: biases and ``norm``/``LayerNorm`` weights get no decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lowered = name.lower()
        if name.endswith("bias") or "layernorm" in lowered or "norm" in lowered:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def variants(model: nn.Module, ids: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The timed calls, by row name."""
    return {
        "name-split": lambda: name_split(model),
        "param_groups": lambda: param_groups(model, WEIGHT_DECAY),
        "explain_param_groups": lambda: explain_param_groups(model, WEIGHT_DECAY),
        "param_groups+layer_decay": lambda: param_groups(
            model, WEIGHT_DECAY, lr=1e-3, layer_decay=0.8, example_input=ids
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small model, for a smoke run")
    parser.add_argument("--repeats", type=int, default=5, help="calls per row (default 5)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    model, ids = build(args.quick)
    n_params = sum(p.numel() for p in model.parameters())
    n_tensors = sum(1 for _ in model.parameters())
    medians = alternating_medians(variants(model, ids), args.repeats)
    base = medians["name-split"]
    print(f"model: {n_params / 1e9:.2f} B parameters in {n_tensors} tensors, on the meta device")
    print(f"{'variant':<26} {'ms':>10} {'ratio':>8}")
    for name, seconds in medians.items():
        print(f"{name:<26} {seconds * 1e3:>10.2f} {seconds / base:>8.2f}")


if __name__ == "__main__":
    main()
