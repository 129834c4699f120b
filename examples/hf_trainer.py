"""stabletrain inside the Hugging Face Trainer: fine-tune a tiny GPT-2 built from a config
(nothing is downloaded) on synthetic token sequences, watched by the monitor: its gradient norms
are the Trainer's logged grad_norm (before max_grad_norm clips), its rows go into the Trainer's
TensorBoard file, its findings are printed when training ends.

    python examples/hf_trainer.py --steps 100 --out runs/hf
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import transformers

from stabletrain.integrations.transformers import StableTrainCallback, watch


class Copying(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Sequences whose second half repeats the first: learnable in a few hundred steps."""

    def __init__(self, n: int, length: int = 16, vocab: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        half = torch.randint(1, vocab, (n, length // 2), generator=g)
        self.ids = torch.cat([half, half], dim=1)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main(steps: int, out: Path) -> StableTrainCallback:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=64,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        learning_rate=1e-3,
        max_grad_norm=1.0,
        logging_steps=5,
        save_strategy="no",
        report_to=["tensorboard"],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Copying(512))
    callback = watch(trainer, preset="standard", jsonl=out / "run.jsonl")
    trainer.train()
    return callback


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/hf"))
    args = parser.parse_args()
    main(args.steps, args.out)
