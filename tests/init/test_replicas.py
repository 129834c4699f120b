"""Data-dependent init under data parallelism: every replica ends with rank 0's parameters.

Two CPU processes (gloo) each run ``auto_init`` / ``lsuv_`` on a DDP model with their own batch
(tests/init/_replicas_worker.py). Alone, the ranks calibrate to different parameters; in the
process group both end bit-identical to what rank 0 computes alone, and both return rank 0's
report.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.distributed as dist

from stabletrain.init._replicas import replicate_from_rank0
from stabletrain.init.policy import InitReport
from tests._gloo import spawn_ranks
from tests.init import _replicas_worker as worker

HOWS = ["auto_init", "lsuv_"]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn_ranks(worker.run, worker.WORLD, tmp_path_factory.mktemp("replicas"))


def test_without_a_process_group_replication_changes_nothing() -> None:
    model = worker.build_model()
    before = [p.detach().clone() for p in model.parameters()]
    report = InitReport()
    assert replicate_from_rank0(model, report) is report
    assert report.notes == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.slow
@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)
@pytest.mark.parametrize("how", HOWS)
def test_ddp_replicas_are_bit_identical_and_equal_rank_0s_own_init(
    ranks: list[dict[str, Any]], how: str
) -> None:
    alone = [r["local"][how] for r in ranks]
    assert any(not torch.equal(alone[0][n], alone[1][n]) for n in alone[0])  # data matters
    (params0, report0), (params1, report1) = (r["ddp"][how] for r in ranks)
    for name in params0:
        assert torch.equal(params0[name], params1[name]), name
        assert torch.equal(params0[name], alone[0][name]), name
    assert report0 == report1
    assert "broadcast from rank 0" in report0["notes"][-1]
    assert not any("module." in p["name"] for p in report0["params"])
