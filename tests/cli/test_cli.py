"""The command line: each subcommand runs and prints what it promises."""

from __future__ import annotations

import pytest

from stabletrain.cli.main import main
from stabletrain.cli.schemes import SCHEMES, depth_profile
from stabletrain.init import gain


def test_gains_prints_the_requested_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gains", "gelu", "tanh"]) == 0
    out = capsys.readouterr().out
    assert "1.5335" in out
    assert "1.5925" in out
    assert "1.6667" in out
    assert "relu" not in out


def test_gains_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gains", "relu7"]) == 2
    assert "unknown activation(s) relu7" in capsys.readouterr().err


def test_schemes_prints_every_scheme_at_every_depth(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemes", "--depth", "12", "--width", "32"]) == 0
    out = capsys.readouterr().out
    for label in SCHEMES:
        assert label in out
    assert "layer 12" in out
    assert "Plain relu MLP" in out


def test_schemes_of_a_single_layer_show_only_that_layer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schemes", "--depth", "1", "--width", "4"]) == 0
    out = capsys.readouterr().out
    assert "layer 1" in out
    assert "layer 0" not in out
    assert "layer 10" not in out


def test_depth_profile_shows_the_claims_of_the_tutorials() -> None:
    import torch

    def run(label: str, act: object) -> tuple[list[float], int]:
        return depth_profile(SCHEMES[label], act, depth=30, width=128)

    he, units = run("He (exact gain)", torch.relu)
    assert 0.5 < he[-1] < 2
    assert units == 128
    xavier, _ = run("Xavier", torch.relu)
    assert xavier[-1] < 1e-3  # I7: Xavier halves ReLU's variance per layer
    small, _ = run("small random 0.01", torch.tanh)
    assert small[-1] < 1e-20  # I3: small init vanishes with depth
    _, constant_units = run("constant 0.01", torch.tanh)
    assert constant_units == 1  # I1: constant init leaves one distinct unit
    tanh_exact, _ = run("He (exact gain)", torch.tanh)
    assert tanh_exact[-1] == pytest.approx(1.0, abs=0.1)
    assert gain("tanh") > 1.5


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert "stabletrain" in capsys.readouterr().out
