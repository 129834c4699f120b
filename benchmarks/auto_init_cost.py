"""What ``auto_init`` costs against building the model, and ``plan_init`` against both.

Models: the five hard configurations of ``trainability.py`` (their full sizes, their 64-row
example batches), ResNet-50 (``_resnets.py``) on 8 images of 3x224x224 and, where
``transformers`` is installed, BERT-base (built from its config, nothing downloaded) on 4
sequences of 128 token ids. Timed per model, alternating (``_timing.alternating_medians``):

- ``rebuild``: the model's builder, i.e. allocation and PyTorch's default init;
- ``forward``: one plain no-grad forward pass on the example batch;
- ``auto_init(calibrate_layers=False)``: trace, plan, draw, residual factors, report;
- ``auto_init``: the same and the calibration pass on the whole batch;
- ``plan_init``: the report alone, on a ``meta``-device twin (nothing drawn).

Targets: ``auto_init(calibrate_layers=False) <= 1.5 x rebuild``; ``auto_init <= rebuild + 1.3
x forward``. An init that observes the model must run it: the structure-only trace runs on the
first two rows of the batch (``stabletrain.graph.STRUCTURE_ROWS``), the calibration on all of
it. Where a target is missed the table says which, and the reason is in the profile: run
``python -m cProfile -s cumulative benchmarks/auto_init_cost.py --models resnet50``.

Run ``python benchmarks/auto_init_cost.py`` (a few minutes on 2 cores), ``--quick`` for a smoke
run (the quick sizes, a tiny ResNet and BERT, one round), ``--json PATH`` to keep the rows.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import stabletrain as st
from _resnets import resnet50
from _timing import alternating_medians
from _zoo import import_transformers
from trainability import FULL, QUICK, configs, example_batch

REBUILD_TARGET = 1.5  # auto_init(calibrate_layers=False) / rebuild
FORWARD_TARGET = 1.3  # auto_init <= rebuild + FORWARD_TARGET x forward


@dataclass(frozen=True)
class Case:
    """A model builder, its example batch and the auto_init arguments it is benchmarked with."""

    name: str
    build: Callable[[], nn.Module]
    example: Any
    options: dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One model's medians (ms) and the two target ratios."""

    model: str
    rebuild_ms: float
    forward_ms: float
    no_calibration_ms: float
    auto_init_ms: float
    plan_ms: float
    no_calibration_ratio: float  # auto_init(calibrate_layers=False) / rebuild
    calibrated_ratio: float  # auto_init / (rebuild + FORWARD_TARGET x forward)


def cases(quick: bool, only: list[str] | None) -> Iterator[Case]:
    """The trainability configurations, ResNet-50 and BERT-base (tiny ones with ``quick``);
    with ``only``, those whose names contain one of its strings."""

    def wanted(name: str) -> bool:
        return not only or any(part in name for part in only)

    for config in configs(QUICK if quick else FULL, 0):
        if wanted(config.name):
            options = {"residual": config.residual, "looks_linear": config.looks_linear}
            yield Case(config.name, config.build, example_batch(config, 0), options)
    if wanted("resnet50"):
        images = torch.randn(2 if quick else 8, 3, 64 if quick else 224, 64 if quick else 224)
        yield Case("resnet50", resnet50, images, {})
    if not wanted("bert-base"):
        return
    try:
        transformers = import_transformers()
    except ImportError:
        return
    config = (
        transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4)
        if quick
        else transformers.BertConfig()
    )
    ids = torch.randint(0, config.vocab_size, (2 if quick else 4, 16 if quick else 128))
    yield Case("bert-base", lambda: transformers.BertModel(config), {"input_ids": ids}, {})


def _forward(model: nn.Module, example: Any) -> None:
    with torch.no_grad():
        st.graph.call_model(model, example)


def measure(case: Case, repeats: int) -> Row:
    """The medians of the five variants, alternated ``repeats`` times after a warm-up each."""
    torch.manual_seed(0)
    model = case.build()
    run = functools.partial(st.auto_init, model, case.example, **case.options)
    ms = {
        name: seconds * 1e3
        for name, seconds in alternating_medians(
            {
                "rebuild": case.build,
                "forward": functools.partial(_forward, model, case.example),
                "no_calibration": functools.partial(run, calibrate_layers=False),
                "auto_init": run,
                "plan": functools.partial(st.plan_init, model, case.example, **case.options),
            },
            repeats,
        ).items()
    }
    return Row(
        case.name,
        ms["rebuild"],
        ms["forward"],
        ms["no_calibration"],
        ms["auto_init"],
        ms["plan"],
        ms["no_calibration"] / ms["rebuild"],
        ms["auto_init"] / (ms["rebuild"] + FORWARD_TARGET * ms["forward"]),
    )


def format_row(row: Row) -> str:
    """One line of the table, with the targets a row misses named at its end."""
    missed = [
        name
        for name, ratio in (
            ("rebuild", row.no_calibration_ratio),
            ("forward", row.calibrated_ratio),
        )
        if ratio > (REBUILD_TARGET if name == "rebuild" else 1.0)
    ]
    return (
        f"{row.model:<18} {row.rebuild_ms:>9.1f} {row.forward_ms:>9.1f} "
        f"{row.no_calibration_ms:>9.1f} {row.auto_init_ms:>9.1f} {row.plan_ms:>9.1f} "
        f"{row.no_calibration_ratio:>8.2f} {row.calibrated_ratio:>8.2f}"
        + (f"  misses: {', '.join(missed)}" if missed else "")
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, time every model, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small models, one round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="names containing these")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)  # a deep ReLU net's vanishing activations are denormal
    repeats = 1 if args.quick else args.repeats
    print(f"auto_init cost, ms (median of {repeats} interleaved rounds)")
    print(
        f"{'model':<18} {'rebuild':>9} {'forward':>9} {'no calib':>9} {'auto_init':>9} "
        f"{'plan':>9} {'/rebuild':>8} {'/floor':>8}"
    )
    rows = []
    for case in cases(args.quick, args.models):
        rows.append(measure(case, repeats))
        print(format_row(rows[-1]), flush=True)
    print(
        f"targets: no calib <= {REBUILD_TARGET} x rebuild (/rebuild); auto_init <= rebuild + "
        f"{FORWARD_TARGET} x forward (/floor <= 1)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
