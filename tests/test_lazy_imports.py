"""``import stabletrain`` and the CLI's start import PyTorch only when it is needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests._subprocess import python_env


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('MODULES', ' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=python_env(), check=True
    )
    return set(done.stdout.rpartition("MODULES ")[2].split())  # after what the code printed


def test_every_public_name_resolves_to_what_its_module_defines() -> None:
    import stabletrain.init
    import stabletrain.monitoring

    for name in stabletrain.__all__:
        assert getattr(stabletrain, name) is not None, name
    with pytest.raises(AttributeError, match="no_such_name"):
        stabletrain.no_such_name  # noqa: B018
    assert stabletrain.TrainingMonitor is stabletrain.monitoring.TrainingMonitor
    assert stabletrain.gain is stabletrain.init.gain
    assert set(stabletrain.__all__) <= set(dir(stabletrain))


def test_import_stabletrain_does_not_import_torch() -> None:
    modules = _imported_after("import stabletrain")
    assert "torch" not in modules
    assert "torch" in _imported_after("import stabletrain as st\nst.gain('relu')")


def test_the_lab_list_imports_no_torch() -> None:
    code = "from stabletrain.cli.main import main\nmain(['lab', '--list', '--quiet'])"
    modules = _imported_after(code)
    assert not {"torch", "scipy", "numpy"} & modules


def test_help_imports_no_torch_and_lists_every_command() -> None:
    for argv in (["--help"], ["diagnose", "--help"], ["lab", "--help"]):
        code = (
            "from stabletrain.cli.main import main\n"
            "try:\n"
            f"    main({argv!r})\n"
            "except SystemExit:\n"
            "    pass"
        )
        assert "torch" not in _imported_after(code), argv


def test_the_root_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from stabletrain.cli._commands import COMMANDS
    from stabletrain.cli.main import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, line in COMMANDS.items():
        assert name in out
        assert line.split()[0] in out
