"""Two CPU processes (gloo): DDP, FSDP2 ``fully_shard`` and bare DTensors give every rank the
same norms and skip decisions as one process on the whole batch.

One spawn runs every scenario (tests/stability/_ddp_worker.py); the processes meet through a
file store in a temporary folder (no port to race for) and are killed if they outlive
``DEADLINE_S``, so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.distributed as dist

from tests._gloo import spawn_ranks
from tests.stability import _ddp_worker as worker

RTOL, ATOL = 1e-5, 1e-7  # sums in another order across ranks
SCENARIOS = ["ddp", "fsdp"]

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return spawn_ranks(worker.run, worker.WORLD, tmp_path_factory.mktemp("distributed"))


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    return worker.reference()


def assert_close_tree(a: Any, b: Any, *, exact: bool, where: str) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_close_tree(a[key], b[key], exact=exact, where=f"{where}/{key}")
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close_tree(x, y, exact=exact, where=f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        if exact:
            assert torch.equal(a.nan_to_num(), b.nan_to_num()), where
            assert torch.equal(a.isnan(), b.isnan()), where
        else:
            torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL, equal_nan=True, msg=where)
    else:
        assert a == b, where


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("clip", list(worker.CLIPS))
def test_clip_norms_and_clipped_grads_equal_one_process_on_the_global_batch(
    ranks: list[dict[str, Any]], single: dict[str, Any], scenario: str, clip: str
) -> None:
    measured = [r[scenario]["clips"][clip] for r in ranks]
    assert_close_tree(measured[0][0], measured[1][0], exact=True, where="rank 0 vs 1")
    assert_close_tree(measured[0], single["clips"][clip], exact=False, where="ranks vs single")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_grad_norm_is_global_on_every_rank(
    ranks: list[dict[str, Any]], single: dict[str, Any], scenario: str
) -> None:
    for key in ("grad_norm", "grad_norm_layers"):
        for rank in ranks:
            assert_close_tree(
                rank[scenario]["clips"][key], single["clips"][key], exact=False, where=key
            )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_guard_decisions_and_norms_are_identical_on_every_rank_and_equal_one_process(
    ranks: list[dict[str, Any]], single: dict[str, Any], scenario: str
) -> None:
    logs = [r[scenario]["guard"] for r in ranks]
    expected = single["guard"]
    assert [s["reason"] for s in expected] == [
        None,
        None,
        "nonfinite_grad",
        None,
        None,
        "loss_spike",
        None,  # the overflowed norm, recomputed exactly, clips the step
    ]
    assert float(expected[6]["norm"]) > worker.OVERFLOW  # the overflow happened
    for step, ref in enumerate(expected):
        for rank, log in enumerate(logs):
            got = log[step]
            where = f"{scenario} rank {rank} step {step}"
            assert (got["stepped"], got["reason"]) == (ref["stepped"], ref["reason"]), where
            assert_close_tree(got["norm"], ref["norm"], exact=False, where=where)
            assert_close_tree(got["params"], ref["params"], exact=False, where=where)
        assert_close_tree(logs[0][step]["norm"], logs[1][step]["norm"], exact=True, where="norm")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_nan_on_one_rank_skips_everywhere_and_is_named_where_it_can_be_seen(
    ranks: list[dict[str, Any]], scenario: str
) -> None:
    poisoned = [r[scenario]["guard"][2] for r in ranks]
    assert all(not p["stepped"] for p in poisoned)
    assert all(math.isnan(p["norm"].item()) for p in poisoned)
    assert poisoned[1]["named"] == [worker.NAN_PARAM]  # the rank that holds the NaN
    # DDP: rank 0's gradients are clean; FSDP: the per-tensor norms are reduced, so both see it
    assert poisoned[0]["named"] == ([] if scenario == "ddp" else [worker.NAN_PARAM])
    before = [r[scenario]["guard"][1]["params"] for r in ranks]
    for rank, p in enumerate(poisoned):
        assert_close_tree(p["params"], before[rank], exact=True, where=f"rank {rank}")


def test_an_overflow_on_one_rank_backs_off_the_gradscaler_on_every_rank(
    ranks: list[dict[str, Any]],
) -> None:
    expected = [(True, None, 2.0**10), (False, "nonfinite_grad", 2.0**9)]
    for rank in ranks:
        assert rank["ddp"]["scaler"] == expected


@pytest.mark.parametrize("p", ["norm2", "norm1", "norm_inf"])
def test_dtensor_norms_over_shard_replicate_and_partial_equal_the_whole_tensors(
    ranks: list[dict[str, Any]], p: str
) -> None:
    order = {"norm2": 2.0, "norm1": 1.0, "norm_inf": math.inf}[p]
    wholes = ranks[0]["dtensor"]["wholes"]
    expected = torch.linalg.vector_norm(torch.cat([w.double().flatten() for w in wholes]), order)
    for rank in ranks:
        torch.testing.assert_close(
            rank["dtensor"][p].double(), expected, rtol=RTOL, atol=0, msg=f"{p}"
        )
