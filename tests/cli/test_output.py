"""--json, --quiet, --fail-on and report folders: what CI scripts rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stabletrain.cli import diagnose, report
from stabletrain.cli._out import folder_kind
from stabletrain.cli.main import main


def test_diagnose_json_is_the_only_stdout_and_fail_on_names_the_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d"
    argv = ["diagnose", "--out", str(out), "--format", "md,json", "--json", "--fail-on", "warning"]
    assert main(argv) == 1
    stdout, stderr = capsys.readouterr()
    data = json.loads(stdout)  # nothing but the JSON on stdout
    assert data["schema"] == "stabletrain.diagnosis"
    rules = [f["rule"] for f in data["findings"] if f["severity"] in ("warning", "error")]
    assert rules
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("stabletrain diagnose: --fail-on warning:")
    assert f"{len(rules)} finding(s)" in line
    assert all(rule in line for rule in rules)
    assert folder_kind(out) == "diagnosis"


def test_quiet_prints_nothing_and_still_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "d"
    assert main(["diagnose", "--out", str(out), "--format", "json", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert (out / "report.json").is_file()


def test_diagnose_and_report_default_to_different_folders() -> None:
    assert diagnose.DEFAULT_OUT != report.DEFAULT_OUT


def test_force_writes_over_another_kind_of_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    (out / "results.json").write_text("{}")  # the lab's
    assert main(["diagnose", "--out", str(out), "--format", "json"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["diagnose", "--out", str(out), "--format", "json", "--force"]) == 0
    assert json.loads((out / "report.json").read_text())["schema"] == "stabletrain.diagnosis"


def test_the_same_kind_is_replaced_without_force(tmp_path: Path) -> None:
    out = str(tmp_path / "d")
    assert main(["diagnose", "--out", out, "--format", "json", "--quiet"]) == 0
    assert main(["diagnose", "--out", out, "--format", "json", "--quiet"]) == 0


def test_gains_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gains", "relu", "tanh", "--json"]) == 0
    rows = {r["activation"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["relu"]["forward"] == pytest.approx(2**0.5, rel=1e-6)
    assert rows["tanh"]["torch"] == pytest.approx(5 / 3, rel=1e-6)


def test_schemes_json_has_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemes", "--depth", "4", "--width", "16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"depth", "width", "gains", "profiles", "auto_init"}
    assert set(data["profiles"]) == {"tanh", "relu", "gelu"}
    he = next(r for r in data["profiles"]["relu"] if r["init"] == "He (exact gain)")
    assert set(he["std"]) == {"1", "2", "4"}
    assert 0.3 < he["std"]["4"] < 3.0  # He keeps a relu net's signal at depth 4
