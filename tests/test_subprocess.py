"""Python subprocesses of the tests import the stabletrain under test, from any folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import stabletrain
from tests._subprocess import python_env


def test_a_subprocess_in_another_folder_imports_this_stabletrain(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import stabletrain; print(stabletrain.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=python_env(),
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == str(Path(stabletrain.__file__).resolve())
