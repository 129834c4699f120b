"""Cost of ``stabletrain.diagnostics.diagnose`` against one plain forward + backward pass.

Two random-init models on the CPU, in train mode (BatchNorm on batch statistics, dropout on):

1. ``resnet50``: ResNet-50's layout from ``_resnets.py`` (7x7/2 stem + max pool, four
   stages of 3-4-6-3 bottleneck blocks, 256-512-1024-2048 output channels, 1x1 projection
   shortcuts, global average pool, 1000 classes), on a batch of 3x224x224 images; its logits
   make diagnose's default loss cross-entropy against random labels.
2. ``bert-base``: ``transformers.BertModel(BertConfig())`` (12 layers, hidden 768, built from
   the config, nothing downloaded), on a batch of 128 random token ids per sequence; the default
   loss is a random projection of its two outputs.

Variants, timed on the same model and batch:

- ``plain``: ``out = model(x); loss = <the same default loss>;
  torch.autograd.grad(loss, params)``: one forward and one backward pass, no hooks;
- ``diagnose``: ``diagnose(model, x, lint=False)``: the propagation measurement alone;
- ``diagnose+lint``: ``diagnose(model, x)``, the architecture lint on the same recorded graph.

``alternating_medians`` (``_timing``) runs every variant once per round after one warm-up call
each, rotating the order every round, and keeps each variant's median; the ratio is a variant's
median over ``plain``'s. Target: ``diagnose <= 1.5`` (one forward and one backward pass plus the
measurements and the theory). The machine may be shared: the interleaving makes a drift hit
every variant alike. On a loaded machine every multi-threaded kernel can wait a scheduler
quantum for its second thread, which bills kernel counts rather than work: ``--threads 1``
measures the work. The activation moments of the theory (GELU, tanh) are cached per process;
the warm-up call pays for them (about 90 ms for BERT-base's 13 activations).

Run ``python benchmarks/diagnose_speed.py`` (a few minutes on 2 cores; ``--batch`` sets the
ResNet batch, BERT uses half of it, at least 1); ``--quick`` for a smoke run (tiny models, one
round; seconds); ``--json PATH`` to also write the rows; ``--models resnet50`` for one model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from _resnets import resnet50
from _timing import alternating_medians
from stabletrain.diagnostics import diagnose

TARGET = 1.5


@dataclass(frozen=True)
class Setup:
    """A model to time, its input and the loss diagnose's default picks for it."""

    name: str
    model: nn.Module
    x: Any
    loss: Callable[[Any], torch.Tensor]


def _cross_entropy_random_labels(out: torch.Tensor) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, out.shape[1], (out.shape[0],), generator=generator)
    return F.cross_entropy(out, labels)


def _random_projection(out: Any) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    loss = torch.zeros(())
    for t in (out.last_hidden_state, out.pooler_output):
        loss = loss + (t * torch.randn(t.shape, generator=generator)).mean()
    return loss


def setups(names: list[str], batch: int, quick: bool) -> list[Setup]:
    torch.manual_seed(0)
    found = []
    if "resnet50" in names:
        size = 32 if quick else 224
        model = resnet50((8, 8, 8, 8), (1, 1, 1, 1), 10) if quick else resnet50()
        found.append(
            Setup(
                "resnet50", model, torch.randn(batch, 3, size, size), _cross_entropy_random_labels
            )
        )
    if "bert-base" in names:
        try:
            import transformers
        except ImportError:
            print("bert-base: transformers is not installed, skipped")
        else:
            config = transformers.BertConfig()
            if quick:
                config = transformers.BertConfig(
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=64,
                )
            model = transformers.BertModel(config)
            seq = 16 if quick else 128
            ids = torch.randint(0, config.vocab_size, (max(batch // 2, 1), seq))
            found.append(Setup("bert-base", model, {"input_ids": ids}, _random_projection))
    return found


def _call(model: nn.Module, x: Any) -> Any:
    return model(**x) if isinstance(x, dict) else model(x)


@dataclass(frozen=True)
class Row:
    model: str
    variant: str
    seconds: float
    ratio: float


def run(setup: Setup, repeats: int) -> list[Row]:
    model, x = setup.model.train(), setup.x
    params = [p for p in model.parameters() if p.requires_grad]

    def plain() -> None:
        loss = setup.loss(_call(model, x))
        torch.autograd.grad(loss, params, allow_unused=True)

    times = alternating_medians(
        {
            "plain": plain,
            "diagnose": lambda: diagnose(model, x, lint=False),
            "diagnose+lint": lambda: diagnose(model, x),
        },
        repeats,
    )
    base = times["plain"]
    return [Row(setup.name, name, t, t / base) for name, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, one round")
    parser.add_argument("--models", nargs="+", default=["resnet50", "bert-base"])
    parser.add_argument("--batch", type=int, default=8, help="ResNet batch (BERT: half)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    batch = 2 if args.quick else args.batch
    rows: list[Row] = []
    print(
        f"diagnose cost (median of {repeats} interleaved rounds, {torch.get_num_threads()} threads)"
    )
    print(f"{'model':<10} {'variant':<14} {'seconds':>8} {'ratio':>6}")
    for setup in setups(args.models, batch, args.quick):
        for row in run(setup, repeats):
            rows.append(row)
            flag = "  over target" if row.variant == "diagnose" and row.ratio > TARGET else ""
            print(f"{row.model:<10} {row.variant:<14} {row.seconds:8.3f} {row.ratio:6.2f}{flag}")
            sys.stdout.flush()
    print(f"target: diagnose <= {TARGET}x plain forward+backward")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
