"""``stabletrain diagnose`` and ``stabletrain report`` end to end, in a subprocess, and every bad
input giving exit status 2 with a one-line message."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from stabletrain.cli.main import main
from tests._subprocess import python_env

FACTORIES = textwrap.dedent(
    """
    import torch
    from torch import nn

    def good():
        return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))

    def raises():
        raise RuntimeError("no weights here")

    def not_a_model():
        return 42

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            raise RuntimeError("forward exploded")

    def broken():
        return Broken()
    """
)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stabletrain.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=python_env(),
        timeout=300,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "factories.py").write_text(FACTORIES)
    return tmp_path


def test_the_default_model_is_diagnosed_and_the_report_written(workdir: Path) -> None:
    done = cli("diagnose", "--out", "out", "--batch-size", "64", cwd=workdir)
    assert done.returncode == 0, done.stderr
    for name in ("report.html", "report.md", "report.json"):
        assert (workdir / "out" / name).is_file(), name
    data = json.loads((workdir / "out" / "report.json").read_text())
    assert len(data["layers"]) >= 30  # the 30-layer plain MLP, every layer measured
    rules = {f["rule"] for f in data["findings"]}
    assert "deep_plain_stack" in rules or "deep_saturating" in rules, rules


def test_a_user_factory_with_fix_reports_before_and_after(workdir: Path) -> None:
    done = cli(
        "diagnose", "factories:good", "--input-shape", "8", "--fix", "--out", "o",
        "--format", "json,md", cwd=workdir,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not (workdir / "o" / "report.html").exists()
    assert (workdir / "o" / "report.md").is_file()
    data = json.loads((workdir / "o" / "report.json").read_text())
    assert data["init_report"] is not None  # auto_init was applied


def test_fail_on_gives_status_1_when_a_finding_is_severe_enough(workdir: Path) -> None:
    done = cli("diagnose", "--fail-on", "warning", "--out", "o", cwd=workdir)
    assert done.returncode == 1, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchmodule:build", "--input-shape", "8"], "cannot import 'nosuchmodule'"),
        (["factories:missing", "--input-shape", "8"], "has no function 'missing'"),
        (["factories", "--input-shape", "8"], "not MODULE:FACTORY"),
        (["factories:raises", "--input-shape", "8"], "raised RuntimeError: no weights here"),
        (["factories:not_a_model", "--input-shape", "8"], "returned int, not an nn.Module"),
        (["factories:broken", "--input-shape", "8"], "forward exploded"),
        (["factories:good", "--input-shape", "5"], "cannot diagnose"),  # wrong shape
        (["factories:good", "--input-shape", "8,x"], "positive integers"),
        (["factories:good"], "give the input"),
        (["factories:good", "--input-file", "missing.pt"], "does not exist"),
        (["factories:good", "--input-file", "notes.txt"], "not in torch.save's format"),
        (["factories:good", "--input-file", "number.pt"], "holds a int"),
        (["--format", "pdf"], "--format 'pdf'"),
        (["--batch-size", "0"], "--batch-size must be an int >= 1"),
    ],
)
def test_bad_input_gives_status_2_and_one_line(
    workdir: Path, args: list[str], message: str
) -> None:
    (workdir / "notes.txt").write_text("not a tensor")
    torch.save(42, workdir / "number.pt")
    done = cli("diagnose", *args, cwd=workdir)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_an_input_file_holding_a_tuple_is_passed_as_positional_inputs(workdir: Path) -> None:
    torch.save((torch.randn(16, 8),), workdir / "x.pt")
    done = cli("diagnose", "factories:good", "--input-file", "x.pt", "--out", "o", cwd=workdir)
    assert done.returncode == 0, done.stderr


def test_report_renders_a_monitor_log_and_refuses_a_missing_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stabletrain.monitoring import JSONLSink, TrainingMonitor, every

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log = tmp_path / "run.jsonl"
    with TrainingMonitor(model, opt, schedule=every(2), sinks=[JSONLSink(log)], summary=False) as m:
        for _ in range(6):
            loss = model(torch.randn(16, 4)).pow(2).mean()
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
            m.step(loss)
    assert main(["report", str(log), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.html").is_file()
    assert main(["report", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert len(err.strip().splitlines()) == 1
