"""The monitored run is trained once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from stabletrain.findings import Finding
from tests.report._data import monitored_run


@pytest.fixture(scope="session")
def run_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Finding]]:
    """(a JSONL log of 8 steps, every one logged; the monitor's own findings)."""
    path = tmp_path_factory.mktemp("run") / "rows.jsonl"
    return path, monitored_run(path)
