"""``stabletrain lab``: lists every claim, runs an experiment into --out, rejects bad input in one
line with exit status 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stabletrain.cli.main import main
from stabletrain.lab import Context, Experiment, Result, experiment, verdicts
from stabletrain.lab.claims import CLAIM_IDS
from stabletrain.lab.experiment import REGISTRY
from tests._claims import known_claims
from tests._subprocess import python_env


@pytest.fixture(autouse=True)
def _fake_claims() -> Iterator[None]:
    """Z1-Z3: claims for the fake experiments below (an experiment needs its claim listed)."""
    with known_claims("Z1", "Z2", "Z3"):
        yield


# A fake claim and its experiment, registered before the command line runs: the lab runs it
# like any other.
_FAKE_RUN = textwrap.dedent(
    """
    import sys
    from stabletrain.cli.main import main
    from stabletrain.lab import Figure, Result, Table, claims, experiment, verdicts

    claims._BY_ID["Z1"] = claims.Claim("Z1", "S", "a fake <experiment>", "two is two", (), "")

    @experiment("Z1")
    def z1(ctx):
        return Result(
            verdicts.close_to(2.0, 2.0, rel_tol=1e-9),
            "2 = 2",
            "Two is two.",
            tables=(Table("numbers", ("x", "y"), ((1, 2.0),)),),
            figures=(Figure("line", "x", "y", {"a": ([1, 2], [1.0, 2.0])}),),
        )

    sys.exit(main(["lab", *sys.argv[1:]]))
    """
)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(COLUMNS="200", **(env or {})),
        check=False,
    )


def test_list_shows_every_claim_and_published_id() -> None:
    done = _run("-m", "stabletrain.cli.main", "lab", "--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for claim_id in CLAIM_IDS:
        assert any(line.startswith(f"│ {claim_id} ") for line in lines), claim_id
    assert "36 claims of the tutorials and 7 published results" in done.stdout
    assert "Glorot & Bengio 2010" in done.stdout
    assert "registered" in done.stdout or "missing" in done.stdout


def test_a_run_prints_the_verdicts_and_writes_the_reports(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    done = _run(
        "-c", _FAKE_RUN, "Z1", "--out", str(out), "--seed", "3", env={"XDG_CACHE_HOME": str(cache)}
    )
    assert done.returncode == 0, done.stderr
    assert "Z1" in done.stdout
    assert "holds" in done.stdout
    assert "1 experiments in" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        ".stabletrain-report",  # the folder's kind: another command will not write over it
        "report.html",
        "report.md",
        "results.json",
    ]
    data = json.loads((out / "results.json").read_text())
    assert (data["seed"], data["mode"]) == (3, "quick")
    assert [(r["claim_id"], r["status"]) for r in data["results"]] == [("Z1", "holds")]
    assert "a fake &lt;experiment&gt;" in (out / "report.html").read_text()
    assert (cache / "stabletrain" / "lab" / "Z1-quick-seed3.json").is_file()


def _one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("stabletrain lab: error: ")
    return done.stderr


def test_an_unknown_id_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _run("-m", "stabletrain.cli.main", "lab", "I1", "Q99", "--out", str(out))
    err = _one_line_exit_2(done)
    assert "unknown claim ID(s) 'Q99'; valid IDs are I1, I2, I3," in err
    assert "P-DROPOUT2014" in err
    assert not out.exists()


def test_an_out_that_is_a_file_or_cannot_be_made_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("")
    assert main(["lab", "I1", "--out", str(file)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"stabletrain lab: error: --out {str(file)!r} is a file, not a folder; give a folder "
        "path.\n"
    )
    assert main(["lab", "I1", "--out", str(file / "below")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"stabletrain lab: error: --out {str(file / 'below')!r} lies under the file "
        f"{str(file)!r}, not a folder; give a folder path.\n"
    )


def test_ids_are_read_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "p-he2015x", "--no-cache"]) == 2
    assert "unknown claim ID(s) 'P-HE2015X'" in capsys.readouterr().err


def test_a_negative_seed_or_both_modes_are_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "--seed", "-1", "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err == "stabletrain lab: error: --seed must be an int >= 0, got -1.\n"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["lab", "--quick", "--full"])
    assert exit_.value.code == 2


def _fake(claim_id: str, calls: list[str], interrupt: bool = False) -> Experiment:
    def fn(ctx: Context) -> Result:
        calls.append(claim_id)
        if interrupt:
            raise KeyboardInterrupt
        return Result(verdicts.close_to(2.0, 2.0, rel_tol=1e-9), "2 = 2", "Two is two.")

    return experiment(claim_id, register=False)(fn)


def test_ctrl_c_exits_130_with_the_finished_experiments_cached_shown_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    for claim_id in ("Z1", "Z3"):
        monkeypatch.setitem(REGISTRY, claim_id, _fake(claim_id, calls))
    monkeypatch.setitem(REGISTRY, "Z2", _fake("Z2", calls, interrupt=True))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["lab", "Z1", "Z2", "Z3", "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert calls == ["Z1", "Z2"]
    assert "Z1" in captured.out  # the verdict table of what finished
    assert captured.err.splitlines()[-1] == (
        f"stabletrain lab: interrupted: 1 of 3 experiments finished (cached and reported in "
        f"{str(out)!r}); did not finish: Z2 Z3; run the same command again to go on."
    )
    assert "Traceback" not in captured.err
    data = json.loads((out / "results.json").read_text())
    assert [r["claim_id"] for r in data["results"]] == ["Z1"]
    cache = tmp_path / "cache" / "stabletrain" / "lab"
    assert sorted(p.name for p in cache.iterdir()) == ["Z1-quick-seed0.json"]

    monkeypatch.setitem(REGISTRY, "Z2", _fake("Z2", calls))  # fixed: the run goes on
    assert main(["lab", "Z1", "Z2", "Z3", "--out", str(out)]) == 0
    assert calls == ["Z1", "Z2", "Z2", "Z3"]  # Z1 came from the cache


def test_ctrl_c_before_anything_finished_writes_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(REGISTRY, "Z2", _fake("Z2", [], interrupt=True))
    out = tmp_path / "out"
    assert main(["lab", "Z2", "--out", str(out), "--no-cache"]) == 130
    assert "0 of 1 experiments finished (none to report)" in capsys.readouterr().err
    assert not out.exists()


_SIGINT_RUN = textwrap.dedent(
    """
    import pathlib, signal, sys, time
    # a terminal's Ctrl-C: Python's own handler (a suite started in the background with `&`
    # hands its children SIGINT ignored, and Python then leaves it ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from stabletrain.cli.main import main
    from stabletrain.lab import Result, claims, experiment, verdicts

    for claim_id in ("Z1", "Z2"):
        claims._BY_ID[claim_id] = claims.Claim(claim_id, "S", "fake", "a fake claim", (), "")

    @experiment("Z1")
    def z1(ctx):
        return Result(verdicts.close_to(2.0, 2.0, rel_tol=1e-9), "2 = 2", "Two is two.")

    @experiment("Z2")
    def z2(ctx):
        pathlib.Path(sys.argv[1]).write_text("started")
        time.sleep(60)

    sys.exit(main(["lab", "Z1", "Z2", "--out", sys.argv[2]]))
    """
)


def test_a_real_sigint_exits_130_and_keeps_what_finished(tmp_path: Path) -> None:
    started, out, cache = tmp_path / "started", tmp_path / "out", tmp_path / "cache"
    env = python_env(COLUMNS="200", XDG_CACHE_HOME=str(cache))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIGINT_RUN, str(started), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for _ in range(1200):  # until Z2 runs (the interpreter and torch load first)
            if started.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert started.exists(), proc.communicate(timeout=60)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()  # reaped and its pipes closed: nothing leaks into the next test
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("stabletrain lab: interrupted: 1 of 2 experiments")
    assert "Z1" in stdout
    assert json.loads((out / "results.json").read_text())["results"][0]["claim_id"] == "Z1"
    assert sorted(p.name for p in (cache / "stabletrain" / "lab").iterdir()) == [
        "Z1-quick-seed0.json"
    ]


def test_list_marks_an_experiment_whose_id_is_not_in_claims_py(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stabletrain._render import render_text
    from stabletrain.cli.lab import list_json, list_table
    from stabletrain.lab import registry

    real = registry.index()
    monkeypatch.setattr(registry, "index", lambda: {**real, "I99": registry.Entry("m", "")})
    lines = render_text(list_table(), width=200).splitlines()
    assert any(line.startswith("│ I99 ") and "not in claims.py" in line for line in lines)
    assert list_json()[-1] == {"id": "I99", "title": "", "experiment": True}
