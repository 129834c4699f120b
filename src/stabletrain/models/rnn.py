"""A recurrent sequence model (RNN, LSTM or GRU) with a Linear head on the last time step."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from stabletrain._checks import check_choice, check_positive_int
from stabletrain.models._validate import check_dropout

__all__ = ["RNN_KINDS", "RNNKind", "RecurrentModel", "rnn"]

RNNKind = Literal["rnn", "lstm", "gru"]
RNN_KINDS: tuple[RNNKind, ...] = ("rnn", "lstm", "gru")

_CELLS: dict[str, type[nn.RNN | nn.LSTM | nn.GRU]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentModel(nn.Module):
    """``head(dropout(recurrent(x)[:, -1]))``: a sequence-to-one model.

    Args:
        recurrent: an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` built with ``batch_first=True``.
        head: the module applied to the last time step's hidden output (top layer).
        dropout: drop probability on that output, before the head.
    """

    def __init__(self, recurrent: nn.RNN | nn.LSTM | nn.GRU, head: nn.Module, dropout: float):
        super().__init__()
        if not recurrent.batch_first:
            raise ValueError(
                "RecurrentModel: the recurrent layer must be built with batch_first=True, since "
                "forward takes (batch, time, input_size)."
            )
        self.recurrent = recurrent
        self.dropout = nn.Dropout(dropout)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(
                f"RecurrentModel: expected input of shape (batch, time, input_size), got "
                f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0) for one sequence."
            )
        outputs, _ = self.recurrent(x)  # (B, T, H): the top layer's hidden state at every step
        last: torch.Tensor = outputs[:, -1]  # (B, H)
        out: torch.Tensor = self.head(self.dropout(last))  # (B, out_features)
        return out


def rnn(
    kind: RNNKind,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    out_features: int = 1,
    dropout: float = 0.0,
) -> RecurrentModel:
    """A stacked RNN, LSTM or GRU that reads ``(batch, time, input_size)`` and predicts from its
    last hidden output.

    - ``"rnn"``: Elman's tanh RNN, ``h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)``; its gradients
      vanish or explode over long sequences (Bengio et al. 1994), which clipping tames (claim S3).
    - ``"lstm"``: Hochreiter & Schmidhuber 1997, gated cell state (4 gate blocks per weight).
    - ``"gru"``: Cho et al. 2014, update and reset gates (3 gate blocks per weight).

    ``dropout`` follows Zaremba et al. 2014 ("Recurrent Neural Network Regularization"): it acts
    on the non-recurrent connections only, between stacked layers (torch's ``dropout`` argument,
    used when ``num_layers > 1``) and on the last output before the head; never on ``h_{t-1}``.

    Args:
        kind: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        input_size: features per time step.
        hidden_size: size of the hidden state of every layer.
        num_layers: number of stacked recurrent layers.
        out_features: size of the prediction.
        dropout: drop probability in ``[0, 1)``.

    Returns:
        a :class:`RecurrentModel` with children ``recurrent``, ``dropout`` and ``head``; it maps
        ``(batch, time, input_size)`` to ``(batch, out_features)``.

    Raises:
        ValueError: for an unknown kind, a non-positive size or a dropout outside ``[0, 1)``.

    Example:
        >>> import torch
        >>> model = rnn("lstm", input_size=3, hidden_size=16, num_layers=2, out_features=1)
        >>> type(model.recurrent).__name__
        'LSTM'
        >>> model(torch.randn(8, 20, 3)).shape
        torch.Size([8, 1])
    """
    where = "rnn"
    check_choice("kind", kind, RNN_KINDS, where=where)
    input_size = check_positive_int("input_size", input_size, where=where)
    hidden_size = check_positive_int("hidden_size", hidden_size, where=where)
    num_layers = check_positive_int("num_layers", num_layers, where=where)
    out_features = check_positive_int("out_features", out_features, where=where)
    dropout = check_dropout(dropout, where=where)

    # torch warns when dropout > 0 with one layer (it would drop nothing): pass 0 then.
    recurrent = _CELLS[kind](
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
    )
    return RecurrentModel(recurrent, nn.Linear(hidden_size, out_features), dropout)
