"""Run by tests/integrations/test_lightning_ddp.py: 2 CPU processes (gloo) under Lightning's DDP
strategy, which starts the second rank by running this script again. Usage: OUT_DIR."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from stabletrain.integrations.lightning import StableTrainCallback
from tests.integrations._lightning_models import Regressor, loader, trainer


def main(out: Path) -> None:
    torch.manual_seed(0)
    shared = StableTrainCallback(schedule=1, jsonl=out / "rows.jsonl", auto_init=True)
    each = StableTrainCallback(
        schedule=1, jsonl=out / "each.jsonl", write_ranks="each", summary=False
    )
    t = trainer(
        max_steps=6,
        strategy="ddp",
        devices=2,
        accumulate_grad_batches=2,
        callbacks=[shared, each],
    )
    t.fit(Regressor(), loader(24, shuffle=True))
    assert shared.monitor is not None
    (out / f"steps.rank{t.global_rank}").write_text(f"{t.global_step} {shared.monitor.steps}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
