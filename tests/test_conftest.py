"""The suite's contract (the root conftest.py): every test starts from seed 0 and torch's defaults,
whatever ran before it and whatever order pytest-randomly chose."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

# Run by an inner pytest: the first test changes torch's defaults and draws, the second (run
# after it in file order) expects them back and its draws to be seed 0's.
INNER = """
import random

import numpy as np
import torch


def test_a_changes_the_defaults_and_draws():
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads({threads} + 1)
    torch.randn(5), np.random.rand(5), random.random()


def test_b_starts_from_seed_0_and_torchs_defaults():
    assert torch.get_default_dtype() == torch.float32
    assert torch.get_num_threads() == {threads}
    assert torch.equal(torch.randn(3), torch.randn(3, generator=torch.Generator().manual_seed(0)))
    assert np.array_equal(np.random.rand(3), np.random.RandomState(0).rand(3))
    assert random.random() == random.Random(0).random()
"""


def test_every_test_starts_from_seed_0() -> None:
    expected = torch.randn(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.randn(4), expected)
    assert np.array_equal(np.random.rand(4), np.random.RandomState(0).rand(4))
    assert random.random() == random.Random(0).random()


@pytest.mark.parametrize("order", [["-p", "no:randomly"], ["-p", "randomly", "--randomly-seed=7"]])
def test_defaults_are_restored_and_the_order_seed_does_not_reseed(
    pytester: pytest.Pytester, order: list[str]
) -> None:
    pytester.makeconftest(ROOT_CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(INNER.format(threads=torch.get_num_threads()))
    # file order for the first; the second runs after the first under seed 7 too (checked below)
    result = pytester.runpytest_inprocess(*order, "-v")
    result.assert_outcomes(passed=2)
    lines = [line for line in result.outlines if "::test_" in line]
    assert "test_a_" in lines[0]


def test_hypothesis_draws_no_constants_from_the_modules_imported_so_far() -> None:
    # Otherwise a derandomized test's examples depend on which tests ran (imported) before it.
    import importlib

    import conftest
    from hypothesis.internal.conjecture import providers

    assert conftest.LOCAL_CONSTANTS_OFF, "the Hypothesis hook was renamed: update conftest.py"
    importlib.import_module("stabletrain.stability")  # a local module full of constants
    assert len(providers._get_local_constants()) == 0
