"""Lightning DDP, 2 CPU processes (gloo): one valid JSONL from rank 0 that ``stabletrain report``
renders, and per-layer norms of the synchronized gradients, the same on both ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

pytest.importorskip("lightning")

from stabletrain.monitoring import read_jsonl
from tests._subprocess import python_env

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 240

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()), reason="no gloo backend"
    ),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    env = python_env(PYTHONPATH=f"{ROOT}", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = python_env()["PYTHONPATH"] + f":{ROOT}"
    subprocess.run(
        [sys.executable, str(ROOT / "tests/integrations/_lightning_ddp.py"), str(out)],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=DEADLINE_S,
        capture_output=True,
    )
    return out


def test_both_ranks_count_the_trainers_optimizer_steps(run: Path) -> None:
    for rank in (0, 1):
        assert (run / f"steps.rank{rank}").read_text() == "6 6"


def test_rank_zero_alone_writes_one_valid_jsonl_that_the_report_renders(run: Path) -> None:
    assert sorted(p.name for p in run.glob("rows*.jsonl")) == ["rows.jsonl"]
    rows = read_jsonl(run / "rows.jsonl")  # raises on a corrupted line
    assert [r.step for r in rows if r.metric == "loss"] == [1, 2, 3, 4, 5, 6]
    report = run / "report"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stabletrain.cli.main",
            "report",
            str(run / "rows.jsonl"),
            "--out",
            str(report),
            "--format",
            "md",
        ],
        env=python_env(),
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert any(report.rglob("*.md"))


def test_each_rank_measures_the_synchronized_gradients(run: Path) -> None:
    by_rank = [
        {
            (r.step, r.layer): r.value
            for r in read_jsonl(run / f"each.rank{k}.jsonl")
            if r.metric == "grad_norm"
        }
        for k in (0, 1)
    ]
    assert by_rank[0].keys() == by_rank[1].keys()
    assert len(by_rank[0]) == 6 * 3  # 2 layers and the total, 6 steps
    for key, value in by_rank[0].items():
        assert by_rank[1][key] == pytest.approx(value, rel=1e-6), key
