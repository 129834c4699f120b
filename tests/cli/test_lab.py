"""``stabletrain lab``: lists every claim, runs an experiment into --out, rejects bad input in one
line with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stabletrain.cli.main import main
from stabletrain.lab.claims import CLAIM_IDS

# A fake experiment registered before the command line runs: the lab runs it like any other.
_FAKE_RUN = textwrap.dedent(
    """
    import sys
    from stabletrain.cli.main import main
    from stabletrain.lab import Figure, Result, Table, experiment, verdicts

    @experiment("Z1", title="a fake <experiment>", claim="two is two")
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
        env={**os.environ, "COLUMNS": "200", **(env or {})},
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
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md", "results.json"]
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
        "path (default lab-report).\n"
    )
    assert main(["lab", "I1", "--out", str(file / "below")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"stabletrain lab: error: cannot create --out folder {str(file / 'below')!r}"
    )
    assert len(err.splitlines()) == 1


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
