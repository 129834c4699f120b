"""Fans match each layer's own definition: measured with all-ones weights and inputs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stabletrain.init import Fans, compute_fans, layer_fans


def measured_fans(layer: nn.Module, x: torch.Tensor, centre: tuple[int, ...]) -> Fans:
    """fan_in = one output element (ones in, ones weights, no bias) = number of summed terms;
    fan_out = d(sum of outputs)/d(one input element) = number of outputs that input reaches."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.fill_(0.0 if name.startswith("bias") else 1.0)
    x = x.clone().requires_grad_(True)
    y = layer(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    return Fans(round(float(y.detach()[centre])), round(float(grad[centre])))


CONV_CASES = [
    (nn.Conv1d(6, 9, 3, padding=1), (1, 6, 11)),
    (nn.Conv2d(8, 12, 3, padding=1), (1, 8, 9, 9)),
    (nn.Conv2d(8, 12, (3, 5), padding=(1, 2), groups=4), (1, 8, 9, 9)),
    (nn.Conv2d(16, 16, 3, padding=1, groups=16), (1, 16, 9, 9)),  # depthwise
    (nn.Conv3d(4, 6, 3, padding=1, groups=2), (1, 4, 7, 7, 7)),
    (nn.ConvTranspose1d(6, 9, 3, padding=1, groups=3), (1, 6, 11)),
    (nn.ConvTranspose2d(8, 12, 3, padding=1), (1, 8, 9, 9)),
    (nn.ConvTranspose2d(8, 12, 3, padding=1, groups=4), (1, 8, 9, 9)),
    (nn.ConvTranspose3d(4, 6, 3, padding=1, groups=2), (1, 4, 7, 7, 7)),
]


@pytest.mark.parametrize(("layer", "shape"), CONV_CASES, ids=lambda c: repr(c)[:60])
def test_conv_fans_equal_the_measured_terms_per_output_and_outputs_per_input(
    layer: nn.Module, shape: tuple[int, ...]
) -> None:
    centre = (0, 0, *(s // 2 for s in shape[2:]))
    assert layer_fans(layer) == measured_fans(layer, torch.ones(shape), centre)


def test_linear_fans_are_in_and_out_features() -> None:
    layer = nn.Linear(7, 5)
    assert layer_fans(layer) == measured_fans(layer, torch.ones(1, 7), (0, 0)) == Fans(7, 5)


def test_bilinear_fan_in_counts_every_product_term() -> None:
    layer = nn.Bilinear(3, 4, 5)
    x1, x2 = torch.ones(1, 3, requires_grad=True), torch.ones(1, 4)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
    y = layer(x1, x2)
    (grad,) = torch.autograd.grad(y.sum(), x1)
    assert layer_fans(layer) == Fans(round(float(y.detach()[0, 0])), round(float(grad[0, 0])))
    assert layer_fans(layer) == (12, 20)


def test_embedding_reads_one_row_so_fan_in_is_one() -> None:
    emb = nn.Embedding(10, 6)
    as_linear = nn.Linear(10, 6, bias=False)  # onehot(i) @ W == emb(i)
    onehot = torch.zeros(1, 10)
    onehot[0, 3] = 1.0
    measured = measured_fans(as_linear, onehot, (0, 3))
    assert layer_fans(emb) == Fans(1, measured.fan_out) == Fans(1, 6)
    assert layer_fans(nn.EmbeddingBag(10, 6)) == Fans(1, 6)


@pytest.mark.parametrize(("cls", "gates"), [(nn.RNN, 1), (nn.GRU, 3), (nn.LSTM, 4)])
def test_recurrent_fans_are_per_gate(cls: type[nn.RNNBase], gates: int) -> None:
    rnn = cls(10, 20, num_layers=2)
    ih0 = Fans(10, 20)  # each gate: Linear(input_size, hidden_size)
    assert (
        layer_fans(rnn, "weight_ih_l0")
        == ih0
        == measured_fans(nn.Linear(10, 20), torch.ones(1, 10), (0, 0))
    )
    assert layer_fans(rnn, "weight_hh_l0") == Fans(20, 20)
    assert layer_fans(rnn, "weight_ih_l1") == Fans(20, 20)
    # torch's generic rule counts every gate as an output
    assert compute_fans(rnn.weight_ih_l0) == Fans(10, 20 * gates)


def test_lstm_with_projection_has_per_gate_and_projection_fans() -> None:
    lstm = nn.LSTM(10, 20, proj_size=5)
    assert layer_fans(lstm, "weight_hh_l0") == Fans(5, 20)
    assert layer_fans(lstm, "weight_hr_l0") == Fans(20, 5)


@pytest.mark.parametrize("cls", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_recurrent_cells_are_per_gate(cls: type[nn.RNNCellBase]) -> None:
    assert layer_fans(cls(10, 20), "weight_ih") == Fans(10, 20)


def test_attention_in_proj_fans_are_per_q_k_v_block() -> None:
    mha = nn.MultiheadAttention(64, 4)
    assert layer_fans(mha, "in_proj_weight") == Fans(64, 64)
    assert layer_fans(mha.out_proj) == Fans(64, 64)
    assert compute_fans(mha.in_proj_weight) == Fans(64, 192)


def test_fan_avg_is_the_mean() -> None:
    assert Fans(10, 30).fan_avg == 20.0


def test_one_dimensional_tensor_has_no_fans_and_the_error_says_what_to_use() -> None:
    with pytest.raises(ValueError, match=r"shape \(5,\).*zeros_"):
        compute_fans(torch.empty(5))
    with pytest.raises(ValueError, match="at least 2 dims"):
        layer_fans(nn.Linear(3, 5), "bias")


def test_unknown_parameter_name_lists_the_parameters() -> None:
    with pytest.raises(ValueError, match="bias, weight"):
        layer_fans(nn.Linear(3, 5), "kernel")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"groups": 3}, "groups=3"), ({"blocks": 5}, "blocks=5"), ({"groups": 0}, ">= 1")],
)
def test_groups_and_blocks_must_divide_the_channels(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compute_fans(torch.empty(8, 4, 3), **kwargs)


def test_gpt2_conv1d_weight_is_stored_in_out_and_its_fans_say_so() -> None:
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    layer = pytorch_utils.Conv1D(nf=12, nx=5)  # 5 inputs -> 12 outputs, weight (5, 12)
    assert tuple(layer.weight.shape) == (5, 12)
    # each output sums over the 5 inputs; each input feeds the 12 outputs
    jac = torch.autograd.functional.jacobian(layer, torch.randn(5))
    assert (jac != 0).sum(dim=1).tolist() == [5] * 12
    assert (jac != 0).sum(dim=0).tolist() == [12] * 5
    assert layer_fans(layer) == Fans(fan_in=5, fan_out=12)


def test_batched_expert_weights_have_the_fans_of_one_expert_matrix() -> None:
    class MixtureExperts(nn.Module):  # HF Mixtral's layout: (experts, out, in)
        def __init__(self) -> None:
            super().__init__()
            self.gate_up_proj = nn.Parameter(torch.empty(4, 256, 64))

    experts = MixtureExperts()
    assert layer_fans(experts, "gate_up_proj") == Fans(64, 256)
    assert layer_fans(experts, "gate_up_proj", transposed=True) == Fans(256, 64)
    assert compute_fans(torch.empty(8, 32, 16), batched=True) == Fans(16, 32)
    # without the batch flag a 3-D tensor is a convolution kernel (torch's generic rule)
    assert compute_fans(torch.empty(8, 32, 16)) == Fans(32 * 16, 8 * 16)
    with pytest.raises(ValueError, match="batched=True needs a stack of matrices"):
        compute_fans(torch.empty(8, 32), batched=True)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: compute_fans([[1.0, 2.0]]), "compute_fans: expected a weight tensor.*got list"),
        (lambda: layer_fans(torch.empty(3, 3)), "layer_fans: expected the layer.*compute_fans"),
        (lambda: layer_fans(nn.Linear(3, 5), 0), "name must be a parameter name"),
    ],
)
def test_what_is_not_a_tensor_module_or_name_is_refused_with_a_type_error(
    call: Callable[[], object], match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        call()
