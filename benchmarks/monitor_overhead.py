"""Step-time overhead of ``TrainingMonitor``, against a plain training loop in the same process.

Three models, each trained on one fixed random batch (the data does not matter for timing):

1. ``mlp``: 10 ``Linear(512, 512)`` + ReLU layers, batch 256, MSE loss, Adam (lr 1e-3). The
   hardest case for a monitor: little compute per parameter (6 x 256 flops), so every pass over
   the weights or gradients shows.
2. ``resnet18``: a ResNet-18-shaped CNN from ``_resnets.py`` (7x7/2 stem + max pool,
   four stages of two basic blocks with 64-128-256-512 channels, 1x1 projection shortcuts,
   global average pool, 10 classes), on 3x64x64 images, batch 32, cross-entropy, SGD (lr 0.01,
   momentum 0.9).
3. ``lm``: a small decoder-only Transformer language model (``stabletrain.models.transformer``:
   vocabulary 512, 4 Pre-LN blocks of width 256 with 4 heads, causal), on 16 sequences of 64
   tokens, cross-entropy over every position, AdamW (lr 3e-4).

Variants, each on its own copy of the model and optimizer, all entered for the whole run:

- ``plain``: ``zero_grad; loss = f(model(x)); loss.backward(); opt.step()``.
- ``plain-copy``: the same loop on another copy: nothing differs, so its spread is the noise
  floor of the machine.
- ``grad-norms/1``: the plain loop plus, between backward and the optimizer step, one bare
  ``torch._foreach_norm`` over every gradient (the multi-tensor kernel ``clip_grad_norm_``
  uses). Any exact per-layer gradient norm reads every gradient once, so this is the least
  ``minimal/1`` can cost: the *cost floor* of the presets' exact gradient norms, measured in
  the same run.
- ``{minimal,standard,full}/{1,10}``: the same plus ``mon.step(loss)`` under a
  ``TrainingMonitor`` with that preset and ``every(1)`` / ``every(10)``, writing to a
  ``JSONLSink``; the ``full`` ones also to a ``MemorySink`` that takes weight and gradient
  histograms every 100 steps (``TensorBoardSink``'s default: histograms on a slower schedule).
- ``full/10+h10``: ``full/10`` with histograms on every logged step, to show their cost.
- ``tb-hist/1``: what people often do instead: ``SummaryWriter.add_histogram`` for every
  parameter and every gradient, every step (the writer is flushed and garbage collected at the
  end of each of its blocks, so that its leftovers are billed to it).
- ``wandb/1``: ``wandb.watch(model, log="all", log_freq=1)`` in offline mode and a
  ``wandb.log`` per step, when ``wandb`` is importable (it is not a dependency); otherwise the
  row says so.

Timing: a block is 10 consecutive steps of one variant (so an ``every(10)`` block holds exactly
one logged step); ``alternating_medians`` (``_timing``'s, with a choice of clock) runs one
block of every variant per repeat, rotating the order, and returns each variant's median block
time. That is one *round*;
each round starts from a new random order of the variants (a rotation alone keeps every
variant behind the same neighbour, whose leftovers it would always inherit). A variant's ratio
in a round is its median over the plain loop's; the table gives the median ratio over the
rounds, its spread (min-max) and the variant's milliseconds per step. The monitor's variants
and the other tools' are interleaved in two separate groups, each with its own plain loop.
Targets: ``minimal/1 <= 1.02``, ``standard/1 <= 1.04``, ``full/10 <= 1.05``. The
``plain-copy`` row is the noise floor: a ratio inside its spread is no measurable overhead;
``grad-norms/1`` is the cost floor: the ratio of reading the gradients once per step.

Denormal floats are flushed to zero (``torch.set_flush_denormal``): both models fit their one
batch within a few hundred steps, and the vanishing gradients of a memorized batch otherwise
slow every variant down by up to 100x on CPU, at random moments.

The machine may be shared: the interleaving makes a drift hit every variant alike, but a busy
neighbour still widens the spread; read the spread before the median.

Run ``python benchmarks/monitor_overhead.py`` (about 10 minutes on 2 cores); ``--quick`` for a
smoke run (small models, one round; seconds); ``--json PATH`` to also write every row;
``--models mlp`` to run one model; ``--rounds N`` to run N rounds instead of the default 8 (3
gives a usable table in a few minutes per model); ``--clock cpu`` to time this process's CPU
time instead of wall time, on a machine other jobs share.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import importlib.util
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from _resnets import resnet18
from _timing import CLOCKS, alternating_medians
from stabletrain.models import transformer
from stabletrain.monitoring import JSONLSink, MemorySink, Sink, TrainingMonitor, every

BLOCK = 10  # steps per timed block
HISTOGRAMS_EVERY = 100  # the full preset's histogram schedule (TensorBoardSink's default)
PRESETS = ("minimal", "standard", "full")
TARGETS = {"minimal/1": 1.02, "standard/1": 1.04, "full/10": 1.05}
MODELS = ("mlp", "resnet18", "lm")


# --------------------------------------------------------------------------- models


def mlp(depth: int = 10, width: int = 512) -> nn.Module:
    """``depth`` blocks of ``Linear(width, width)`` + ReLU."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Setup:
    """A model to time: how to build it, its batch, its loss and its optimizer."""

    name: str
    build: Callable[[], nn.Module]
    x: torch.Tensor
    y: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    blocks: int  # blocks per variant per round
    rounds: int  # rounds of the monitor's group; the other tools' group runs 2 (1 if quick)


def lm(vocab: int, width: int, depth: int) -> nn.Module:
    """A causal Transformer language model: ``(B, T)`` token ids to ``(B, T, vocab)`` logits."""
    return transformer(
        vocab_size=vocab,
        out_features=vocab,
        d_model=width,
        n_heads=4,
        n_layers=depth,
        max_len=64,
        causal=True,
    )


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next token at every position: ``(B, T, V)`` against ``(B, T)``."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def setups(quick: bool, rounds: int | None = None) -> dict[str, Setup]:
    gen = torch.Generator().manual_seed(0)
    vocab, lm_width, lm_depth, seqs, length = (64, 32, 2, 4, 16) if quick else (512, 256, 4, 16, 64)
    width, batch = (64, 32) if quick else (512, 256)
    side, images = (16, 4) if quick else (64, 32)
    cnn_channels = (8, 16, 16, 32) if quick else (64, 128, 256, 512)
    found = {
        "mlp": Setup(
            "mlp",
            lambda: mlp(3 if quick else 10, width),
            torch.randn(batch, width, generator=gen),
            torch.randn(batch, width, generator=gen),
            F.mse_loss,
            lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
            blocks=1 if quick else 3,
            rounds=1 if quick else 8,
        ),
        "resnet18": Setup(
            "resnet18",
            lambda: resnet18(cnn_channels),
            torch.randn(images, 3, side, side, generator=gen),
            torch.randint(0, 10, (images,), generator=gen),
            F.cross_entropy,
            lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9),
            blocks=1 if quick else 2,
            rounds=1 if quick else 8,
        ),
        "lm": Setup(
            "lm",
            lambda: lm(vocab, lm_width, lm_depth),
            torch.randint(0, vocab, (seqs, length), generator=gen),
            torch.randint(0, vocab, (seqs, length), generator=gen),
            lm_loss,
            lambda m: torch.optim.AdamW(m.parameters(), lr=3e-4),
            blocks=1 if quick else 2,
            rounds=1 if quick else 8,
        ),
    }
    if rounds is not None:
        found = {k: dataclasses.replace(v, rounds=rounds) for k, v in found.items()}
    return found


# --------------------------------------------------------------------------- variants


class Variant:
    """One training loop to time: a model copy, its optimizer, and what runs after each step."""

    def __init__(self, setup: Setup, base: nn.Module) -> None:
        self.setup = setup
        self.model = copy.deepcopy(base)
        self.opt = setup.optimizer(self.model)
        self.after: Callable[[torch.Tensor], None] = lambda loss: None
        self.after_backward: Callable[[], None] = lambda: None
        self.end: Callable[[], None] = lambda: None  # finish asynchronous work inside the block
        self.steps = 0

    def block(self) -> None:
        for _ in range(BLOCK):
            self.opt.zero_grad()
            loss = self.setup.loss(self.model(self.setup.x), self.setup.y)
            torch.autograd.backward(loss)  # typed, unlike Tensor.backward
            self.after_backward()
            self.opt.step()
            self.steps += 1
            self.after(loss)
        self.end()


def monitored(
    stack: contextlib.ExitStack,
    setup: Setup,
    base: nn.Module,
    name: str,
    out: Path,
) -> Variant:
    """``name`` is ``preset/n``, or ``full/n+hN`` for histograms every N steps (default 100)."""
    v = Variant(setup, base)
    preset, _, rest = name.partition("/")
    n, _, hist = rest.partition("+h")
    sinks: list[Sink] = [JSONLSink(out / f"{setup.name}-{preset}-{n}-{hist}.jsonl")]
    if preset == "full":
        sinks.append(MemorySink(max_rows=1, histograms=every(int(hist or HISTOGRAMS_EVERY))))
    mon = TrainingMonitor(
        v.model,
        v.opt,
        preset=preset,  # type: ignore[arg-type]
        schedule=every(int(n)),
        sinks=sinks,
        summary=False,
    )
    stack.enter_context(mon)
    v.after = mon.step
    return v


def grad_norms(setup: Setup, base: nn.Module) -> Variant:
    """The cost floor: one bare multi-tensor norm over the gradients after each backward."""
    v = Variant(setup, base)
    params = [p for p in v.model.parameters() if p.requires_grad]

    def norms() -> None:
        with torch.no_grad():
            torch._foreach_norm([p.grad for p in params if p.grad is not None])

    v.after_backward = norms
    return v


def tb_histograms(stack: contextlib.ExitStack, setup: Setup, base: nn.Module, out: Path) -> Variant:
    from torch.utils.tensorboard import SummaryWriter

    v = Variant(setup, base)
    writer = SummaryWriter(str(out / f"{setup.name}-tb"))
    stack.callback(writer.close)
    named = list(v.model.named_parameters())

    def after(loss: torch.Tensor) -> None:
        for name, p in named:
            writer.add_histogram(name, p.detach(), v.steps)
            if p.grad is not None:
                writer.add_histogram(f"{name}.grad", p.grad, v.steps)

    # zero_grad runs first in the loop, so the gradients are still there when `after` runs
    def end() -> None:  # bill the writer's thread and the garbage to this variant's block
        writer.flush()
        gc.collect()

    v.after = after
    v.end = end
    return v


def wandb_watch(
    stack: contextlib.ExitStack, setup: Setup, base: nn.Module, out: Path
) -> Variant | None:
    if importlib.util.find_spec("wandb") is None:
        return None
    import wandb  # type: ignore[import-not-found]

    v = Variant(setup, base)
    run = wandb.init(mode="offline", dir=str(out), project="monitor-overhead", reinit=True)
    stack.callback(run.finish)
    wandb.watch(v.model, log="all", log_freq=1)

    def after(loss: torch.Tensor) -> None:
        run.log({"loss": float(loss)})

    v.after = after
    return v


# --------------------------------------------------------------------------- timing


@dataclass
class Result:
    """One variant of one model: milliseconds per step and overhead ratios over the rounds."""

    model: str
    variant: str
    ms_per_step: float
    ratio: float
    ratio_min: float
    ratio_max: float
    target: float | None
    note: str = ""


def interleaved(
    variants: dict[str, Variant], rounds: int, blocks: int, seed: int, clock: str = "wall"
) -> dict[str, list[float]]:
    """Per variant, its median ms/step, then its ratio to ``plain`` in each round. Every round runs
    ``alternating_medians`` over the variants in a new random order, so that no variant always
    follows the same one (a variant's leftovers, e.g. garbage to collect, hit the next one)."""
    gen = torch.Generator().manual_seed(seed)
    names = list(variants)
    ratios: dict[str, list[float]] = {name: [] for name in names}
    ms: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = [names[i] for i in torch.randperm(len(names), generator=gen).tolist()]
        medians = alternating_medians(
            {name: variants[name].block for name in order}, blocks, warm_up=r == 0, clock=clock
        )
        for name in names:
            ratios[name].append(medians[name] / medians["plain"])
            ms[name].append(1e3 * medians[name] / BLOCK)
    return {name: [statistics.median(ms[name]), *ratios[name]] for name in names}


def time_setup(setup: Setup, include: list[str], out: Path, clock: str = "wall") -> list[Result]:
    """Two interleaved groups, each with its own plain loop: the monitor's variants, and the
    other tools' (whose cost is far larger and would only widen the first group's spread)."""
    torch.manual_seed(0)
    base = setup.build()
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        ours: dict[str, Variant] = {"plain": Variant(setup, base)}
        if "plain-copy" in include:
            ours["plain-copy"] = Variant(setup, base)  # the noise floor: nothing differs
        if "grad-norms/1" in include:
            ours["grad-norms/1"] = grad_norms(setup, base)  # the cost floor of exact norms
        for name in include:
            if name.split("/")[0] in PRESETS:
                ours[name] = monitored(stack, setup, base, name, out)
        others: dict[str, Variant] = {"plain": Variant(setup, base)}
        if "tb-hist/1" in include:
            others["tb-hist/1"] = tb_histograms(stack, setup, base, out)
        missing = ""
        if "wandb/1" in include:
            watched = wandb_watch(stack, setup, base, out)
            if watched is None:
                missing = "wandb is not installed"
            else:
                others["wandb/1"] = watched
        quick = setup.rounds == 1
        groups = ((ours, setup.rounds, setup.blocks, 0), (others, 1 if quick else 2, 1, 1))
        for group, rounds, blocks, seed in groups:
            if len(group) == 1 and group is others:
                continue
            measured = interleaved(group, rounds, blocks, seed, clock)
            for name, (ms, *ratios) in measured.items():
                if name == "plain" and group is others:
                    continue
                results.append(
                    Result(
                        setup.name,
                        name,
                        ms,
                        statistics.median(ratios),
                        min(ratios),
                        max(ratios),
                        TARGETS.get(name),
                    )
                )
        if missing:
            nan = float("nan")
            results.append(Result(setup.name, "wandb/1", nan, nan, nan, nan, None, missing))
    return results


def table(results: list[Result], *, verdicts: bool = True) -> str:
    head = f"{'model':<9} {'variant':<12} {'ms/step':>8} {'ratio':>7} {'spread':>15} {'target':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        if r.note:
            lines.append(f"{r.model:<9} {r.variant:<12} {'':>8} {'':>7} {'':>15} {'':>7}  {r.note}")
            continue
        target = f"<={r.target:.2f}" if r.target else ""
        verdict = ""
        if verdicts and r.target is not None:
            verdict = "  met" if r.ratio <= r.target else "  missed"
        spread = f"{r.ratio_min:.3f}-{r.ratio_max:.3f}"
        lines.append(
            f"{r.model:<9} {r.variant:<12} {r.ms_per_step:8.2f} {r.ratio:7.3f} {spread:>15} "
            f"{target:>7}{verdict}"
        )
    return "\n".join(lines)


VARIANTS = [
    "plain-copy",
    "grad-norms/1",
    "minimal/1",
    "minimal/10",
    "standard/1",
    "standard/10",
    "full/1",
    "full/10",
    "full/10+h10",
    "tb-hist/1",
    "wandb/1",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models, one round")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per model (default 8)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a shared machine)",
    )
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    chosen = setups(args.quick, args.rounds)
    names = args.models or list(chosen)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"timing {name} ...", file=sys.stderr, flush=True)
            results += time_setup(chosen[name], args.variants, Path(tmp), args.clock)
    print(
        f"Monitor overhead: step time / plain loop's, {BLOCK}-step blocks interleaved, "
        f"{args.clock} clock; plain-copy is the noise floor, grad-norms/1 the cost of reading "
        "every gradient once"
    )
    if args.quick:
        print("--quick: tiny models and one round, a smoke run; the ratios mean nothing here")
    print(table(results, verdicts=not args.quick))
    if args.json is not None:
        rows: list[dict[str, Any]] = [asdict(r) for r in results]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
