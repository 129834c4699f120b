"""Speed of stabletrain's initializers against their ``torch.nn.init`` equivalents.

Each stabletrain scheme is paired with the ``torch.nn.init`` call that draws the same
distribution (``standard_`` with ``kaiming_uniform_(a=√5)``, ``lecun_*`` with ``kaiming_*`` and
``nonlinearity="linear"``, the truncated ``variance_scaling_`` with ``trunc_normal_`` at the
rescaled std, ``identity_`` with ``eye_``, ...). Both members of a pair are timed in the same
run, on the same preallocated tensors, on two workloads:

- ``4096x4096``: one float32 matrix (a large Linear weight);
- ``resnet50``: every conv and linear weight of a ResNet-50 (54 tensors, 25.5M values), all
  initialized once per timing, so per-call Python overhead counts as it does in a real model.

Each function is warmed up once, then the two are run alternately (the order flips every repeat)
and the median of each is kept: 7 repeats, 21 for runs under 20 ms (memory-bound fills, whose
times swing most with page faults on a shared machine), 3 for ``orthogonal_``. Timings use
``time.perf_counter`` with the default number of torch threads.

Reading the table: ``ratio = stabletrain ms / torch ms``. 1.0 is parity, above 1 stabletrain is
slower. The target is ``ratio <= 1.1`` for every scheme; rows above it are flagged. The last line
is the geometric mean of the ratios over all rows except ``orthogonal_``, whose time is a QR
decomposition that dominates everything else and is reported separately. Ratios of sub-0.1 ms
rows are noisy: look at the ResNet-50 rows for per-call overhead.

Run ``python benchmarks/init_speed.py`` (a few minutes on 2 cores), ``--quick`` for a smoke test,
``--json PATH`` to also write the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import init as tinit

from _timing import alternating_medians
from stabletrain import init as st

InitFn = Callable[[torch.Tensor], object]
Shape = tuple[int, ...]

TARGET_RATIO = 1.1
# Std of N(0, 1) truncated to [-2, 2]: variance_scaling_'s truncated normal divides by it.
TWO_SIGMA_STD = 0.8796256610342398
# Runs faster than CHEAP_S (memory-bound fills, the few 2-D tensors of identity_) are dominated by
# page faults and scheduling noise on a shared machine: they get CHEAP_FACTOR times the repeats.
CHEAP_S = 0.02
CHEAP_FACTOR = 3


@dataclass(frozen=True)
class Pair:
    """A stabletrain initializer and the torch.nn.init call drawing the same distribution."""

    scheme: str
    stabletrain: InitFn
    torch: InitFn
    conv_only: bool = False  # dirac_: 3- to 5-D weights only
    matrix_only: bool = False  # identity_ / eye_: 2-D weights only
    expensive: bool = False  # orthogonal_: a QR per tensor


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    scheme: str
    workload: str
    torch_ms: float
    stabletrain_ms: float
    ratio: float
    repeats: int


def resnet50_shapes() -> list[Shape]:
    """Conv and linear weight shapes of a ResNet-50 (He et al. 2016), in layer order.

    Stem 7x7 conv; stages of [3, 4, 6, 3] bottlenecks (1x1 reduce, 3x3, 1x1 expand by 4) with
    widths 64/128/256/512; a 1x1 downsample conv in each stage's first block; fc 1000x2048.
    """
    shapes: list[Shape] = [(64, 3, 7, 7)]
    in_ch = 64
    for blocks, width in zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True):
        out_ch = width * 4
        for block in range(blocks):
            shapes += [(width, in_ch, 1, 1), (width, width, 3, 3), (out_ch, width, 1, 1)]
            if block == 0:
                shapes.append((out_ch, in_ch, 1, 1))
            in_ch = out_ch
    shapes.append((1000, 2048))
    return shapes


def workloads() -> dict[str, list[torch.Tensor]]:
    """The tensors each workload initializes, allocated once and reused by every timing."""
    return {
        "4096x4096": [torch.empty(4096, 4096)],
        "resnet50": [torch.empty(shape) for shape in resnet50_shapes()],
    }


def torch_truncated_variance_scaling(tensor: torch.Tensor) -> torch.Tensor:
    """``variance_scaling_(w, 1.0, "fan_in", "truncated_normal")`` with torch's trunc_normal_."""
    parent = 1.0 / math.sqrt(st.compute_fans(tensor).fan_in) / TWO_SIGMA_STD
    return tinit.trunc_normal_(tensor, 0.0, parent, -2 * parent, 2 * parent)


def pairs() -> list[Pair]:
    """Every scheme with its torch equivalent."""
    return [
        Pair("zeros_", st.zeros_, tinit.zeros_),
        Pair("constant_", lambda w: st.constant_(w, 0.5), lambda w: tinit.constant_(w, 0.5)),
        Pair("normal_", lambda w: st.normal_(w, 0.0, 0.02), lambda w: tinit.normal_(w, 0.0, 0.02)),
        Pair(
            "uniform_",
            lambda w: st.uniform_(w, -0.1, 0.1),
            lambda w: tinit.uniform_(w, -0.1, 0.1),
        ),
        Pair("small_random_", st.small_random_, lambda w: tinit.normal_(w, 0.0, 0.01)),
        Pair("standard_", st.standard_, lambda w: tinit.kaiming_uniform_(w, a=math.sqrt(5))),
        Pair("xavier_uniform_", st.xavier_uniform_, tinit.xavier_uniform_),
        Pair("xavier_normal_", st.xavier_normal_, tinit.xavier_normal_),
        Pair(
            "he_uniform_",
            lambda w: st.he_uniform_(w, nonlinearity="relu"),
            lambda w: tinit.kaiming_uniform_(w, nonlinearity="relu"),
        ),
        Pair(
            "he_normal_",
            lambda w: st.he_normal_(w, nonlinearity="relu"),
            lambda w: tinit.kaiming_normal_(w, nonlinearity="relu"),
        ),
        Pair(
            "lecun_uniform_",
            st.lecun_uniform_,
            lambda w: tinit.kaiming_uniform_(w, nonlinearity="linear"),
        ),
        Pair(
            "lecun_normal_",
            st.lecun_normal_,
            lambda w: tinit.kaiming_normal_(w, nonlinearity="linear"),
        ),
        Pair(
            "variance_scaling_",
            lambda w: st.variance_scaling_(w, 1.0, "fan_in", "truncated_normal"),
            torch_truncated_variance_scaling,
        ),
        Pair(
            "trunc_normal_",
            lambda w: st.trunc_normal_(w, std=0.02, a=-0.04, b=0.04),
            lambda w: tinit.trunc_normal_(w, std=0.02, a=-0.04, b=0.04),
        ),
        Pair("orthogonal_", st.orthogonal_, tinit.orthogonal_, expensive=True),
        Pair("identity_", st.identity_, tinit.eye_, matrix_only=True),
        Pair("dirac_", st.dirac_, tinit.dirac_, conv_only=True),
    ]


def applicable(pair: Pair, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors of a workload that ``pair`` can initialize (all of them for most schemes)."""
    if pair.matrix_only:
        return [t for t in tensors if t.dim() == 2]
    if pair.conv_only:
        return [t for t in tensors if 3 <= t.dim() <= 5]
    return list(tensors)


def time_once(fn: InitFn, tensors: Sequence[torch.Tensor]) -> float:
    """Seconds to initialize every tensor of ``tensors`` with ``fn``."""
    start = time.perf_counter()
    for tensor in tensors:
        fn(tensor)
    return time.perf_counter() - start


def warm_up(pair: Pair, tensors: Sequence[torch.Tensor]) -> float:
    """Run both functions once (touching every page, filling caches); the faster one's seconds."""
    return min(time_once(pair.torch, tensors), time_once(pair.stabletrain, tensors))


def time_pair(pair: Pair, tensors: Sequence[torch.Tensor], repeats: int) -> tuple[float, float]:
    """Median seconds of (torch, stabletrain) over ``repeats`` alternating runs of each.

    The order flips every repeat, so drifts in machine speed hit both functions alike.
    """
    medians = alternating_medians(
        {
            "torch": lambda: time_once(pair.torch, tensors),
            "stabletrain": lambda: time_once(pair.stabletrain, tensors),
        },
        repeats,
        warm_up=False,  # warm_up() already ran both
    )
    return medians["torch"], medians["stabletrain"]


def repeats_for(pair: Pair, warm_up_s: float, repeats: int, expensive_repeats: int) -> int:
    """Fewer repeats for orthogonal_'s QR, more for sub-CHEAP_S runs, whose times are noisiest."""
    if pair.expensive:
        return expensive_repeats
    return repeats * CHEAP_FACTOR if warm_up_s < CHEAP_S else repeats


def run(repeats: int, expensive_repeats: int) -> list[Row]:
    """Time every applicable (pair, workload) and return one row each."""
    rows: list[Row] = []
    for workload, all_tensors in workloads().items():
        for pair in pairs():
            tensors = applicable(pair, all_tensors)
            if not tensors:
                continue
            n = repeats_for(pair, warm_up(pair, tensors), repeats, expensive_repeats)
            torch_s, ours_s = time_pair(pair, tensors, n)
            row = Row(pair.scheme, workload, torch_s * 1e3, ours_s * 1e3, ours_s / torch_s, n)
            print(f"  {row.workload:<10} {row.scheme:<18} {row.ratio:5.2f}x", flush=True)
            rows.append(row)
    return rows


def geometric_mean_ratio(rows: Sequence[Row]) -> float:
    """Geometric mean of the ratios of every row but orthogonal_'s."""
    return statistics.geometric_mean(r.ratio for r in rows if r.scheme != "orthogonal_")


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table, rows above the target flagged."""
    header = f"{'scheme':<18} {'workload':<10} {'torch ms':>10} {'stabletrain ms':>15} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        flag = f"  > {TARGET_RATIO}x" if r.ratio > TARGET_RATIO else ""
        lines.append(
            f"{r.scheme:<18} {r.workload:<10} {r.torch_ms:>10.3f} {r.stabletrain_ms:>15.3f} "
            f"{r.ratio:>6.2f}x{flag}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"geometric mean ratio (all but orthogonal_): {geometric_mean_ratio(rows):.3f}x "
        f"(target <= {TARGET_RATIO}x)"
    )
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row]) -> None:
    """Write the rows, the geometric mean and the setup to ``path``."""
    payload = {
        "torch_version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "geometric_mean_ratio": geometric_mean_ratio(rows),
        "rows": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run the benchmark, print the table (and write the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows here")
    args = parser.parse_args(argv)
    repeats, expensive_repeats = (3, 1) if args.quick else (7, 3)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{repeats} repeats ({repeats * CHEAP_FACTOR} under {CHEAP_S * 1e3:g} ms, "
        f"{expensive_repeats} for orthogonal_), medians reported",
        flush=True,
    )
    rows = run(repeats, expensive_repeats)
    print()
    print(format_table(rows))
    if args.json is not None:
        write_json(args.json, rows)
        print(f"rows written to {args.json}")


if __name__ == "__main__":
    main()
