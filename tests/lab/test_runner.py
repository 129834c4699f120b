"""The runner: claim order, error rows, one run per experiment, the cache and its invalidation."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from stabletrain.lab import Context, Experiment, Result, Table, experiment, verdicts
from stabletrain.lab import runner as runner_module
from stabletrain.lab.claims import CLAIM_IDS
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.runner import cache_key, run, source_hash
from tests._claims import known_claims


@pytest.fixture(autouse=True)
def _fake_claims() -> Iterator[None]:
    """IDs outside the real claim list for the fakes below (the lab orders them last)."""
    with known_claims("X1", "X2", "X10"):
        yield


def fake(
    *ids: str, calls: list[str] | None = None, fail: Callable[[], bool] = lambda: False
) -> Experiment:
    """An unregistered experiment that records its calls and may raise."""

    def fn(ctx: Context) -> Result:
        if calls is not None:
            calls.append(f"{ids[0]}:{ctx.mode}:{ctx.seed}")
        if fail():
            raise RuntimeError(f"{ids[0]} broke")
        draw = float(torch.rand(1))  # the global generator, seeded by the runner
        return Result(
            verdicts.at_most(draw, 2.0),
            f"draw = {draw!r}",
            "a fake",
            tables=(Table("t", ("a", "b"), ((1, 2.5),)),),
        )

    return experiment(*ids, register=False)(fn)


def registry(*exps: Experiment) -> dict[str, Experiment]:
    return {claim_id: exp for exp in exps for claim_id in exp.ids}


def test_results_come_in_claim_order_whatever_the_order_asked() -> None:
    exps = registry(*(fake(i) for i in ("I2", "R1", "X2", "X10", "P-HE2015", "C1")))
    results = run(
        ["X10", "P-HE2015", "R1", "X2", "C1", "I2", "R1"], experiments=exps, progress=False
    )
    assert [r.claim_id for r in results] == ["I2", "R1", "C1", "P-HE2015", "X2", "X10"]
    assert all(r.status == "holds" for r in results)
    assert all(r.seconds > 0 for r in results)


def test_all_runs_every_claim_and_reports_those_without_an_experiment() -> None:
    results = run(experiments=registry(fake("I3"), fake("X1")), progress=False)
    assert [r.claim_id for r in results] == [*CLAIM_IDS, "X1"]
    by_id = {r.claim_id: r for r in results}
    assert by_id["I3"].status == by_id["X1"].status == "holds"
    assert by_id["I1"].status == "error"
    assert "no experiment is registered" in by_id["I1"].error


def test_unknown_ids_raise_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown claim ID\(s\) 'I99', 'i1'; valid IDs are I1, "):
        run(["I1", "I99", "i1"], experiments={}, progress=False)
    with pytest.raises(ValueError, match=r"X1$|X1\.$"):
        run(["Q"], experiments=registry(fake("X1")), progress=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ids": "I1"}, TypeError, r"use \['I1'\]"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0, got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an int >= 0, got float 1.5"),
        ({"quick": "yes"}, TypeError, "quick must be True or False"),
        ({"threads": 0}, ValueError, "threads must be >= 1 or None, got 0"),
        ({"threads": 1.5}, TypeError, "threads must be a positive int or None"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        run(experiments={}, progress=False, **kwargs)


def test_experiments_run_with_the_threads_asked_and_the_setting_is_restored() -> None:
    seen: list[int] = []

    def fn(ctx: Context) -> Result:
        seen.append(torch.get_num_threads())
        return Result(verdicts.at_most(0.0, 1.0), "0", "threads")

    exp = experiment("X1", register=False)(fn)
    before = torch.get_num_threads()
    run(["X1"], experiments=registry(exp), progress=False, threads=1)
    assert seen == [1]
    assert torch.get_num_threads() == before


def test_an_experiment_that_raises_is_an_error_row_and_the_run_goes_on() -> None:
    calls: list[str] = []
    exps = registry(fake("I1", calls=calls), fake("I2", fail=lambda: True), fake("I3", calls=calls))
    first, broken, last = run(["I1", "I2", "I3"], experiments=exps, progress=False)
    assert (first.status, last.status) == ("holds", "holds")
    assert calls == ["I1:quick:0", "I3:quick:0"]
    assert broken.status == "error"
    assert broken.claim_id == "I2"
    assert broken.error.startswith("RuntimeError: I2 broke (at test_runner.py:")
    assert broken.verdict.outcome == "does not hold"
    assert math.isnan(broken.verdict.measured)
    assert "I2 broke" in broken.explanation
    assert broken.seconds >= 0


def test_an_experiment_that_returns_no_result_is_an_error_row() -> None:
    bad = experiment("X1", register=False)(lambda ctx: 42)
    (row,) = run(["X1"], experiments={"X1": bad}, progress=False)
    assert row.status == "error"
    assert "TypeError: experiment X1 returned int, not a Result" in row.error


def test_one_experiment_answering_two_ids_runs_once_and_fills_each_id() -> None:
    calls: list[str] = []
    both = fake("C1", "C2", calls=calls)
    one, two = run(["C2", "C1"], experiments=registry(both), progress=False)
    assert calls == ["C1:quick:0"]
    assert (one.claim_id, two.claim_id) == ("C1", "C2")
    assert one.key_number == two.key_number


def test_every_experiment_starts_from_the_seed_and_the_callers_state_is_restored() -> None:
    exps = registry(fake("I1"), fake("I2"))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = run(["I1", "I2"], experiments=exps, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert a.key_number == b.key_number  # same seed, whatever ran before
    (c,) = run(["I1"], experiments=exps, seed=1, progress=False)
    assert c.key_number != a.key_number


def test_cache_hits_for_the_same_id_mode_seed_and_source(tmp_path: Path) -> None:
    calls: list[str] = []
    exps = registry(fake("I1", calls=calls), fake("I2", calls=calls))
    first = run(["I1", "I2"], experiments=exps, cache_dir=tmp_path, progress=False)
    again = run(["I1", "I2"], experiments=exps, cache_dir=tmp_path, progress=False)
    assert calls == ["I1:quick:0", "I2:quick:0"]
    assert again == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "I1-quick-seed0.json",
        "I2-quick-seed0.json",
    ]
    run(["I1"], experiments=exps, cache_dir=tmp_path, seed=1, progress=False)
    run(["I1"], experiments=exps, cache_dir=tmp_path, quick=False, progress=False)
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    assert calls[2:] == ["I1:quick:1", "I1:full:0"]


def test_cache_misses_for_another_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    exps = registry(fake("I1", calls=calls))
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(runner_module, "__version__", "99.0")
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    assert len(calls) == 2


def test_error_rows_are_not_cached(tmp_path: Path) -> None:
    broken = [True]
    calls: list[str] = []
    exps = registry(fake("I1", calls=calls, fail=lambda: broken[0]))
    assert run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)[0].status == "error"
    assert not list(tmp_path.iterdir())
    broken[0] = False
    assert run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)[0].status == "holds"
    assert run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)[0].status == "holds"
    assert len(calls) == 2


def test_a_cache_that_cannot_be_written_costs_time_not_the_run(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    (row,) = run(["I1"], experiments=registry(fake("I1")), cache_dir=blocked, progress=False)
    assert row.status == "holds"


def test_a_corrupt_or_stale_cache_file_is_rerun_and_rewritten(tmp_path: Path) -> None:
    calls: list[str] = []
    exps = registry(fake("I1", calls=calls))
    path = tmp_path / "I1-quick-seed0.json"
    path.write_text("{not json")
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    data = json.loads(path.read_text())
    assert data["key"] == cache_key("I1", exps["I1"], Context())
    path.write_text(json.dumps({"key": data["key"], "result": {"verdict": {}}}))
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    assert len(calls) == 2


_SOURCE = """
from stabletrain.lab import Context, Result, experiment, verdicts
from {helper} import VALUE

CALLS = []


@experiment("X1", register=False)
def x1(ctx: Context) -> Result:
    CALLS.append(ctx.seed)
    return Result(verdicts.at_least(VALUE, 0.0), "{marker} " + str(VALUE), "")
"""


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_editing_the_experiment_or_a_lab_helper_it_uses_invalidates_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper_name, module_name = "stabletrain.lab._test_helper_xyz", "_test_experiment_xyz"
    for name in (helper_name, module_name):
        monkeypatch.delitem(sys.modules, name, raising=False)
    helper_file, module_file = tmp_path / "helper.py", tmp_path / "exp.py"
    cache = tmp_path / "cache"

    def load(marker: str, value: int) -> tuple[ModuleType, Experiment]:
        helper_file.write_text(f"VALUE = {value}\n")
        module_file.write_text(_SOURCE.format(helper=helper_name, marker=marker))
        _load(helper_name, helper_file)
        module = _load(module_name, module_file)
        return module, module.x1

    def once(exp: Experiment) -> Result:
        return run(["X1"], experiments={"X1": exp}, cache_dir=cache, progress=False)[0]

    module, exp = load("v1", 1)
    assert once(exp).key_number == "v1 1"
    assert once(exp).key_number == "v1 1"
    assert module.CALLS == [0]

    module, exp = load("v2", 1)  # the experiment's own source changed
    assert once(exp).key_number == "v2 1"
    assert module.CALLS == [0]

    before = source_hash(exp)
    module, exp = load("v2", 2)  # only the lab helper it imports changed
    assert source_hash(exp) != before
    assert once(exp).key_number == "v2 2"
    assert module.CALLS == [0]


def test_source_hash_is_stable_for_unchanged_code() -> None:
    a = fake("I1")
    assert source_hash(a) == source_hash(a)
    assert len(source_hash(a)) == 64


def test_the_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    run(["I1"], experiments=registry(fake("I1")), progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1/1" in captured.err


def test_ctrl_c_stops_the_run_with_what_finished_cached_and_no_partial_file(
    tmp_path: Path,
) -> None:
    def interrupt() -> bool:
        raise KeyboardInterrupt

    calls: list[str] = []
    exps = registry(fake("I1", calls=calls), fake("I2", fail=interrupt), fake("I3", calls=calls))
    with pytest.raises(runner_module.LabInterrupted) as stop:
        run(["I1", "I2", "I3"], experiments=exps, cache_dir=tmp_path, progress=False)
    assert [r.claim_id for r in stop.value.results] == ["I1"]
    assert stop.value.pending == ["I2", "I3"]
    assert isinstance(stop.value, KeyboardInterrupt)
    assert calls == ["I1:quick:0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["I1-quick-seed0.json"]
    run(["I1"], experiments=exps, cache_dir=tmp_path, progress=False)
    assert calls == ["I1:quick:0"]  # read back from the cache


def test_ctrl_c_while_a_cache_file_is_written_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_replace(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module.os, "replace", interrupted_replace)
    with pytest.raises(runner_module.LabInterrupted):
        run(["I1"], experiments=registry(fake("I1")), cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_several_jobs_give_the_same_results_as_one(tmp_path: Path) -> None:
    # two cheap registered experiments, each in its own worker process
    ids = ["I8", "R11"]
    one = run(ids, progress=False)
    two = run(ids, progress=False, jobs=2, cache_dir=tmp_path)
    strip = [{**r.to_dict(), "seconds": 0} for r in one]
    assert [{**r.to_dict(), "seconds": 0} for r in two] == strip
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "I8-quick-seed0.json",
        "R11-quick-seed0.json",
    ]


@pytest.mark.parametrize(("jobs", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_a_bad_jobs_count_is_refused(jobs: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="jobs must be"):
        run(["I1"], jobs=jobs, progress=False)  # type: ignore[arg-type]


def test_an_experiment_registered_at_run_time_runs_here_even_with_several_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a worker process would not find it: it runs in this process, the lab's own in workers
    calls: list[str] = []
    monkeypatch.setitem(REGISTRY, "X2", fake("X2", calls=calls))
    results = run(["X2", "R11", "I8"], progress=False, jobs=2)
    assert [(r.claim_id, r.status) for r in results] == [
        ("I8", "holds"),
        ("R11", "holds"),
        ("X2", "holds"),
    ]
    assert calls == ["X2:quick:0"]


def test_the_workers_start_the_experiments_with_the_most_seeds_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # I8 measures 1 seed, R9 8 and R5 12: R5 starts first, so no long one runs alone at the end
    from stabletrain.lab import _parallel

    submitted: list[list[str]] = []

    def record(ids: list[str], ctx: Context, jobs: int, on_done: Callable[..., None]) -> None:
        submitted.append(list(ids))
        for claim_id in ids:
            on_done(claim_id, Result.failed(claim_id, "not run"))

    monkeypatch.setattr(_parallel, "run_in_workers", record)
    results = run(["I8", "R9", "R5"], progress=False, jobs=2)
    assert submitted == [["R5", "R9", "I8"]]
    assert [r.claim_id for r in results] == ["I8", "R5", "R9"]  # reported in the lab's order
