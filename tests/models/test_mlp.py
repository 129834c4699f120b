"""mlp: shapes, layer order and names, residual skips, modes, training, and bad input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.models import NormName, Residual, mlp

TrainFn = Callable[..., tuple[float, float]]
NORM_TYPES = {None: None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def layer_types(model: nn.Module) -> list[type[nn.Module]]:
    return [type(m) for m in model.children()]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("width", [8, 16])
def test_output_shape_is_batch_by_out_features(
    norm: NormName | None, residual: bool, width: int
) -> None:
    model = mlp(8, 3, depth=3, width=width, norm=norm, dropout=0.1, residual=residual)
    assert model(torch.randn(5, 8)).shape == (5, 3)


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_hidden_blocks_are_linear_norm_activation_dropout_in_order(
    norm: NormName | None, dropout: float
) -> None:
    model = mlp(4, 2, depth=2, width=6, norm=norm, dropout=dropout)
    block: list[type[nn.Module]] = [nn.Linear]
    norm_type = NORM_TYPES[norm]
    if norm_type is not None:
        block.append(norm_type)
    block.append(nn.ReLU)
    if dropout > 0:
        block.append(nn.Dropout)
    assert layer_types(model) == [*block, *block, nn.Linear]


def test_batch_norm_and_dropout_order_is_explicit() -> None:
    model = mlp(4, 2, depth=1, width=6, norm="batch", dropout=0.5)
    assert layer_types(model) == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    assert model[3].p == 0.5


def test_layers_have_readable_names_and_indexing_works() -> None:
    model = mlp(4, 2, depth=2, width=6, norm="layer", dropout=0.1)
    names = [name for name, _ in model.named_children()]
    assert names == [
        *("linear1", "norm1", "act1", "dropout1"),
        *("linear2", "norm2", "act2", "dropout2"),
        "head",
    ]
    assert model[0] is model.linear1
    assert model[-1] is model.head


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_depth_counts_hidden_linear_layers_plus_the_head(depth: int) -> None:
    model = mlp(4, 2, depth=depth, width=6)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == depth + 1
    assert (linears[0].in_features, linears[0].out_features) == (4, 6)
    assert (linears[-1].in_features, linears[-1].out_features) == (6, 2)


def test_bias_false_removes_every_bias() -> None:
    model = mlp(4, 2, depth=2, width=6, bias=False)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Linear))


def test_activation_can_be_a_name_class_or_instance_with_its_own_parameters() -> None:
    assert isinstance(mlp(4, 2, depth=1, width=6, activation="tanh").act1, nn.Tanh)
    model = mlp(4, 2, depth=2, width=6, activation=nn.PReLU())
    assert isinstance(model.act1, nn.PReLU)
    assert model.act1.weight is not model.act2.weight


def test_residual_wraps_the_width_to_width_blocks_only() -> None:
    model = mlp(4, 2, depth=3, width=6, residual=True)
    assert [name for name, _ in model.named_children()] == ["hidden1", "hidden2", "hidden3", "head"]
    assert not isinstance(model.hidden1, Residual)  # 4 -> 6: no skip possible
    assert isinstance(model.hidden2, Residual)
    assert isinstance(model.hidden3, Residual)
    assert all(isinstance(m, Residual) for m in mlp(6, 2, depth=3, width=6, residual=True)[:-1])


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_a_residual_block_with_zero_weights_is_the_identity(norm: NormName | None) -> None:
    model = mlp(6, 2, depth=2, width=6, norm=norm, residual=True)
    block = model.hidden2
    with torch.no_grad():
        nn.init.zeros_(block.block.linear.weight)
        nn.init.zeros_(block.block.linear.bias)
    x = torch.randn(5, 6)
    # relu(norm(0)) == 0 for every norm (zero input, zero shift), so only the skip is left.
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_residual_adds_the_block_output_to_its_input() -> None:
    inner = nn.Linear(6, 6)
    x = torch.randn(5, 6)
    torch.testing.assert_close(Residual(inner)(x), x + inner(x))


def test_residual_rejects_a_block_that_changes_the_shape() -> None:
    with pytest.raises(ValueError, match=r"maps shape \(5, 6\) to \(5, 3\)"):
        Residual(nn.Linear(6, 3))(torch.randn(5, 6))


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_runs_in_train_and_eval_mode(norm: NormName | None, residual: bool) -> None:
    model = mlp(6, 3, depth=2, width=6, norm=norm, dropout=0.3, residual=residual)
    x = torch.randn(8, 6)
    model.train()
    assert torch.isfinite(model(x)).all()
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    torch.testing.assert_close(first, second)  # no dropout noise in eval mode


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("norm", [None, "batch", "layer"])
def test_sgd_decreases_the_loss_on_a_tiny_regression(
    norm: NormName | None, residual: bool, sgd_losses: TrainFn
) -> None:
    x = torch.randn(64, 5)
    y = torch.sin(x @ torch.randn(5, 2))
    model = mlp(5, 2, depth=2, width=32, norm=norm, residual=residual)
    first, last = sgd_losses(model, x, y, nn.functional.mse_loss, steps=100, lr=0.05)
    assert last < 0.5 * first


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"depth": 0}, ValueError, r"mlp: depth must be >= 1, got 0"),
        ({"depth": 1.5}, TypeError, r"mlp: depth must be an int"),
        ({"width": 0}, ValueError, r"width must be >= 1"),
        ({"activation": "swishy"}, ValueError, r"unknown activation 'swishy'.*'relu'.*'tanh'"),
        ({"norm": "group"}, ValueError, r"unknown norm 'group'.*None, 'batch', 'layer'"),
        ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1\.0"),
        ({"dropout": -0.1}, ValueError, r"dropout must be in \[0, 1\), got -0\.1"),
        ({"dropout": "0.1"}, TypeError, r"dropout must be a real number"),
    ],
)
def test_bad_input_raises_naming_the_value_and_the_options(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"depth": 2, "width": 6, **kwargs}
    with pytest.raises(error, match=match):
        mlp(4, 2, **args)  # type: ignore[arg-type]
