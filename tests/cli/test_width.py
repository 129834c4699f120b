"""At 80 columns (``COLUMNS=80``, as in a pipe) every command's output keeps each line within
80 columns, shows Hugging Face-style layer names whole, and never wraps prose one word a line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from stabletrain._render import render_text
from stabletrain.cli.main import main
from stabletrain.diagnostics.propagation import diagnose
from stabletrain.findings import Finding
from stabletrain.lab import Result, verdicts
from stabletrain.lab.report import verdict_table
from stabletrain.monitoring import JSONLSink, TrainingMonitor, every
from stabletrain.monitoring._summary import findings_renderable
from tests._long_names import LongNames, assert_fits, linear_names

FACTORY = f"{Path(__file__).parents[1] / '_long_names.py'}:build"
WIDTH = 80


@pytest.fixture(autouse=True)
def _narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))


def _phrase_on_one_line(text: str, phrase: str) -> bool:
    """Whether ``phrase`` (several words) stands on one line: prose wrapped at a narrow column
    (one or two words a line) never holds it."""
    return any(phrase in line for line in text.splitlines())


def test_diagnose_at_80_columns_shows_every_layer_name_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["diagnose", FACTORY, "--input-shape", "16", "--out", str(tmp_path / "d")])
    assert status == 0
    out = capsys.readouterr().out
    tables = "\n".join(line for line in out.splitlines() if " report: " not in line)  # paths
    assert_fits(tables, WIDTH, linear_names(LongNames()))
    assert "model.layers.1.self_attn.q_proj" in out


def test_print_of_a_diagnosis_follows_the_terminal_width() -> None:
    torch.manual_seed(0)
    model = LongNames(depth=3)
    with torch.no_grad():  # shrink one branch so a finding with prose is shown
        model.model.layers[0].mlp.down_proj.weight.mul_(1e-4)
    d = diagnose(model, torch.randn(32, 16))
    text = str(d)
    assert_fits(text, WIDTH, linear_names(model))
    assert len(render_text(d, width=160).splitlines()[2]) > WIDTH  # wide: the boxed table


def test_the_monitor_summary_at_80_columns_wraps_prose_at_the_full_width() -> None:
    names = linear_names(LongNames())
    message = (
        "The gradient norm of this layer is 1e-9 of the largest layer's: it receives almost no "
        "signal and its weights will not move."
    )
    findings = [
        Finding(
            severity="warning",
            layer=name,
            metric="grad_norm",
            value=1e-9,
            threshold=1e-7,
            message=message,
            fix="stabletrain.auto_init(m, x)",
        )
        for name in names
    ]
    text = render_text(findings_renderable(findings, steps=50, logged=50, preset="standard"))
    assert_fits(text, WIDTH, names)
    assert _phrase_on_one_line(text, "The gradient norm of this layer is 1e-9")
    assert _phrase_on_one_line(text, "fix: stabletrain.auto_init(m, x)")


def test_the_lab_verdicts_at_80_columns_keep_ids_and_wrap_claims_whole() -> None:
    r = Result(verdicts.at_most(0.01, 0.05), "error = 0.01 over 5 seeds", "ok", claim_id="I5")
    text = render_text(verdict_table([r]))
    assert_fits(text, WIDTH, ["I5", "error = 0.01 over 5 seeds"])


def test_gains_at_80_columns_fit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gains"]) == 0
    out = capsys.readouterr().out
    assert_fits(out, WIDTH, ["leaky_relu", "1.4142"])


def test_report_at_80_columns_fits_and_names_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = LongNames()
    log = tmp_path / "run.jsonl"
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 16), torch.randn(16, 4)
    with TrainingMonitor(
        model, opt, sinks=[JSONLSink(log)], schedule=every(1), summary=False
    ) as mon:
        for _ in range(3):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
    out_dir = tmp_path / "a-folder-with-a-rather-long-name-so-that-the-paths-pass-80-columns"
    assert main(["report", str(log), "--out", str(out_dir), "--format", "md,json"]) == 0
    out = capsys.readouterr().out
    assert str(out_dir / "report.json") in out  # a path is never wrapped
    layers = json.loads((out_dir / "report.json").read_text())
    assert "model.layers.1.mlp.down_proj" in json.dumps(layers)


def test_printed_reports_at_80_columns_keep_parameter_names_whole() -> None:
    import stabletrain as st

    torch.manual_seed(0)
    model = LongNames()
    params = [name for name, _ in model.named_parameters()]
    groups = st.explain_param_groups(model, weight_decay=0.05)
    assert_fits(str(groups), WIDTH, params)
    assert "weight: Linear weight" in str(groups)  # the reason wraps whole, not a word a line
    assert_fits(str(st.sparsity(model)), WIDTH, params)
    assert_fits(str(st.auto_init(model, torch.randn(8, 16))), WIDTH, params)


def test_the_demo_at_80_columns_fits_and_cuts_no_rule_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--steps", "5", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    tables = "\n".join(line for line in out.splitlines() if " report:" not in line)  # paths
    assert_fits(tables, WIDTH, ["linear1", "linear30", "propagation_backward_vanishing"])
