"""``stabletrain schemes``: the initialization schemes at work on a deep plain network.

Prints the gain table, then the standard deviation of the pre-activations at several depths of a
plain MLP (no normalization, no residuals) for each scheme of the tutorials, so the claims can be
read off: constant init keeps one distinct unit (I1), small random init and the "standard" init
vanish with depth (I3, I4), Xavier suits tanh and shrinks ReLU (I6, I7), He suits ReLU (I7).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import cast

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from stabletrain._fit import Cell, Col, FitTable
from stabletrain.cli._commands import COMMANDS
from stabletrain.cli._load import check_int
from stabletrain.cli._out import add_output_options, print_json
from stabletrain.cli.gains import gain_table, gains_json
from stabletrain.init import (
    constant_,
    he_normal_,
    orthogonal_,
    small_random_,
    standard_,
    xavier_normal_,
)
from stabletrain.init.gain import ACTIVATIONS as ACTIVATION_NAMES
from stabletrain.init.gain import ActivationLike, activation_name, gain
from stabletrain.init.policy import auto_init
from stabletrain.models import mlp

Scheme = Callable[[torch.Tensor, ActivationLike, torch.Generator], object]

MAX_DEPTH = 1000  # 21 profiles of this many layers, then 4 MLPs: minutes at width 256
MAX_WIDTH = 4096  # a 4096×4096 weight per layer; the claims show from width 64

SCHEMES: dict[str, Scheme] = {
    "constant 0.01": lambda w, act, g: constant_(w, 0.01),
    "small random 0.01": lambda w, act, g: small_random_(w, generator=g),
    "standard U(±1/√n)": lambda w, act, g: standard_(w, generator=g),
    "Xavier": lambda w, act, g: xavier_normal_(w, generator=g),
    "He (gain √2)": lambda w, act, g: he_normal_(w, generator=g),
    "He (exact gain)": lambda w, act, g: he_normal_(w, nonlinearity=act, generator=g),
    "orthogonal (exact gain)": lambda w, act, g: orthogonal_(w, gain(act), generator=g),
}


def depth_profile(
    scheme: Scheme,
    activation: Callable[[torch.Tensor], torch.Tensor],
    *,
    depth: int,
    width: int,
    batch: int = 512,
    seed: int = 0,
) -> tuple[list[float], int]:
    """Pre-activation std at every layer of a plain MLP, and the distinct units of its last layer.

    ``z_0 ~ N(0, 1)`` plays the part of a unit-variance pre-activation; layer ``l`` computes
    ``z_l = W_l f(z_{l-1})`` with bias-free weights drawn by ``scheme``. Distinct units are
    counted on the last layer scaled to max 1, rounded to 4 decimals.
    """
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, width, generator=g)
    stds, z = [], h
    for _ in range(depth):
        w = torch.empty(width, width)
        scheme(w, activation, g)
        z = activation(z) @ w.T  # (batch, width)
        stds.append(float(z.std()))
    scaled = z / z.abs().max().clamp_min(torch.finfo(z.dtype).tiny)
    distinct = int(torch.unique(scaled.round(decimals=4), dim=1).shape[1])
    return stds, distinct


Advance = Callable[[], object]


def _nothing() -> None:
    return None


def profile_rows(
    activation: ActivationLike, depths: Sequence[int], width: int, advance: Advance = _nothing
) -> list[dict[str, object]]:
    """Per scheme: ``{"init", "std": {depth: std}, "units"}`` of a plain ``activation`` MLP;
    ``advance`` is called after each scheme (a progress bar)."""
    name = activation_name(activation)
    fn = activation if callable(activation) else getattr(torch.nn.functional, name)
    rows: list[dict[str, object]] = []
    for label, scheme in SCHEMES.items():
        stds, distinct = depth_profile(scheme, fn, depth=max(depths), width=width)
        rows.append({"init": label, "std": {d: stds[d - 1] for d in depths}, "units": distinct})
        advance()
    return rows


def profile_table(
    activation: ActivationLike,
    depths: Sequence[int],
    width: int,
    rows: list[dict[str, object]] | None = None,
) -> FitTable:
    """One row per scheme: pre-activation std at ``depths`` of a plain ``activation`` MLP."""
    name = activation_name(activation)
    data = profile_rows(activation, depths, width) if rows is None else rows
    columns = [
        Col("init", justify="left", key=True),
        *(Col(f"layer {d}") for d in depths),
        Col("units"),
    ]
    cells: list[list[Cell]] = [
        [
            Text(str(r["init"])),
            *(f"{std:.2g}" for std in cast(dict[int, float], r["std"]).values()),
            str(r["units"]),
        ]
        for r in data
    ]
    title = f"Plain {name} MLP, width {width}: std of pre-activations by layer"
    return FitTable(columns, cells, title=title)


def last_hidden_std(model: torch.nn.Module, x: torch.Tensor, layer: str) -> float:
    """Input-dependent std of ``layer``'s output on ``x``: per unit over the batch, averaged.

    A bias-driven constant is not signal: with torch's default init a deep plain net's
    output varies across units but hardly with the input.
    """
    seen: list[float] = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda module, args, out: seen.append(float(out.std(dim=0).mean()))
    )
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return seen[0]


def auto_init_rows(depth: int, width: int, advance: Advance = _nothing) -> list[dict[str, object]]:
    """PyTorch's default init against auto_init on plain MLPs of each activation: the
    input-dependent std at layer ``depth``, the scheme and gain chosen, the calibration."""
    g = torch.Generator().manual_seed(0)
    x, fresh = torch.randn(256, width, generator=g), torch.randn(512, width, generator=g)
    rows: list[dict[str, object]] = []
    for act in ("tanh", "relu", "gelu", "silu"):
        torch.manual_seed(0)
        model = mlp(width, 10, depth=depth, width=width, activation=act)
        default = last_hidden_std(model, fresh, f"linear{depth}")
        report = auto_init(model, x, generator=g)
        first = report["linear1.weight"]
        scales = [p.calibration for p in report.params if p.calibration is not None]
        rows.append(
            {
                "activation": act,
                "torch_default": default,
                "auto_init": last_hidden_std(model, fresh, f"linear{depth}"),
                "scheme": first.scheme,
                "gain": first.gain,
                "calibration": [min(scales), max(scales)] if scales else None,
            }
        )
        advance()
    return rows


def auto_init_table(
    depth: int, width: int, rows: list[dict[str, object]] | None = None
) -> FitTable:
    """PyTorch's default init against auto_init on plain MLPs of each activation."""
    data = auto_init_rows(depth, width) if rows is None else rows
    columns = (
        Col("activation", justify="left", key=True),
        Col("torch default"),
        Col("auto_init"),
        Col("scheme, gain", justify="left"),
        Col("calibration", drop=1),
    )
    cells: list[list[Cell]] = []
    for r in data:
        scales = cast("list[float] | None", r["calibration"])
        cells.append(
            [
                Text(str(r["activation"])),
                f"{cast(float, r['torch_default']):.2g}",
                f"{cast(float, r['auto_init']):.2g}",
                Text(f"{r['scheme']} {cast(float, r['gain']):.4g}"),
                f"×{scales[0]:.2f}–{scales[1]:.2f}" if scales else "none",
            ]
        )
    title = f"Input-dependent std at layer {depth} of a plain MLP, width {width}, fresh batch"
    return FitTable(columns, cells, title=title)


ACTIVATIONS = (torch.tanh, torch.relu, torch.nn.functional.gelu)


def run(args: argparse.Namespace) -> int:
    """Print the gain table, the depth profiles and auto_init against torch's default (or,
    with ``--json``, the same numbers as JSON on stdout); a progress bar on stderr."""
    check_int("--depth", args.depth, low=1, high=MAX_DEPTH)
    check_int("--width", args.width, low=1, high=MAX_WIDTH)
    console = Console(quiet=args.quiet or args.json)
    depths = sorted({d for d in (1, 10, args.depth // 2, args.depth) if 1 <= d <= args.depth})
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    steps = len(ACTIVATIONS) * len(SCHEMES) + 4
    with Progress(
        *columns, console=Console(stderr=True), transient=True, disable=args.quiet
    ) as bar:
        task = bar.add_task(f"schemes at depth {args.depth}", total=steps)

        def advance() -> None:
            bar.advance(task)

        profiles = {
            activation_name(act): profile_rows(act, depths, args.width, advance)
            for act in ACTIVATIONS
        }
        versus = auto_init_rows(args.depth, args.width, advance)
    if args.json:
        print_json(
            {
                "depth": args.depth,
                "width": args.width,
                "gains": gains_json(ACTIVATION_NAMES),
                "profiles": profiles,
                "auto_init": versus,
            }
        )
        return 0
    console.print(gain_table())
    for act in ACTIVATIONS:
        console.print(profile_table(act, depths, args.width, profiles[activation_name(act)]))
    console.print(auto_init_table(args.depth, args.width, versus))
    console.print(
        "Read: a scheme keeps the signal when its std stays near 1 at every depth. "
        "'units' counts the distinct units of the last layer: fewer than the width means units "
        "are copies of each other (claim I1)."
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``schemes``."""
    parser = sub.add_parser("schemes", help=COMMANDS["schemes"])
    parser.add_argument(
        "--depth", type=int, default=50, help=f"number of layers, 1 to {MAX_DEPTH} (default 50)"
    )
    parser.add_argument(
        "--width", type=int, default=256, help=f"units per layer, 1 to {MAX_WIDTH} (default 256)"
    )
    add_output_options(parser, json_help="the numbers of every table as JSON on stdout")
    parser.set_defaults(handler=run)
