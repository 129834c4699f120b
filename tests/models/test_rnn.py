"""rnn: the kind picks the recurrent module, the head reads the last step, training, bad input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.models import RNN_KINDS, RecurrentModel, RNNKind, rnn

TrainFn = Callable[..., tuple[float, float]]
MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@pytest.mark.parametrize("kind", RNN_KINDS)
def test_kind_selects_the_recurrent_module(kind: RNNKind) -> None:
    model = rnn(kind, input_size=3, hidden_size=8, num_layers=2)
    assert isinstance(model, RecurrentModel)
    assert type(model.recurrent) is MODULES[kind]
    assert model.recurrent.batch_first
    assert model.recurrent.num_layers == 2
    assert (model.recurrent.input_size, model.recurrent.hidden_size) == (3, 8)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("kind", RNN_KINDS)
def test_output_shape_is_batch_by_out_features(kind: RNNKind, num_layers: int) -> None:
    model = rnn(kind, 3, 8, num_layers=num_layers, out_features=4, dropout=0.2)
    assert model(torch.randn(5, 11, 3)).shape == (5, 4)


@pytest.mark.parametrize("kind", RNN_KINDS)
def test_output_is_the_head_of_the_last_time_step(kind: RNNKind) -> None:
    model = rnn(kind, 3, 8, num_layers=2, out_features=2).eval()
    x = torch.randn(4, 6, 3)
    with torch.no_grad():
        outputs, _ = model.recurrent(x)
        expected = model.head(outputs[:, -1])
        torch.testing.assert_close(model(x), expected)


def test_dropout_goes_between_layers_and_before_the_head() -> None:
    model = rnn("gru", 3, 8, num_layers=2, dropout=0.3)
    assert model.recurrent.dropout == 0.3
    assert model.dropout.p == 0.3


def test_dropout_with_one_layer_acts_before_the_head_without_a_torch_warning() -> None:
    model = rnn("lstm", 3, 8, num_layers=1, dropout=0.3)  # warnings are errors in this suite
    assert model.recurrent.dropout == 0.0
    assert model.dropout.p == 0.3


@pytest.mark.parametrize("kind", RNN_KINDS)
def test_runs_in_train_and_eval_mode(kind: RNNKind) -> None:
    model = rnn(kind, 3, 8, num_layers=2, dropout=0.3)
    x = torch.randn(4, 6, 3)
    model.train()
    assert torch.isfinite(model(x)).all()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("kind", RNN_KINDS)
def test_sgd_decreases_the_loss_on_a_sequence_mean(kind: RNNKind, sgd_losses: TrainFn) -> None:
    x = torch.randn(32, 10, 2)
    y = x.mean(dim=1).sum(dim=1, keepdim=True)  # (B, 1)
    model = rnn(kind, input_size=2, hidden_size=16)
    first, last = sgd_losses(model, x, y, nn.functional.mse_loss, steps=60, lr=0.05)
    assert last < 0.5 * first


def test_an_unbatched_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(batch, time, input_size\), got \(6, 3\)"):
        rnn("rnn", 3, 8)(torch.randn(6, 3))


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (
            ("transformer", 3, 8),
            {},
            ValueError,
            r"unknown kind 'transformer'.*'rnn', 'lstm', 'gru'",
        ),
        (("LSTM", 3, 8), {}, ValueError, r"unknown kind 'LSTM'"),
        (("gru", 0, 8), {}, ValueError, r"input_size must be >= 1"),
        (("gru", 3, 0), {}, ValueError, r"hidden_size must be >= 1"),
        (("gru", 3, 8), {"num_layers": 0}, ValueError, r"num_layers must be >= 1"),
        (("gru", 3, 8), {"out_features": 0}, ValueError, r"out_features must be >= 1"),
        (("gru", 3, 8), {"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_input_raises_naming_the_value_and_the_options(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        rnn(*args, **kwargs)  # type: ignore[arg-type]
