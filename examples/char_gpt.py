"""A character-level GPT (nanoGPT-shaped: tied embeddings, GELU MLP, Pre-LN residual projections)
trained with stabletrain: auto_init fits the tied head to a step-0 loss near ln(vocab), AdamW
decays only the matrices (no norms, biases or embeddings), the guard clips, the monitor watches.

    python examples/char_gpt.py --steps 500 --out runs/char_gpt
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import stabletrain as st

TEXT = "the quick brown fox jumps over the lazy dog. " * 40  # no download: a pangram, repeated
CHARS = sorted(set(TEXT))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=x.dtype)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, d: int = 64, layers: int = 4, heads: int = 4, ctx: int = 32):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one table, two roles

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.lm_head(self.ln_f(self.blocks(self.wte(idx) + self.wpe(pos))))


def batch(data: torch.Tensor, g: torch.Generator, rows: int = 16, ctx: int = 32) -> tuple:
    start = torch.randint(0, len(data) - ctx - 1, (rows,), generator=g)
    x = torch.stack([data[s : s + ctx] for s in start.tolist()])
    return x, torch.stack([data[s + 1 : s + ctx + 1] for s in start.tolist()])


def main(steps: int, out: Path) -> tuple[float, float]:
    torch.manual_seed(0)
    data = torch.tensor([CHARS.index(c) for c in TEXT])
    g = torch.Generator().manual_seed(0)
    model = CharGPT(len(CHARS))
    x0, y0 = batch(data, g)
    report = st.auto_init(model, x0)  # tied head: step-0 loss ≈ ln(vocab)
    print(report)
    with torch.no_grad():
        start = float(F.cross_entropy(model(x0).flatten(0, 1), y0.flatten()))
    print(f"step-0 loss {start:.3f}, ln(vocab) {math.log(len(CHARS)):.3f}")
    opt = torch.optim.AdamW(st.param_groups(model, weight_decay=0.1), lr=3e-3)
    guard = st.StepGuard(opt, max_norm=1.0)
    sinks = [st.JSONLSink(out / "run.jsonl")]
    with st.TrainingMonitor(model, opt, schedule=st.every(25), sinks=sinks, guard=guard) as mon:
        for _ in range(steps):
            x, y = batch(data, g)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            guard.step(loss)
            opt.zero_grad()
            mon.step(loss)
    final = float(loss.detach())
    print(f"loss {start:.3f} -> {final:.3f} after {steps} steps; findings: {mon.findings()}")
    return start, final


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("runs/char_gpt"))
    args = parser.parse_args()
    main(args.steps, args.out)
