"""resmlp: layout and names, identity blocks under zero-init, residual analysis, training, and
bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stabletrain import auto_init, graph, init
from stabletrain.models import NormName, Residual, resmlp

from .conftest import TrainFn

NORM_TYPES = {None: None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def branch_types(net: nn.Module) -> list[str]:
    return [type(m).__name__ for m in net.block1.block]


@pytest.mark.parametrize("norm", [None, "batch", "layer"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_branch_is_fc1_norm_act_dropout_fc2_norm(norm: NormName | None, dropout: float) -> None:
    net = resmlp(6, 2, blocks=2, width=8, norm=norm, dropout=dropout)
    norm_name = [] if norm is None else [NORM_TYPES[norm].__name__]  # type: ignore[union-attr]
    expected = [
        "Linear",
        *norm_name,
        "ReLU",
        *(["Dropout"] if dropout else []),
        "Linear",
        *norm_name,
    ]
    assert branch_types(net) == expected
    top = ["stem", *(["norm"] if norm else []), "act", "block1", "block2", "head"]
    assert [name for name, _ in net.named_children()] == top
    assert net(torch.randn(5, 6)).shape == (5, 2)


def test_every_block_is_a_residual_and_weight_layers_count_two_per_block_plus_two() -> None:
    net = resmlp(64, 10, blocks=4, width=32)
    assert sum(isinstance(m, Residual) for m in net) == 4
    assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 2 * 4 + 2


def test_activation_instances_are_not_shared_between_blocks() -> None:
    net = resmlp(4, 2, blocks=2, width=4, activation=nn.Tanh())
    assert net.block1.block.act is not net.block2.block.act
    assert isinstance(net.act, nn.Tanh)


def test_zeroed_branch_ends_leave_stem_then_head_and_still_get_a_gradient() -> None:
    net = resmlp(16, 3, blocks=3, width=8)
    for block in net:
        if isinstance(block, Residual):
            init.zeros_(block.block.fc2.weight)
            init.zeros_(block.block.fc2.bias)
    x = torch.randn(5, 16)
    assert torch.allclose(net(x), net.head(torch.relu(net.stem(x))))
    net(x).sum().backward()
    # unlike mlp(residual=True)'s ReLU-ending branch, the zeroed last layer still learns
    assert float(net.block1.block.fc2.weight.grad.abs().sum()) > 0


def test_the_graph_sees_one_branch_per_block_ending_in_a_linear() -> None:
    net = resmlp(8, 2, blocks=5, width=8)
    g = graph.trace(net, torch.randn(4, 8))
    branches = g.residuals
    assert len(branches) == 5
    assert all(b.tail_activation is None for b in branches)


def test_fixup_zeroes_each_branch_end_and_scales_its_first_layer() -> None:
    torch.manual_seed(0)
    blocks = 16
    net = resmlp(8, 2, blocks=blocks, width=256)
    x = torch.randn(32, 8)
    before = net.block3.block.fc1.weight.detach().clone()
    init.init_residual_(net, x, "fixup")
    assert float(net.block3.block.fc2.weight.detach().abs().max()) == 0.0
    # m = 2 layers per branch: the first is scaled by L^(-1/(2m-2)) = L^(-1/2); exact ratio
    ratio = net.block3.block.fc1.weight.detach() / before
    assert torch.allclose(ratio, torch.full_like(ratio, blocks**-0.5), rtol=1e-6)


@pytest.mark.parametrize("method", ["auto_init", "he"])
def test_fifty_blocks_train_with_fixup_and_blow_up_with_he(
    method: str, sgd_losses: TrainFn
) -> None:
    torch.manual_seed(0)
    net = resmlp(16, 4, blocks=50, width=32)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    if method == "auto_init":
        auto_init(net, x, residual="fixup", generator=torch.Generator().manual_seed(0))
    else:  # He on every layer: each block adds a branch of twice its input's second moment
        for m in net.modules():
            if isinstance(m, nn.Linear):
                init.he_normal_(m.weight)
                init.zeros_(m.bias)
    # SGD with momentum 0.9 at lr 0.05 on one batch; measured: Fixup 1.84 -> 0.019, He's first
    # loss ~1e11, then nan
    first, last = sgd_losses(net, x, y, nn.functional.cross_entropy, steps=40, lr=0.05)
    if method == "auto_init":
        assert last < 0.1 * first
    else:
        assert first > 1e6
        assert not math.isfinite(last) or last > first / 10


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"blocks": 0}, ValueError, "blocks"),
        ({"width": -1}, ValueError, "width"),
        ({"norm": "group"}, ValueError, "norm"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"activation": "swishy"}, ValueError, "swishy"),
        ({"blocks": 2.5}, TypeError, "blocks"),
    ],
)
def test_bad_arguments_raise_errors_that_name_them(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"in_features": 4, "out_features": 2, "blocks": 2, "width": 8}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        resmlp(**args)  # type: ignore[arg-type]
