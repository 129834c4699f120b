"""Every subcommand keeps one promise on bad input: exit status 2, exactly one line on stderr that
names the bad value and the fix, no traceback, and no output folder left behind.

The table runs the command line in-process (``main(argv)``) in a fresh folder holding the files
the cases point at; a case is *clear* when it keeps the whole promise, *unclear* when it exits
or prints otherwise (or its line misses the value or the fix), and a *traceback* when an
exception escapes or a traceback is printed.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from stabletrain.cli.main import main

FACTORIES = textwrap.dedent(
    """
    import sys
    import torch
    from torch import nn

    NOT_CALLABLE = 3

    def good():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def raises():
        raise RuntimeError("no weights here")

    def not_a_model():
        return 42

    def exits():
        sys.exit(3)

    def interrupts():
        raise KeyboardInterrupt

    def needs_args(width):
        return nn.Linear(width, width)

    def on_meta():
        return good().to("meta")

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

# A pickle that would run code when unpickled without weights_only.
_EVIL = b"cos\nsystem\n(S'echo owned'\ntR."


def _row(step: object, layer: object, value: object, metric: str = "grad_norm") -> str:
    return json.dumps({"schema": 1, "step": step, "layer": layer, "metric": metric, "value": value})


def _meta(layers: object) -> str:
    return json.dumps(
        {"schema": 1, "meta": {"preset": "standard", "thresholds": {}, "layers": layers}}
    )


LOGS = {
    "good.jsonl": [
        _meta([{"name": "fc", "depth": 0}]),
        _row(1, "fc", 0.5),
        _row(1, None, 2.0, "loss"),
    ],
    "null_value.jsonl": [_row(1, "fc", 0.5), _row(2, "fc", None)],
    "null_step.jsonl": [_row(None, "fc", 0.5)],
    "dict_layer.jsonl": [_row(1, {"name": "fc"}, 0.5)],
    "list_layer.jsonl": [_row(1, ["fc"], 0.5)],
    "bad_depth.jsonl": [_meta([{"name": "fc", "depth": "deep"}]), _row(1, "fc", 0.5)],
    "negative_depth.jsonl": [_meta([{"name": "fc", "depth": -3}]), _row(1, "fc", 0.5)],
    "zero_step.jsonl": [_row(0, "fc", 0.5)],
    "text_value.jsonl": [_row(1, "fc", "big")],
    "not_json.jsonl": ["this is not json"],
    "empty.jsonl": [],
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working folder with every file the cases name; imports of it forgotten after."""
    (tmp_path / "badfactories.py").write_text(FACTORIES)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(4)\n")
    (tmp_path / "syntax_error.py").write_text("def build(:\n")
    (tmp_path / "notes.txt").write_text("not a tensor, just words\n")
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.py").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "evil.pt").write_bytes(_EVIL)
    (tmp_path / "pickled.pt").write_bytes(pickle.dumps({"x": 1}))
    torch.save(42, tmp_path / "number.pt")
    torch.save(torch.full((4, 8), float("nan")), tmp_path / "nan.pt")
    torch.save(torch.tensor([[1.0, float("inf")] * 4] * 4), tmp_path / "inf.pt")
    for name, lines in LOGS.items():
        (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x81" * 8)
    for kind, name, text in (  # report folders of each kind, as the commands leave them
        ("a_diagnosis", "report.json", '{"schema": "stabletrain.diagnosis", "version": 1}'),
        ("a_run", "report.json", '{"schema": "stabletrain.run_report"}'),
        ("a_lab", "results.json", "{}"),
    ):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / name).write_text(text)
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    monkeypatch.setenv("COLUMNS", "100")
    if os.geteuid() == 0:  # root writes anywhere: make the folder unwritable as for a user
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, **kw: (
                not (mode & os.W_OK and Path(path).resolve() == readonly.resolve())
                and real_access(path, mode, **kw)
            ),
        )
    before = set(sys.modules)
    yield tmp_path
    readonly.chmod(0o755)
    for name in set(sys.modules) - before:
        if name in ("badfactories", "exits_on_import", "syntax_error"):
            del sys.modules[name]


@dataclass(frozen=True)
class Case:
    """A command line and what its one line must name (the value and the fix)."""

    argv: tuple[str, ...]
    names: tuple[str, ...]
    hide: tuple[str, ...] = ()  # modules that fail to import, as in an install without extras


REPORT_EXTRA = ("matplotlib", "jinja2")


def case(*argv: str, names: tuple[str, ...], hide: tuple[str, ...] = ()) -> Case:
    return Case(argv, names, hide)


def _diag(*args: str) -> tuple[str, ...]:
    return ("diagnose", "badfactories:good", *args)


CASES: dict[str, Case] = {
    # the root command
    "no-subcommand": case(names=("COMMAND", "--help")),
    "unknown-subcommand": case("frobnicate", names=("frobnicate", "diagnose")),
    "unknown-root-option": case("--bogus", "gains", names=("--bogus", "--help")),
    # diagnose: options
    "diagnose-unknown-option": case("diagnose", "--bogus", names=("--bogus", "--help")),
    "diagnose-seed-not-int": case("diagnose", "--seed", "abc", names=("--seed", "'abc'")),
    "diagnose-seed-huge": case("diagnose", "--seed", str(2**70), names=("--seed", "4294967295")),
    "diagnose-seed-negative": case("diagnose", "--seed", "-1", names=("--seed", ">= 0")),
    "diagnose-batch-zero": case("diagnose", "--batch-size", "0", names=("--batch-size", ">= 1")),
    "diagnose-batch-negative": case(
        "diagnose", "--batch-size", "-5", names=("--batch-size", ">= 1")
    ),
    "diagnose-batch-huge": case(
        "diagnose", "--batch-size", "200000000", names=("--batch-size", "GB", "--max-input-gb")
    ),
    "diagnose-shape-huge": case(
        "diagnose",
        "--input-shape",
        "100000,100000,100",
        names=("--input-shape", "TB", "--max-input-gb"),
    ),
    "diagnose-max-input-negative": case(
        "diagnose", "--max-input-gb", "-1", names=("--max-input-gb", "> 0")
    ),
    "diagnose-max-input-nan": case(
        "diagnose", "--max-input-gb", "nan", names=("--max-input-gb", "> 0")
    ),
    "diagnose-shape-zero": case("diagnose", "--input-shape", "0", names=("'0'", "positive")),
    "diagnose-shape-negative": case(
        "diagnose", "--input-shape", "3,-2", names=("'3,-2'", "positive")
    ),
    "diagnose-shape-empty": case("diagnose", "--input-shape", "", names=("''", "positive")),
    "diagnose-shape-and-file": case(
        *_diag("--input-shape", "8", "--input-file", "nan.pt"), names=("--input-shape", "not both")
    ),
    "diagnose-format-unknown": case("diagnose", "--format", "pdf", names=("'pdf'", "html")),
    "diagnose-fail-on-unknown": case("diagnose", "--fail-on", "fatal", names=("'fatal'", "error")),
    # diagnose: the output folder, checked before any work
    "diagnose-out-is-file": case("diagnose", "--out", "afile", names=("afile", "folder")),
    "diagnose-out-under-file": case("diagnose", "--out", "afile/report", names=("afile", "folder")),
    "diagnose-out-readonly": case("diagnose", "--out", "readonly", names=("readonly", "writable")),
    "diagnose-out-under-readonly": case(
        "diagnose", "--out", "readonly/sub/report", names=("readonly", "writable")
    ),
    "diagnose-no-report-extra": case(
        "diagnose", names=("stabletrain[report]", "--format md,json"), hide=REPORT_EXTRA
    ),
    "diagnose-into-a-run-report": case(
        "diagnose", "--out", "a_run", names=("a_run", "a run report", "--force")
    ),
    "diagnose-into-the-lab": case(
        "diagnose", "--out", "a_lab", names=("a_lab", "a lab report", "--force")
    ),
    # diagnose: --json and --quiet change the output, not the promise on bad input
    "diagnose-json-bad-shape": case(
        "diagnose", "--json", "--input-shape", "0", names=("'0'", "positive")
    ),
    "diagnose-quiet-bad-seed": case(
        "diagnose", "--quiet", "--seed", "-1", names=("--seed", ">= 0")
    ),
    "diagnose-json-with-value": case("diagnose", "--json=yes", names=("--json", "--help")),
    # diagnose: the model factory
    "model-not-importable": case(
        "diagnose", "nosuchmodule:build", "--input-shape", "8", names=("nosuchmodule", "MODULE")
    ),
    "model-no-colon": case(
        "diagnose", "badfactories", "--input-shape", "8", names=("badfactories", "MODULE:FACTORY")
    ),
    "model-empty-module": case("diagnose", ":build", names=("':build'", "MODULE:FACTORY")),
    "model-missing-attr": case(
        "diagnose", "badfactories:missing", "--input-shape", "8", names=("'missing'", "function")
    ),
    "model-not-callable": case(
        "diagnose",
        "badfactories:NOT_CALLABLE",
        "--input-shape",
        "8",
        names=("NOT_CALLABLE", "function"),
    ),
    "model-raises": case(
        "diagnose",
        "badfactories:raises",
        "--input-shape",
        "8",
        names=("badfactories:raises", "no weights here"),
    ),
    "model-not-a-module": case(
        "diagnose",
        "badfactories:not_a_model",
        "--input-shape",
        "8",
        names=("not_a_model", "nn.Module"),
    ),
    "model-exits": case(
        "diagnose",
        "badfactories:exits",
        "--input-shape",
        "8",
        names=("badfactories:exits", "sys.exit(3)"),
    ),
    "model-interrupts": case(
        "diagnose",
        "badfactories:interrupts",
        "--input-shape",
        "8",
        names=("badfactories:interrupts", "KeyboardInterrupt"),
    ),
    "model-needs-args": case(
        "diagnose",
        "badfactories:needs_args",
        "--input-shape",
        "8",
        names=("needs_args", "no arguments"),
    ),
    "model-exits-on-import": case(
        "diagnose",
        "exits_on_import:build",
        "--input-shape",
        "8",
        names=("exits_on_import", "sys.exit(4)"),
    ),
    "model-syntax-error": case(
        "diagnose",
        "syntax_error:build",
        "--input-shape",
        "8",
        names=("syntax_error", "SyntaxError"),
    ),
    "model-file-missing": case(
        "diagnose", "./nofile.py:build", "--input-shape", "8", names=("nofile.py", "does not exist")
    ),
    "model-file-is-folder": case(
        "diagnose", "adir.py:build", "--input-shape", "8", names=("adir.py", "folder")
    ),
    "model-on-meta": case(
        "diagnose", "badfactories:on_meta", "--input-shape", "8", names=("meta", "to_empty")
    ),
    "model-forward-raises": case(
        "diagnose",
        "badfactories:broken",
        "--input-shape",
        "8",
        names=("badfactories:broken", "forward exploded"),
    ),
    "model-wrong-shape": case(*_diag("--input-shape", "5"), names=("badfactories:good", "shape")),
    "model-no-input": case(*_diag(), names=("--input-shape", "--input-file")),
    # diagnose: the input file
    "input-missing": case(
        *_diag("--input-file", "missing.pt"), names=("missing.pt", "does not exist")
    ),
    "input-is-folder": case(*_diag("--input-file", "adir"), names=("adir", "folder")),
    "input-text": case(*_diag("--input-file", "notes.txt"), names=("notes.txt", "torch.save")),
    "input-empty": case(*_diag("--input-file", "empty.pt"), names=("empty.pt", "torch.save")),
    "input-plain-pickle": case(
        *_diag("--input-file", "pickled.pt"), names=("pickled.pt", "torch.save")
    ),
    "input-malicious-pickle": case(
        *_diag("--input-file", "evil.pt"), names=("evil.pt", "torch.save")
    ),
    "input-holds-int": case(
        *_diag("--input-file", "number.pt"), names=("number.pt", "save a tensor")
    ),
    "input-all-nan": case(*_diag("--input-file", "nan.pt"), names=("nan.pt", "NaN")),
    "input-has-inf": case(*_diag("--input-file", "inf.pt"), names=("inf.pt", "inf")),
    # report
    "report-missing-log": case("report", "none.jsonl", names=("none.jsonl", "JSONLSink")),
    "report-log-is-folder": case("report", "adir", names=("adir", "JSONLSink")),
    "report-not-json": case("report", "not_json.jsonl", names=("not_json.jsonl", "JSON")),
    "report-binary": case("report", "binary.jsonl", names=("binary.jsonl", "text")),
    "report-empty-log": case("report", "empty.jsonl", names=("empty.jsonl", "empty")),
    "report-text-file": case("report", "notes.txt", names=("notes.txt", "JSON")),
    "report-null-value": case("report", "null_value.jsonl", names=("line 2", "value", "number")),
    "report-null-step": case("report", "null_step.jsonl", names=("line 1", "step", ">= 1")),
    "report-zero-step": case("report", "zero_step.jsonl", names=("line 1", "step", ">= 1")),
    "report-text-value": case("report", "text_value.jsonl", names=("line 1", "'big'", "number")),
    "report-dict-layer": case("report", "dict_layer.jsonl", names=("line 1", "layer", "string")),
    "report-list-layer": case("report", "list_layer.jsonl", names=("line 1", "layer", "string")),
    "report-bad-depth": case("report", "bad_depth.jsonl", names=("line 1", "depth", "'deep'")),
    "report-negative-depth": case(
        "report", "negative_depth.jsonl", names=("line 1", "depth", "-3")
    ),
    "report-out-is-file": case("report", "good.jsonl", "--out", "afile", names=("afile", "folder")),
    "report-out-readonly": case(
        "report", "good.jsonl", "--out", "readonly", names=("readonly", "writable")
    ),
    "report-format-unknown": case(
        "report", "good.jsonl", "--format", "xml", names=("'xml'", "html")
    ),
    "report-no-log-given": case("report", names=("RUN.jsonl", "--help")),
    "report-into-a-diagnosis": case(
        "report",
        "good.jsonl",
        "--out",
        "a_diagnosis",
        names=("a_diagnosis", "diagnosis", "--force"),
    ),
    "report-quiet-missing-log": case(
        "report", "none.jsonl", "--quiet", names=("none.jsonl", "JSONLSink")
    ),
    "report-no-report-extra": case(
        "report",
        "good.jsonl",
        names=("stabletrain[report]", "--format md,json"),
        hide=REPORT_EXTRA,
    ),
    # lab
    "lab-unknown-id": case("lab", "Q99", names=("'Q99'", "valid IDs")),
    "lab-seed-negative": case("lab", "I1", "--seed", "-1", names=("--seed", ">= 0")),
    "lab-seed-huge": case("lab", "I1", "--seed", str(2**70), names=("--seed", "4294967295")),
    "lab-threads-zero": case("lab", "I1", "--threads", "0", names=("--threads", ">= 1")),
    "lab-jobs-zero": case("lab", "I1", "--jobs", "0", names=("--jobs", ">= 1")),
    "lab-out-is-file": case("lab", "I1", "--out", "afile", names=("afile", "folder")),
    "lab-out-under-file": case("lab", "I1", "--out", "afile/below", names=("afile", "folder")),
    "lab-out-readonly": case("lab", "I1", "--out", "readonly", names=("readonly", "writable")),
    "lab-both-modes": case("lab", "--quick", "--full", names=("--full", "--quick")),
    "lab-into-a-diagnosis": case(
        "lab", "I1", "--out", "a_diagnosis", names=("a_diagnosis", "diagnosis", "--force")
    ),
    "lab-json-without-list": case("lab", "I1", "--json", names=("--json", "--list")),
    "lab-format-unknown": case("lab", "I1", "--format", "pdf", names=("'pdf'", "html")),
    # gains
    "gains-unknown-activation": case("gains", "relu7", names=("relu7", "valid")),
    "gains-wrong-case": case("gains", "relu", "Tanh", names=("Tanh", "tanh")),
    "gains-json-unknown-activation": case("gains", "--json", "relu7", names=("relu7", "valid")),
    # schemes
    "schemes-depth-zero": case("schemes", "--depth", "0", names=("--depth", ">= 1")),
    "schemes-depth-huge": case("schemes", "--depth", "1000000", names=("--depth", "<=")),
    "schemes-width-negative": case("schemes", "--width", "-3", names=("--width", ">= 1")),
    "schemes-width-huge": case("schemes", "--width", "1000000", names=("--width", "<=")),
    "schemes-json-depth-zero": case("schemes", "--json", "--depth", "0", names=("--depth", ">= 1")),
    # demo
    "demo-steps-zero": case("demo", "--steps", "0", names=("--steps", ">= 1")),
    "demo-seed-huge": case("demo", "--seed", str(2**70), names=("--seed", "4294967295")),
    "demo-out-is-file": case("demo", "--out", "afile", names=("afile", "folder")),
    "demo-no-data-extra": case(
        "demo", names=("scikit-learn", "stabletrain[data]"), hide=("sklearn", "sklearn.datasets")
    ),
    "demo-no-report-extra": case("demo", names=("stabletrain[report]",), hide=REPORT_EXTRA),
    "demo-out-readonly": case("demo", "--out", "readonly", names=("readonly", "writable")),
    "demo-into-the-lab": case("demo", "--out", "a_lab", names=("a_lab", "lab", "--force")),
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".cache" not in p.parts}


def outcome(
    c: Case, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """``("clear" | "unclear" | "traceback", what was seen)`` for one case."""
    for module in c.hide:
        monkeypatch.setitem(sys.modules, module, None)
    files = _tree(root)
    escaped = ""
    try:
        status: object = main(list(c.argv))
    except SystemExit as exit_:
        status = exit_.code
    except BaseException:  # anything escaping main is a traceback for the user
        status, escaped = None, traceback.format_exc()
    out, err = capsys.readouterr()
    seen = f"status {status}; stderr {err!r}; stdout {out[-300:]!r}"
    if escaped or "Traceback" in out + err:
        return "traceback", (escaped or seen)[-800:]
    problems = []
    if status != 2:
        problems.append(f"status {status}")
    if len(err.splitlines()) != 1 or not err.startswith("stabletrain"):
        problems.append("not one line")
    problems += [f"misses {n!r}" for n in c.names if n not in err]
    left = _tree(root) - files
    if left:
        problems.append(f"left {sorted(left)}")
    return ("unclear", f"{', '.join(problems)}; {seen}") if problems else ("clear", seen)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_status_2_and_one_line_naming_the_value_and_the_fix(
    name: str, folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kind, seen = outcome(CASES[name], folder, capsys, monkeypatch)
    assert kind == "clear", f"{name} {kind.upper()}: {seen}"


def test_the_table_covers_every_subcommand_with_at_least_40_cases() -> None:
    assert len(CASES) >= 40
    commands = {c.argv[0] for c in CASES.values() if c.argv}
    assert commands >= {"diagnose", "report", "lab", "gains", "schemes", "demo"}


def test_a_write_that_fails_after_the_checks_removes_the_folder_it_made(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stabletrain.report as report

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_report", disk_full)
    argv = [*_diag("--input-shape", "8", "--out", "new/report")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "stabletrain diagnose: error: cannot write into --out 'new/report' (No space left on "
        "device); give a writable folder.\n"
    )
    assert not (folder / "new").exists()
