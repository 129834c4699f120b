"""timm for the tests of real vision architectures, importable beside a torchvision whose
compiled ops do not load (PyPI's CUDA build beside the CPU build of torch). Callers skip first:
``pytest.importorskip("timm", exc_type=ImportError)`` is not enough, as the import itself fails;
use :func:`timm_or_skip`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.benchmarks._run import load_benchmark


def import_timm() -> Any:
    """``timm``, after defining placeholder schemas for torchvision's ``nms``/``qnms`` (the zoo's
    :func:`torchvision_placeholders`: one definition, kept alive for the process). Idempotent."""
    return load_benchmark("_zoo").import_timm()


def timm_or_skip() -> Any:
    """``timm``, or skip the calling test with the reason it cannot be imported."""
    try:
        return import_timm()
    except ImportError as error:
        pytest.skip(f"timm is not importable: {error}")
