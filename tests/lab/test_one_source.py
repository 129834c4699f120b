"""One source per claim: every claim has exactly one experiment, every experiment a claim, the
claim's words live only in claims.py, and each experiment module is named after its IDs.

The checks read the experiment modules' sources (``registry.declared``): nothing is imported,
so a module that fails to import is still checked.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import pytest

from stabletrain.lab import Context, Result, registry, verdicts
from stabletrain.lab.claims import CLAIM_IDS, get_claim, sort_ids
from stabletrain.lab.experiment import REGISTRY, Experiment, experiment
from tests._claims import known_claims


def _problems(declared: Iterable[tuple[str, str]]) -> list[str]:
    """What breaks "one experiment per claim" in ``(ID, module)`` pairs; empty when none."""
    pairs = list(declared)
    counts = Counter(claim_id for claim_id, _ in pairs)
    found = [f"{i}: experiment without a claim in claims.py" for i in counts if i not in CLAIM_IDS]
    found += [f"{i}: claim without an experiment" for i in CLAIM_IDS if i not in counts]
    for claim_id, n in counts.items():
        if n > 1:
            where = sorted(m for i, m in pairs if i == claim_id)
            found.append(f"{claim_id}: {n} experiments ({', '.join(where)})")
    return sorted(found)


def test_every_claim_has_exactly_one_experiment_and_every_experiment_a_claim() -> None:
    declared = registry.declared()
    assert declared, "no @experiment decorator found in stabletrain.lab.experiments"
    assert _problems(declared) == []


def test_the_check_finds_a_missing_claim_a_missing_experiment_and_a_duplicate() -> None:
    mod = "stabletrain.lab.experiments.m"
    good = [(claim_id, mod) for claim_id in CLAIM_IDS]
    assert _problems(good) == []
    assert _problems([*good, ("I99", mod)]) == ["I99: experiment without a claim in claims.py"]
    assert _problems(good[1:]) == [f"{CLAIM_IDS[0]}: claim without an experiment"]
    assert _problems([*good, ("I5", "other")]) == [f"I5: 2 experiments (other, {mod})"]


def test_the_index_reads_the_ids_from_the_decorators_and_the_titles_from_claims_py() -> None:
    entries = registry.index()
    assert set(entries) == set(CLAIM_IDS)
    for claim_id, entry in entries.items():
        assert entry.title == get_claim(claim_id).title, claim_id


def _expected_name(ids: list[str]) -> str:
    """The module name its IDs give: ``i5_i8``, ``r7_to_r9_r14``, ``p_he2015``."""
    if ids[0].startswith("P-"):
        assert len(ids) == 1, ids
        return ids[0].lower().replace("-", "_")
    numbers = [int(i[1:]) for i in ids]
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    g = ids[0][0].lower()
    parts = [
        f"{g}{run[0]}_to_{g}{run[-1]}" if len(run) >= 3 else "_".join(f"{g}{n}" for n in run)
        for run in runs
    ]
    return "_".join(parts)


def test_each_experiment_module_is_named_after_its_ids_then_a_topic() -> None:
    by_module: dict[str, list[str]] = {}
    for claim_id, module in registry.declared():
        by_module.setdefault(module.rpartition(".")[2], []).append(claim_id)
    for name, ids in by_module.items():
        ordered = sort_ids(ids)
        assert len({i[0] for i in ordered}) == 1, f"{name} mixes claim groups: {ordered}"
        prefix = _expected_name(ordered)
        if ordered[0].startswith("P-"):
            assert name == prefix, (name, ordered)
        else:
            assert re.fullmatch(rf"{prefix}_[a-z][a-z0-9]*", name), (name, prefix)


def test_expected_names() -> None:
    assert _expected_name(["I5", "I8"]) == "i5_i8"
    assert _expected_name(["R7", "R8", "R9", "R14"]) == "r7_to_r9_r14"
    assert _expected_name(["C1", "C2", "C3", "C4", "C5"]) == "c1_to_c5"
    assert _expected_name(["S3"]) == "s3"
    assert _expected_name(["P-HE2015"]) == "p_he2015"


def _two(ctx: Context) -> Result:
    return Result(verdicts.close_to(2.0, 2.0, rel_tol=1e-9), "2 = 2", "Two is two.")


def test_an_experiment_reads_its_title_claim_and_source_from_claims_py() -> None:
    exp = experiment("P-HE2015", register=False)(_two)
    c = get_claim("P-HE2015")
    assert (exp.title, exp.claim, exp.source) == (c.title, c.text, c.source)
    assert exp.claims == (c,)
    both = experiment("I5", "I8", register=False)(_two)
    assert both.title == get_claim("I5").title
    assert [x.id for x in both.claims] == ["I5", "I8"]
    assert experiment("I5", register=False)(_two).source == ""


@pytest.mark.parametrize("keyword", ["title", "claim", "source"])
def test_the_decorator_refuses_the_claims_words(keyword: str) -> None:
    with pytest.raises(TypeError, match=keyword):
        experiment("I5", register=False, **{keyword: "words"})  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", ["i5", "5", "", "I 5", "I5!"])
def test_the_decorator_refuses_an_id_of_the_wrong_form(bad: str) -> None:
    with pytest.raises(ValueError, match=rf"{re.escape(repr(bad))} is not a claim ID.*'I5'"):
        experiment(bad, register=False)


def test_the_decorator_refuses_an_id_missing_from_claims_py() -> None:
    with pytest.raises(ValueError, match=r"'I99' is not in the claim list; add it to .*claims\.py"):
        experiment("I5", "I99", register=False)
    with pytest.raises(ValueError, match=r"'I99' is not in the claim list"):
        Experiment(ids=("I99",), fn=_two)
    with pytest.raises(ValueError, match="at least one claim ID"):
        experiment()
    with pytest.raises(ValueError, match="given twice"):
        experiment("I5", "I5", register=False)


def test_an_id_registered_twice_is_refused_and_the_first_stays() -> None:
    with known_claims("Z8"):
        try:
            first = experiment("Z8")(_two)
            with pytest.raises(ValueError, match="Z8 is registered twice"):
                experiment("Z8")(_two)
            assert REGISTRY["Z8"] is first
        finally:
            REGISTRY.pop("Z8", None)
