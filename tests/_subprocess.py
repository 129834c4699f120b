"""The environment for Python subprocesses of the tests: they import the stabletrain under test."""

from __future__ import annotations

import os
from pathlib import Path

import stabletrain

# The folder that holds the imported package (``src`` of a checkout, or site-packages).
SOURCE_ROOT = Path(stabletrain.__file__).resolve().parents[1]


# Code a Python subprocess runs first where it imports transformers: the placeholder schemas of
# torchvision's ops (see the root conftest.py), a no-op without torchvision.
TORCHVISION_PLACEHOLDERS = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / 'benchmarks')!r})\n"
    "from _zoo import torchvision_placeholders; torchvision_placeholders()\n"
)


def python_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with :data:`SOURCE_ROOT` first on ``PYTHONPATH``, and ``extra`` set.

    A relative ``PYTHONPATH=src`` does not resolve in a subprocess started in another folder, so
    the child would import whichever stabletrain the environment has installed, not this one.
    """
    path = [str(SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}
