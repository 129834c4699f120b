"""Init methods on real architectures: the family's own init, PyTorch's defaults and auto_init,
trained side by side on the zoo's tiny models (``_zoo.py``: Hugging Face, timm, nanoGPT).

For every model of the zoo that builds here and every init:

- ``own``: the model as its family builds it (Hugging Face ``_init_weights``, timm's
  ``init_weights``, nanoGPT's N(0, 0.02) with scaled residual projections).
- ``torch``: ``reset_parameters()`` on every submodule that has one (PyTorch's defaults; modules
  without one, such as Hugging Face RMSNorms, keep the family's values).
- ``auto_init``: ``stabletrain.auto_init(model, example)`` on the example batch (the first
  training batch's input).

the run measures, with the same seeds, data and steps for every init:

- the loss at step 0, and after ``steps`` (100 and 300) AdamW steps (lr 1e-3, weight decay
  0.01, batch 16, no clipping, no schedule), averaged over ``seeds`` (0, 1, 2: the model's
  draw, the init's generator and the data; one seed's loss@300 on a vision model moves by up
  to 10% between seeds, more than the 2% the target resolves). Each loss is measured on one
  fixed held-out batch of 256 per seed in training mode (BatchNorm uses the batch's
  statistics, as in training; running statistics are restored afterwards; dropout masks
  seeded), so the columns compare;
- the largest stable learning rate of a x2 sweep from 6.4e-2 down to 1.25e-4, ``sweep_steps``
  (100) steps each: a run is stable when its final held-out loss is finite and below its
  step-0 value and ln(classes) (an init that starts far above chance does not count as stable
  for falling back towards chance). The sweep goes down from the largest rate and stops at
  the first stable one (it assumes stability is monotone in the rate; each run starts from the
  same init, seed 0).

Then the targets: auto_init's step-0 loss ≤ 1.05 ln(classes) on every model; after the last
step auto_init's loss ≤ 1.02 x own on at least 90% of the models; the largest stable rate of
auto_init ≥ own's on at least 80%. A model whose build or init raises reports the error in its
row and counts as a miss.

``--quick`` runs 5 and 10 steps of batch 8, a sweep of two rates of 5 steps, on ``nanogpt`` unless
``--models`` says otherwise: the smoke test. ``--processes 2`` runs two models at once (only
when nobody else is benchmarking on the machine); each process uses one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import stabletrain
from _zoo import ZOO, Spec, unavailable

INITS = ("own", "torch", "auto_init")
SWEEP = tuple(6.4e-2 / 2**k for k in range(10))  # 6.4e-2 ... 1.25e-4


@dataclass(frozen=True)
class Budget:
    """Steps and rates of one run: ``steps`` are the checkpoints of the main run."""

    steps: tuple[int, ...] = (100, 300)
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch: int = 16
    eval_batch: int = 256
    sweep: tuple[float, ...] = SWEEP
    sweep_steps: int = 100
    seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)


QUICK = Budget(
    steps=(5, 10), sweep=(6.4e-2, 1e-3), sweep_steps=5, batch=8, eval_batch=8, seeds=(0,)
)


@dataclass
class Row:
    """One (model, init): losses at step 0 and at each checkpoint (means over the seeds; the
    spread is the largest minus the smallest seed's last loss), the largest stable rate."""

    model: str
    init: str
    classes: int
    step0: float = math.nan
    losses: dict[int, float] = field(default_factory=dict)
    max_stable_lr: float | None = None
    spread: float = math.nan
    error: str | None = None
    seconds: float = 0.0


# --------------------------------------------------------------------------- one run


def initialized(spec: Spec, init: str, budget: Budget) -> nn.Module:
    """The model built with seed ``budget.seed``, then initialized by ``init``."""
    torch.manual_seed(budget.seed)
    model = spec.build()
    if init == "torch":
        torch.manual_seed(budget.seed)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    elif init == "auto_init":
        example, _ = spec.batch(torch.Generator().manual_seed(budget.seed), budget.batch)
        stabletrain.auto_init(model, example, generator=torch.Generator().manual_seed(budget.seed))
    elif init != "own":
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    return model


def held_out_loss(spec: Spec, model: nn.Module, batch: tuple[Any, torch.Tensor]) -> float:
    """Training-mode loss on ``batch`` without a gradient; buffers (BatchNorm's running
    statistics) restored, dropout seeded so every checkpoint sees the same masks."""
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    rng = torch.random.get_rng_state()
    torch.manual_seed(12345)
    try:
        with torch.no_grad():
            return float(spec.loss(model, *batch))
    finally:
        torch.random.set_rng_state(rng)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])


def train(
    spec: Spec, model: nn.Module, budget: Budget, lr: float, checkpoints: Sequence[int]
) -> tuple[float, dict[int, float]]:
    """AdamW from the given model; the held-out loss at step 0 and at each checkpoint
    (NaN from the first non-finite loss on)."""
    held_out = spec.batch(torch.Generator().manual_seed(budget.seed + 1), budget.eval_batch)
    data = torch.Generator().manual_seed(budget.seed + 2)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=budget.weight_decay)
    torch.manual_seed(budget.seed)  # dropout masks
    model.train()
    step0 = held_out_loss(spec, model, held_out)
    losses: dict[int, float] = {}
    for step in range(1, max(checkpoints) + 1):
        loss = spec.loss(model, *spec.batch(data, budget.batch))
        if not torch.isfinite(loss):
            return step0, {c: losses.get(c, math.nan) for c in checkpoints}
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if step in checkpoints:
            losses[step] = held_out_loss(spec, model, held_out)
    return step0, losses


def seeds_mean(spec: Spec, init: str, budget: Budget) -> tuple[float, dict[int, float], float]:
    """The main run at every seed of ``budget.seeds``: mean step-0 loss, mean loss at each
    checkpoint, and the spread (max - min) of the last checkpoint's loss."""
    runs = []
    for seed in budget.seeds:
        at = Budget(**{**asdict(budget), "seed": seed})
        runs.append(train(spec, initialized(spec, init, at), at, budget.lr, budget.steps))
    last = [losses[max(budget.steps)] for _, losses in runs]
    mean = {c: sum(losses[c] for _, losses in runs) / len(runs) for c in budget.steps}
    return sum(s for s, _ in runs) / len(runs), mean, max(last) - min(last)


def max_stable_lr(spec: Spec, init: str, budget: Budget) -> float | None:
    """The largest rate of the sweep whose final held-out loss is finite and below both its
    step-0 value and ln(classes) (so an init that starts far above chance cannot look stable
    by merely falling back towards it)."""
    for lr in sorted(budget.sweep, reverse=True):
        step0, losses = train(
            spec, initialized(spec, init, budget), budget, lr, [budget.sweep_steps]
        )
        final = losses[budget.sweep_steps]
        if math.isfinite(final) and final < min(step0, math.log(spec.classes)):
            return lr
    return None


def run_model(name: str, budget: Budget) -> list[Row]:
    """Every init on one model (in a worker process: one thread)."""
    torch.set_num_threads(1)
    spec = ZOO[name]
    rows = []
    for init in INITS:
        start = time.perf_counter()
        row = Row(name, init, spec.classes)
        try:
            row.step0, row.losses, row.spread = seeds_mean(spec, init, budget)
            row.max_stable_lr = max_stable_lr(spec, init, budget)
        except Exception as error:  # a model or init that fails is a result, not a crash
            row.error = f"{type(error).__name__}: {error}".splitlines()[0][:120]
        row.seconds = time.perf_counter() - start
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """A target: ``met`` of ``total`` models, the fraction it asks for and the misses."""

    name: str
    met: int
    total: int
    required: float
    misses: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.total > 0 and self.met >= self.required * self.total


def _by(rows: Sequence[Row]) -> dict[str, dict[str, Row]]:
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        table.setdefault(row.model, {})[row.init] = row
    return table


def targets(rows: Sequence[Row], budget: Budget) -> list[Target]:
    """The three targets over the models that ran every init."""
    table = {m: r for m, r in _by(rows).items() if all(i in r for i in ("own", "auto_init"))}
    last = max(budget.steps)

    def check(name: str, required: float, ok: dict[str, bool]) -> Target:
        misses = tuple(m for m, good in ok.items() if not good)
        return Target(name, len(ok) - len(misses), len(ok), required, misses)

    def final(row: Row) -> float:
        return row.losses.get(last, math.nan)

    def lr(row: Row) -> float:  # no stable rate counts as 0
        return row.max_stable_lr or 0.0

    return [
        check(
            "auto_init step-0 loss <= 1.05 ln(classes) on every model",
            1.0,
            {
                m: r["auto_init"].step0 <= 1.05 * math.log(r["auto_init"].classes)
                for m, r in table.items()
            },
        ),
        check(
            f"auto_init loss@{last} <= 1.02 x own on >= 90% of models",
            0.9,
            {m: final(r["auto_init"]) <= 1.02 * final(r["own"]) for m, r in table.items()},
        ),
        check(
            "auto_init max stable lr >= own on >= 80% of models",
            0.8,
            {m: lr(r["auto_init"]) >= lr(r["own"]) for m, r in table.items()},
        ),
    ]


# --------------------------------------------------------------------------- output


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def format_table(rows: Sequence[Row], budget: Budget) -> str:
    """Markdown: model x init, step-0 and checkpoint losses, ln(classes), largest stable rate."""
    head = ["model", "init", "ln(classes)", "step 0", *(f"loss@{s}" for s in budget.steps)]
    head += ["spread", "max stable lr", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.model, row.init, _num(math.log(row.classes), ".3f")]
        if row.error is not None:
            cells += [f"error: {row.error}", *([""] * (len(head) - 4))]
        else:
            cells.append(_num(row.step0, ".3f"))
            cells += [_num(row.losses.get(s), ".3f") for s in budget.steps]
            cells.append(_num(row.spread, ".3f"))
            cells.append(_num(row.max_stable_lr, ".2e") if row.max_stable_lr else "none")
            cells.append(f"{row.seconds:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_targets(found: Sequence[Target]) -> str:
    lines = []
    for t in found:
        verdict = "PASS" if t.passed else "FAIL"
        misses = f"; misses: {', '.join(t.misses)}" if t.misses else ""
        lines.append(f"- {verdict} {t.name}: {t.met}/{t.total}{misses}")
    return "\n".join(lines)


def _json_row(row: Row) -> dict[str, Any]:
    return {**asdict(row), "losses": {str(k): v for k, v in row.losses.items()}}


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run every model (in order, or in a pool), print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5/10 steps, 2-rate sweep: smoke")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every row here")
    parser.add_argument("--models", help="comma-separated zoo names (default: all; quick: nanogpt)")
    parser.add_argument("--processes", type=int, default=1, help="models run at once (default 1)")
    parser.add_argument("--sweep-steps", type=int, help="steps of each sweep run (default 100)")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else Budget()
    if args.sweep_steps is not None:
        if args.sweep_steps < 1:
            parser.error(f"--sweep-steps must be a positive integer, got {args.sweep_steps}")
        budget = Budget(**{**asdict(budget), "sweep_steps": args.sweep_steps})
    names = args.models.split(",") if args.models else ["nanogpt"] if args.quick else list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(ZOO)}")
    if args.processes < 1:
        parser.error(f"--processes must be a positive integer, got {args.processes}")
    skipped = {n: reason for n in names if (reason := unavailable(ZOO[n])) is not None}
    names = [n for n in names if n not in skipped]
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows: list[Row] = []
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(args.processes, spawn) if args.processes > 1 else _Serial()
    with pool:
        for i, model_rows in enumerate(pool.map(run_model, names, [budget] * len(names))):
            rows += model_rows
            took = ", ".join(f"{r.init} {r.seconds:.0f}s" for r in model_rows)
            print(f"[{i + 1}/{len(names)}] {names[i]}: {took}", file=sys.stderr, flush=True)
    total = time.perf_counter() - start
    found = targets(rows, budget)
    print(f"torch {torch.__version__}, 1 thread per model, {args.processes} process(es); {budget}")
    print(format_table(rows, budget))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    print("\nTargets")
    print(format_targets(found))
    print(f"\ntotal {total:.0f} s")
    if args.json is not None:
        payload = {
            "budget": asdict(budget),
            "torch_version": torch.__version__,
            "total_s": total,
            "rows": [_json_row(r) for r in rows],
            "skipped": skipped,
            "targets": [{**asdict(t), "passed": t.passed} for t in found],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"rows written to {args.json}")


class _Serial:
    """The pool's ``map`` in this process (no pickling, no second interpreter)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Any, *iterables: Any) -> Any:
        return map(fn, *iterables)


if __name__ == "__main__":
    main()
