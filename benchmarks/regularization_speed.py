"""Step-time cost of stabletrain's optimizer hooks: decoupled decay, proximal L1, max-norm.

Three comparisons, each against a baseline timed in the same run on an identical copy of the
same parameters, with the same fixed gradients (only ``optimizer.step()`` is timed):

- ``decoupled``: ``Adam(foreach=True)`` + :func:`decouple_weight_decay` against
  ``AdamW(foreach=True)`` (the same arithmetic: the target is ``ratio <= 1.05``);
- ``proximal-l1``: ``Adam(foreach=True)`` + :func:`proximal_l1` against the plain Adam step
  (the ratio is the relative cost of the extra soft-thresholding pass);
- ``max-norm``: ``Adam(foreach=True)`` + :func:`max_norm_constraint` against the plain Adam step.

Parameters are split by :func:`param_groups` (weights decay, biases do not), on two workloads:

- ``mlp-10x1024``: ten ``Linear(1024, 1024)`` layers, 10.5M values in 20 tensors;
- ``many-small``: two hundred ``Linear(64, 64)`` layers, 0.83M values in 400 tensors, where
  per-tensor Python overhead dominates.

Timing: each sample is ``steps`` calls of ``step()``; ``alternating_medians`` (from
``_timing.py``) interleaves the two sides round by round and keeps the median of each. That is
done in ``blocks`` independent blocks; the table reports the median ratio over the blocks and
their min–max spread. The machine may be shared with other work: read the spread before the
ratio. ``ratio = with-hook ms / baseline ms``; above 1 the hook costs time.

One torch thread by default (``--threads``): on a loaded machine a multi-threaded kernel waits
for a busy core's time slice, which turned a 0.3 ms step into 250 ms in trials, and the ratios
of hooks that add kernels would measure that wait rather than their cost.

Run ``python benchmarks/regularization_speed.py`` (about a minute on 2 cores), ``--quick`` for
a smoke test on small models, ``--json PATH`` to also write the rows.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from _timing import alternating_medians
from stabletrain.regularization.decoupled import decouple_weight_decay
from stabletrain.regularization.max_norm import max_norm_constraint
from stabletrain.regularization.param_groups import param_groups
from stabletrain.regularization.proximal import proximal_l1

DECOUPLED_TARGET = 1.05
LR, WEIGHT_DECAY, L1, MAX_NORM = 1e-3, 0.01, 1e-4, 3.0

MakeOptimizer = Callable[[nn.Module], torch.optim.Optimizer]
Handle = AbstractContextManager[object]  # the handle of a hook: ``with`` removes it
MakeHooked = Callable[[nn.Module], tuple[torch.optim.Optimizer, Handle]]


@dataclass(frozen=True)
class Settings:
    """How much to time: workload sizes and the number of samples."""

    mlp: tuple[int, int]  # (layers, width)
    small: tuple[int, int]  # (layers, width)
    steps: int  # step() calls per timed sample
    repeats: int  # rounds per block
    blocks: int


FULL = Settings(mlp=(10, 1024), small=(200, 64), steps=5, repeats=7, blocks=5)
QUICK = Settings(mlp=(4, 256), small=(20, 32), steps=1, repeats=3, blocks=2)


@dataclass(frozen=True)
class Row:
    """One comparison on one workload."""

    comparison: str
    workload: str
    baseline: str
    baseline_ms: float
    hooked_ms: float
    ratio: float
    ratio_min: float
    ratio_max: float


def workloads(settings: Settings) -> dict[str, nn.Module]:
    """The models whose parameters are stepped, seeded."""
    torch.manual_seed(0)
    (depth, width), (count, small) = settings.mlp, settings.small
    return {
        f"mlp-{depth}x{width}": nn.Sequential(*(nn.Linear(width, width) for _ in range(depth))),
        "many-small": nn.Sequential(*(nn.Linear(small, small) for _ in range(count))),
    }


def with_grads(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters hold fixed random gradients."""
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)
    return model


def adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(param_groups(model, WEIGHT_DECAY), lr=LR, foreach=True)


def adam_without_decay(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(param_groups(model, 0.0), lr=LR, foreach=True)


def adamw(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=LR, foreach=True)


def comparisons() -> dict[str, tuple[str, MakeOptimizer, MakeHooked]]:
    """name -> (baseline's name, baseline optimizer, optimizer with the hook and its handle)."""

    def decoupled(model: nn.Module) -> tuple[torch.optim.Optimizer, Handle]:
        opt = adam(model)
        return opt, decouple_weight_decay(opt)

    def proximal(model: nn.Module) -> tuple[torch.optim.Optimizer, Handle]:
        opt = adam_without_decay(model)
        return opt, proximal_l1(opt, L1)

    def max_norm(model: nn.Module) -> tuple[torch.optim.Optimizer, Handle]:
        opt = adam_without_decay(model)
        return opt, max_norm_constraint(opt, model, MAX_NORM)

    return {
        "decoupled": ("AdamW", adamw, decoupled),
        "proximal-l1": ("Adam", adam_without_decay, proximal),
        "max-norm": ("Adam", adam_without_decay, max_norm),
    }


def stepper(opt: torch.optim.Optimizer, steps: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(steps):
            opt.step()

    return run


def time_comparison(name: str, workload: str, model: nn.Module, settings: Settings) -> Row:
    """Median step times of baseline and hooked optimizer, in interleaved blocks."""
    baseline_name, make_baseline, make_hooked = comparisons()[name]
    hooked, handle = make_hooked(with_grads(model))
    fns = {
        "baseline": stepper(make_baseline(with_grads(model)), settings.steps),
        "hooked": stepper(hooked, settings.steps),
    }
    with handle:
        blocks = [alternating_medians(fns, settings.repeats) for _ in range(settings.blocks)]
    ratios = [b["hooked"] / b["baseline"] for b in blocks]
    per_step = 1e3 / settings.steps
    return Row(
        name,
        workload,
        baseline_name,
        statistics.median(b["baseline"] for b in blocks) * per_step,
        statistics.median(b["hooked"] for b in blocks) * per_step,
        statistics.median(ratios),
        min(ratios),
        max(ratios),
    )


def run(settings: Settings) -> list[Row]:
    """Every comparison on every workload."""
    rows = []
    for workload, model in workloads(settings).items():
        for name in comparisons():
            row = time_comparison(name, workload, model, settings)
            print(f"  {row.workload:<14} {row.comparison:<12} {row.ratio:5.3f}x", flush=True)
            rows.append(row)
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table; a decoupled row above its target is flagged."""
    header = (
        f"{'comparison':<12} {'workload':<14} {'baseline':<8} {'baseline ms':>12} "
        f"{'hooked ms':>10} {'ratio':>7} {'spread (min-max)':>17}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        over = r.comparison == "decoupled" and r.ratio > DECOUPLED_TARGET
        flag = f"  > {DECOUPLED_TARGET}x" if over else ""
        lines.append(
            f"{r.comparison:<12} {r.workload:<14} {r.baseline:<8} {r.baseline_ms:>12.3f} "
            f"{r.hooked_ms:>10.3f} {r.ratio:>6.3f}x {r.ratio_min:>8.3f}-{r.ratio_max:.3f}x{flag}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"ratio = hooked / baseline step time (median over blocks); decoupled target <= "
        f"{DECOUPLED_TARGET}x"
    )
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row], settings: Settings) -> None:
    """Write the rows and the setup to ``path``."""
    payload = {
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "settings": asdict(settings),
        "rows": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run the benchmark, print the table (and write the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small models, for a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows here")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1, see above)"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {settings.blocks} blocks "
        f"of {settings.repeats} interleaved rounds of {settings.steps} step(s), medians reported",
        flush=True,
    )
    rows = run(settings)
    print()
    print(format_table(rows))
    if args.json is not None:
        write_json(args.json, rows, settings)
        print(f"rows written to {args.json}")


if __name__ == "__main__":
    main()
