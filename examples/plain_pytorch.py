"""A plain PyTorch loop with stabletrain: auto_init, param_groups, StepGuard, the training-health
monitor, and the run's report. Digits (scikit-learn's bundled copy), an MLP, CPU, seconds.

    python examples/plain_pytorch.py --steps 300 --out runs/plain
    stabletrain report runs/plain/run.jsonl   # the same report, from the command line
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import stabletrain as st
from stabletrain.diagnostics import render_run


def data(batch: int) -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64), pixels in [0, 1]
    y = torch.tensor(digits.target)
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True)


def main(steps: int, out: Path, accumulate: int = 2) -> list[st.Finding]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    loader = data(batch=32)
    x0, _ = next(iter(loader))
    print(st.auto_init(model, x0))  # the init every layer got, and why
    opt = torch.optim.AdamW(st.param_groups(model, weight_decay=0.05), lr=1e-3)
    guard = st.StepGuard(opt, max_norm=1.0)  # clips, skips non-finite steps
    sinks = [st.JSONLSink(out / "run.jsonl")]
    with st.TrainingMonitor(model, opt, schedule=st.every(5), sinks=sinks, guard=guard) as mon:
        done = 0
        while done < steps:
            for i, (x, y) in enumerate(loader, start=1):
                loss = F.cross_entropy(model(x), y)
                (loss / accumulate).backward()
                if i % accumulate == 0:  # gradient accumulation: one step per 2 batches
                    guard.step(loss)
                    opt.zero_grad()
                    done += 1
                mon.step(loss)  # every batch: the monitor counts optimizer steps
                if done >= steps:
                    break
    render_run(out / "run.jsonl", out / "report", formats=("md",))
    print(f"{mon.steps} optimizer steps; report in {out / 'report'}")
    return mon.findings()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("runs/plain"))
    args = parser.parse_args()
    main(args.steps, args.out)
