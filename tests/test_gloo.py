"""The two-process test helper: a rank that hangs fails the test in bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests._gloo import spawn_ranks


def _hang(rank: int, store_file: str, out_dir: str) -> None:
    time.sleep(600)


def test_ranks_that_outlive_the_deadline_are_killed_and_the_test_fails(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"the 2 ranks did not finish in 3\.0 s"):
        spawn_ranks(_hang, 2, tmp_path, deadline_s=3.0)
    assert time.monotonic() - start < 30  # killed, not waited for
