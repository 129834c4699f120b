"""torch's names: calculate_gain equals torch's for every nonlinearity torch knows, the kaiming
aliases draw what torch draws for the ReLU family, and activation names work wherever a gain is."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

import stabletrain as st
from stabletrain import init

TORCH_PARAMS: list[tuple[str, float | None]] = [
    *((name, None) for name in init.TORCH_NONLINEARITIES),
    ("leaky_relu", 0.2),
    ("leaky_relu", 0),
    ("leaky_relu", 3.0),
    ("tanh", 0.5),  # torch ignores param for every name but leaky_relu
]


@pytest.mark.parametrize(("name", "param"), TORCH_PARAMS)
def test_calculate_gain_equals_torch_for_every_torch_nonlinearity(
    name: str, param: float | None
) -> None:
    assert init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)  # type: ignore[arg-type]


def test_torch_nonlinearities_are_exactly_the_names_torch_accepts() -> None:
    annotation = inspect.signature(torch.nn.init.calculate_gain).parameters["nonlinearity"]
    assert set(init.TORCH_NONLINEARITIES) == set(annotation.annotation.__args__)


@pytest.mark.parametrize(
    ("name", "exact"),
    [("tanh", 1.5925), ("sigmoid", 1.8462), ("selu", 1.0), ("relu", math.sqrt(2))],
)
def test_calculate_gain_exact_convention_is_stabletrain_gain(name: str, exact: float) -> None:
    assert init.calculate_gain(name, convention="exact") == pytest.approx(exact, abs=1e-4)
    assert init.calculate_gain(name, convention="exact") == st.gain(name)


@pytest.mark.parametrize(
    ("activation", "torch_name", "param"),
    [
        (nn.Tanh(), "tanh", None),
        (nn.Sigmoid(), "sigmoid", None),
        (nn.LeakyReLU(0.2), "leaky_relu", 0.2),
        (nn.Identity(), "linear", None),
        ("Tanh", "tanh", None),
        ("SELU", "selu", None),
    ],
    ids=["Tanh()", "Sigmoid()", "LeakyReLU(0.2)", "Identity()", "'Tanh'", "'SELU'"],
)
def test_calculate_gain_follows_torch_for_modules_and_spellings_of_its_names(
    activation: object, torch_name: str, param: float | None
) -> None:
    expected = torch.nn.init.calculate_gain(torch_name, param)  # type: ignore[arg-type]
    assert init.calculate_gain(activation) == pytest.approx(expected, rel=1e-12)  # type: ignore[arg-type]


def test_calculate_gain_gives_the_exact_gain_where_torch_has_none() -> None:
    assert init.calculate_gain("gelu") == pytest.approx(1.5335, abs=1e-4)
    assert init.calculate_gain(nn.SiLU()) == pytest.approx(1.6765, abs=1e-4)
    assert init.calculate_gain("leaky_relu", 0.2, convention="exact") == pytest.approx(
        math.sqrt(2 / 1.04), rel=1e-12
    )


@pytest.mark.parametrize("param", [True, "0.2"])
def test_calculate_gain_refuses_a_bad_slope_like_torch(param: object) -> None:
    with pytest.raises(ValueError, match="not a valid number"):
        torch.nn.init.calculate_gain("leaky_relu", param)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", param, convention="exact")  # type: ignore[arg-type]


def test_calculate_gain_names_the_bad_convention_and_activation() -> None:
    with pytest.raises(ValueError, match=r"unknown convention 'tf'.*'torch', 'exact'"):
        init.calculate_gain("relu", convention="tf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown activation 'relu2'"):
        init.calculate_gain("relu2")


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize(
    ("nonlinearity", "a"),
    [("linear", 0), ("relu", 0), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("conv2d", 0)],
)
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_kaiming_aliases_draw_exactly_what_torch_draws(
    kind: str, nonlinearity: str, a: float, mode: str
) -> None:
    ours = getattr(init, f"kaiming_{kind}_")
    theirs = getattr(torch.nn.init, f"kaiming_{kind}_")
    x = ours(torch.empty(64, 32, 3), a, mode, nonlinearity, torch.Generator().manual_seed(1))
    y = theirs(torch.empty(64, 32, 3), a, mode, nonlinearity, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_kaiming_aliases_have_torchs_signature(kind: str) -> None:
    ours = inspect.signature(getattr(init, f"kaiming_{kind}_")).parameters
    theirs = inspect.signature(getattr(torch.nn.init, f"kaiming_{kind}_")).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]


def test_kaiming_aliases_use_the_exact_gain_beyond_the_relu_family() -> None:
    w = init.kaiming_normal_(torch.empty(1000, 1000), nonlinearity="gelu")
    assert w.std().item() * math.sqrt(1000) == pytest.approx(1.5335, rel=0.01)


def test_aliases_are_exported_from_the_package() -> None:
    assert st.kaiming_uniform_ is init.kaiming_uniform_
    assert st.kaiming_normal_ is init.kaiming_normal_
    assert st.calculate_gain is init.calculate_gain


@pytest.mark.parametrize(
    "gain", ["tanh", nn.Tanh(), torch.tanh], ids=["name", "module", "function"]
)
def test_orthogonal_accepts_an_activation_as_gain(gain: object) -> None:
    w = init.orthogonal_(torch.empty(16, 16), gain=gain)  # type: ignore[arg-type]
    torch.testing.assert_close(w @ w.T, st.gain("tanh") ** 2 * torch.eye(16), atol=1e-5, rtol=0)


def test_identity_dirac_and_looks_linear_accept_an_activation_as_gain() -> None:
    g = st.gain("selu")
    assert init.identity_(torch.empty(3, 3), gain="relu")[0, 0].item() == pytest.approx(
        math.sqrt(2), rel=1e-6
    )
    assert init.dirac_(torch.empty(2, 2, 3), gain="selu")[0, 0, 1].item() == pytest.approx(g)
    w = init.looks_linear_(torch.empty(8, 4), mirror_in=False, mirror_out=True, gain="relu")
    torch.testing.assert_close(w[:4] @ w[:4].T, 2 * torch.eye(4), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("fill", "error", "match"),
    [
        (lambda t: init.orthogonal_(t, gain="tanhh"), ValueError, "unknown activation 'tanhh'"),
        (lambda t: init.orthogonal_(t, gain=True), TypeError, "gain must be a real number"),
        (lambda t: init.identity_(t, gain=float("nan")), ValueError, "gain must be finite"),
        (lambda t: init.dirac_(t.view(2, 2, 1), gain=None), TypeError, "expected an activation"),
    ],
)
def test_a_bad_gain_is_named(fill: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        fill(torch.empty(2, 2))  # type: ignore[operator]
