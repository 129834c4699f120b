"""Step-time overhead of stabletrain's Lightning callback, against the same Lightning run without
it, in the same process.

The model is ``depth`` blocks of ``Linear(width, width)`` + ReLU trained with Adam on one fixed
random batch (MSE, the batch repeated to fill one epoch), on the CPU: little compute per
parameter, so a pass over the weights or gradients shows. Each *fit* trains a fresh copy of the
model for ``steps`` optimizer steps in a fresh ``Trainer`` (no logger, no checkpoint, no
progress bar); a timing callback takes the time between consecutive ``on_train_batch_start``
calls, so the fit's setup is not billed, and a fit's time per step is the median of those gaps
after the first ``WARM_UP`` steps.

Variants, one fit each per round, the order shuffled every round (interleaved: a drift of the
machine hits all alike):

- ``plain``: the run without the callback; ``plain-copy``: the same again, the noise floor;
- ``{minimal,standard}/{1,10}``: with ``StableTrainCallback(preset=..., schedule=every(n))``
  (rows to a MemorySink, no summary printed).

The table gives, per variant, the median over the rounds of its time per step over the plain
run's in the same round, the spread (min-max) and milliseconds per step.

Run ``python benchmarks/lightning_overhead.py`` (a few minutes on 2 cores); ``--quick`` for a
smoke run; ``--json PATH`` to also write the rows; ``--threads`` (default 1: on a shared machine
idle OpenMP threads spinning on busy cores cost more than the model).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

WARM_UP = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, one round")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # a shared machine: spinning OpenMP threads add noise
    warnings.filterwarnings("ignore")
    import logging

    import lightning.pytorch as pl

    from stabletrain.integrations.lightning import StableTrainCallback
    from stabletrain.monitoring import MemorySink, Preset, every

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_flush_denormal(True)
    width, depth, batch = (32, 2, 16) if args.quick else (512, 8, 128)
    steps, rounds = (WARM_UP + 5, 1) if args.quick else (WARM_UP + 40, 7)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, width, generator=gen), torch.randn(batch, width, generator=gen)
    # the one batch, repeated: one epoch holds the whole fit (an epoch boundary costs more than a
    # step, and would be billed to the step that crosses it)
    dataset = torch.utils.data.TensorDataset(x.repeat(steps, 1), y.repeat(steps, 1))
    data = torch.utils.data.DataLoader(dataset, batch_size=batch)

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [nn.Linear(width, width), nn.ReLU()]
            self.net = nn.Sequential(*layers)

        def training_step(self, b: Any, _: int) -> torch.Tensor:
            return F.mse_loss(self.net(b[0]), b[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, *_: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_end(self, *_: Any) -> None:
            self.starts.append(time.perf_counter())

    def fit(callback: pl.Callback | None) -> float:
        torch.manual_seed(0)
        timer = Timer()
        trainer = pl.Trainer(
            max_steps=steps,
            max_epochs=-1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[c for c in (callback, timer) if c is not None],
        )
        trainer.fit(Net(), data)
        gaps = [b - a for a, b in zip(timer.starts, timer.starts[1:], strict=False)]
        return statistics.median(gaps[WARM_UP:])

    def monitored(preset: Preset, n: int) -> Any:
        return lambda: StableTrainCallback(
            preset=preset, schedule=every(n), sinks=[MemorySink()], summary=False
        )

    variants = {"plain": lambda: None, "plain-copy": lambda: None}
    presets: tuple[Preset, ...] = ("minimal", "standard")
    for preset in presets:
        for n in (1, 10):
            variants[f"{preset}/{n}"] = monitored(preset, n)
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = random.Random(0)
    for _ in range(rounds):
        names = list(variants)
        order.shuffle(names)
        for name in names:
            times[name].append(fit(variants[name]()))
    rows = []
    print(f"Lightning callback overhead: MLP {depth}x{width}, batch {batch}, {rounds} round(s)")
    print(f"{'variant':<14}{'ratio':>8}{'min-max':>16}{'ms/step':>10}")
    for name, ts in times.items():
        ratios = [t / p for t, p in zip(ts, times["plain"], strict=True)]
        row = {
            "variant": name,
            "ratio": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "ms_per_step": 1e3 * statistics.median(ts),
        }
        rows.append(row)
        spread = f"{row['min']:.3f}-{row['max']:.3f}"
        print(f"{name:<14}{row['ratio']:>8.3f}{spread:>16}{row['ms_per_step']:>10.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
