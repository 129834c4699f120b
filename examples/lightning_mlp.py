"""stabletrain inside Lightning: one callback watches the run (gradient norms before Lightning's
clipping, one row per optimizer step under gradient accumulation, rows in the Trainer's own
TensorBoard file) and initializes the model with auto_init. Digits, an MLP, CPU.

    python examples/lightning_mlp.py --steps 200 --out runs/lightning
    tensorboard --logdir runs/lightning
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn

from stabletrain.integrations.lightning import StableTrainCallback


class DigitsMLP(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def loader() -> torch.utils.data.DataLoader[tuple[torch.Tensor, ...]]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    dataset = torch.utils.data.TensorDataset(x, torch.tensor(digits.target))
    return torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True)


def main(steps: int, out: Path) -> StableTrainCallback:
    torch.manual_seed(0)
    callback = StableTrainCallback(preset="standard", schedule=5, auto_init=True)
    trainer = pl.Trainer(
        max_steps=steps,
        accumulate_grad_batches=2,
        gradient_clip_val=1.0,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(out),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(DigitsMLP(), loader())  # the findings are printed when training ends
    return callback


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/lightning"))
    args = parser.parse_args()
    main(args.steps, args.out)
