"""Every test, and every doctest under ``src/``, starts from the same state, whatever ran before.

Tests build models and data from the global generators (``nn.Linear(...)``, ``torch.randn``), so
without a seed their numbers, and a statistical test's verdict, would depend on which tests ran
earlier. Each test therefore starts with ``random``, NumPy and torch seeded with :data:`SEED` (a
test that needs other numbers seeds inside itself), and ends with torch's default dtype and
thread count put back as they were.

pytest-randomly shuffles the order; its seed is printed in the header, and
``pytest -p randomly --randomly-seed=N`` reruns that order. It would also reseed ``random`` and
NumPy from that seed before each test, which would make a test's numbers change with the order:
here it only shuffles.

Hypothesis draws the same examples on every run (``derandomize``); set
``HYPOTHESIS_PROFILE=explore`` to let it search new ones.

This file sits at the root, not in ``tests/``, because the suite also runs the doctests of
``src/`` and a conftest only reaches the tests below its folder.
"""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import settings

SEED = 0

# the doctests of an integration import its framework, an optional extra
collect_ignore = [
    f"src/stabletrain/integrations/{name}.py"
    for name in ("lightning", "transformers")
    if importlib.util.find_spec(name) is None
]

# PyPI's torchvision (a CUDA build, brought in by timm) fails to import beside the CPU torch, and
# transformers imports it when it is installed: define its ops' placeholder schemas before any
# test runs, so that a Hugging Face test does not pass or fail with the order of the tests.
if importlib.util.find_spec("torchvision") is not None:
    from tests.benchmarks._run import load_benchmark

    load_benchmark("_zoo").torchvision_placeholders()

pytest_plugins = ("pytester",)  # tests/test_conftest.py runs this file in an inner pytest

settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def _without_local_constants() -> bool:
    """Make a derandomized Hypothesis test draw the same examples whatever ran before it.

    Hypothesis (6.13x and later) also draws, one time in twenty, numbers and strings harvested
    from every local module imported so far (here ``src/stabletrain/...`` and ``benchmarks/``).
    Which modules earlier tests imported then changes a derandomized test's examples: the fuzz
    suite found ``trunc_normal_``'s mean-1e30 bug when ``tests/fuzz/test_stability_fuzz.py`` was
    collected and missed it when it was not. The deterministic profile turns the harvest off
    (through a private hook: if a Hypothesis release renames it, this returns False and
    ``tests/test_conftest.py`` fails, saying so).
    """
    from hypothesis.internal.conjecture import providers

    if not hasattr(providers, "_get_local_constants") or not hasattr(providers, "Constants"):
        return False
    empty = providers.Constants()
    providers._get_local_constants = lambda: empty
    return True


LOCAL_CONSTANTS_OFF = (
    os.environ.get("HYPOTHESIS_PROFILE", "deterministic") == "deterministic"
    and _without_local_constants()
)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("randomly"):
        config.option.randomly_reset_seed = False


@pytest.fixture(autouse=True)
def _same_start() -> Iterator[None]:
    """Seed ``random``, NumPy and torch; restore torch's default dtype and thread count after."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
