"""An observer that keeps what it saw: each op's name and its outputs' sums, each call's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stabletrain.graph import Call, Op


class Recorder:
    def __init__(self) -> None:
        self.ops: list[tuple[str, list[float]]] = []
        self.calls: list[tuple[str, float]] = []

    def on_op(
        self, op: Op, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]
    ) -> None:
        self.ops.append((op.name, [float(t.detach().sum()) for t in outputs]))

    def on_call(
        self,
        call: Call,
        module: nn.Module,
        inputs: Sequence[torch.Tensor],
        outputs: Sequence[torch.Tensor],
    ) -> None:
        self.calls.append((call.module, float(outputs[0].detach().sum())))
