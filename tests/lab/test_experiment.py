"""Results as JSON: every field round-trips, odd cells become JSON scalars, errors are rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from stabletrain.lab import Context, Figure, Result, Table, Verdict, experiment


def full_result() -> Result:
    return Result(
        verdict=Verdict("holds with caveat", 0.12, 0.1, "measured <= 0.1 (caveat <= 0.2)"),
        key_number="ratio = 0.12",
        explanation="Line one.\nLine two with | and <b>.",
        tables=(
            Table("t1", ("name", "x", "n", "ok", "none"), (("a", 1.5, 3, True, None),)),
            Table("empty", ("a",), ()),
        ),
        figures=(
            Figure("f", "depth", "std", {"He": ((1, 2), (1.0, math.nan))}, logy=True),
            Figure("b", "cfg", "acc", {"L2": (("a", "b"), (0.5, 0.7))}, kind="bar"),
        ),
        claim_id="I5",
        seconds=1.25,
    )


def test_result_round_trips_through_json_text() -> None:
    r = full_result()
    text = json.dumps(r.to_dict())
    back = Result.from_dict(json.loads(text))
    assert back.to_dict().keys() == r.to_dict().keys()
    assert json.dumps(back.to_dict()) == text
    assert back.verdict == r.verdict
    assert back.tables == r.tables
    assert back.figures[1] == r.figures[1]
    assert math.isnan(back.figures[0].series["He"][1][1])
    assert (back.claim_id, back.seconds, back.error, back.status) == ("I5", 1.25, "", r.status)


def test_a_nan_verdict_survives_the_round_trip() -> None:
    r = Result.failed("I1", "ValueError: bad")
    back = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert math.isnan(back.verdict.measured)
    assert back.status == "error"
    assert back.error == "ValueError: bad"


def test_numpy_and_torch_numbers_in_a_verdict_become_floats() -> None:
    v = Verdict("holds", np.float32(0.25), torch.tensor(0.5), "r")
    assert json.loads(json.dumps(v.to_dict())) == {
        "outcome": "holds",
        "measured": 0.25,
        "threshold": 0.5,
        "rule": "r",
        "low": None,
        "high": None,
        "seeds": 1,
    }


def test_cells_that_are_not_json_scalars_become_numbers_or_text() -> None:
    cells = (np.float32(0.5), np.int64(7), torch.tensor(2.5), torch.tensor([1.0, 2.0]), object)
    row = Table("t", tuple("abcde"), (cells,)).to_dict()["rows"][0]
    assert row[:3] == [0.5, 7, 2.5]
    assert isinstance(row[1], int)
    assert isinstance(row[3], str)
    assert row[4] == str(object)
    json.dumps(row)


def test_status_is_the_outcome_or_error() -> None:
    assert full_result().status == "holds with caveat"
    failed = Result.failed("R2", "RuntimeError: x", seconds=0.5)
    assert failed.status == "error"
    assert failed.verdict.outcome == "does not hold"
    assert failed.seconds == 0.5
    assert "RuntimeError: x" in failed.explanation


def test_experiment_run_keeps_the_result_and_sets_the_first_id() -> None:
    @experiment("C1", "C2", register=False)
    def both(ctx: Context) -> Result:
        return full_result()

    r = both.run(Context())
    assert r.claim_id == "C1"
    assert r.tables == full_result().tables
    assert r.seconds == 1.25


def test_from_dict_reports_a_missing_field() -> None:
    data = full_result().to_dict()
    del data["verdict"]
    with pytest.raises(KeyError, match="verdict"):
        Result.from_dict(data)
