"""``python -m stabletrain`` is the ``stabletrain`` command."""

from __future__ import annotations

import subprocess
import sys

from tests._subprocess import python_env


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stabletrain", "gains", "relu", "--kind", "bogus"],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("stabletrain")
    assert "bogus" in done.stderr
    assert "Traceback" not in done.stderr


def test_python_dash_m_prints_the_version() -> None:
    import stabletrain

    done = subprocess.run(
        [sys.executable, "-m", "stabletrain", "--version"],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == f"stabletrain {stabletrain.__version__}"
