"""The claim list: every ID of CLAIMS.md with its text, documents and test; every ID answered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stabletrain.lab.claims import (
    CLAIM_IDS,
    CLAIMS,
    GROUPS,
    PUBLISHED_IDS,
    SEEDS,
    TUTORIAL_IDS,
    get_claim,
    sort_ids,
)
from stabletrain.lab.registry import load_all

# Written out on purpose: the list must not be derived from the code under test.
EXPECTED_TUTORIAL_IDS = (
    "I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11",
    "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "R11", "R12", "R13", "R14",
    "S1", "S2", "S3", "S4", "S5", "S6",
    "C1", "C2", "C3", "C4", "C5",
)  # fmt: skip
EXPECTED_PUBLISHED_IDS = (
    "P-GLOROT2010",
    "P-HE2015",
    "P-SAXE2014",
    "P-LSUV2016",
    "P-FIXUP2019",
    "P-ADAMW2019",
    "P-DROPOUT2014",
)
# The project's CLAIMS.md, where a checkout has it beside the project (../shared).
CLAIMS_MD = Path(__file__).resolve().parents[2].parent / "shared" / "CLAIMS.md"


def test_all_36_tutorial_claims_and_7_published_results_are_listed_in_order() -> None:
    assert len(EXPECTED_TUTORIAL_IDS) == 36
    assert TUTORIAL_IDS == EXPECTED_TUTORIAL_IDS
    assert PUBLISHED_IDS == EXPECTED_PUBLISHED_IDS
    assert CLAIM_IDS == EXPECTED_TUTORIAL_IDS + EXPECTED_PUBLISHED_IDS
    assert len(set(CLAIM_IDS)) == 43


def test_every_claim_says_what_who_and_how_to_measure() -> None:
    for c in CLAIMS:
        assert c.group == (c.id[0] if not c.id.startswith("P-") else "P"), c.id
        assert c.group in GROUPS
        assert c.title, c.id
        assert c.text, c.id
        assert c.measurement, c.id
        if c.group == "P":
            assert not c.seeds, c.id
            assert re.search(r"(19|20)\d\d\.$", c.source), c.id  # a citation with its year
            assert c.id[-4:] in c.source, c.id  # the ID's year is the paper's
        else:
            assert c.seeds, c.id
            assert set(c.seeds) <= set(SEEDS), c.id
            assert not c.source, c.id


def _claims_md_rows() -> dict[str, list[str]]:
    rows = {}
    for line in CLAIMS_MD.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if re.fullmatch(r"[IRSC]\d+", cells[0]):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.skipif(not CLAIMS_MD.is_file(), reason="CLAIMS.md is not beside this checkout")
def test_the_embedded_text_is_that_of_claims_md() -> None:
    rows = _claims_md_rows()
    assert tuple(rows) == EXPECTED_TUTORIAL_IDS
    for claim_id, cells in rows.items():
        c = get_claim(claim_id)
        if c.group == "C":  # scenario | init | regularization
            scenario, init, regularization = cells
            assert scenario.lower() in c.text.lower(), claim_id
            assert init in c.text, claim_id
            assert regularization in c.text, claim_id
            continue
        claim, measurement = cells
        # "text (002, 000)" or "text (001, a remark)": the remark stays in the text
        match = re.fullmatch(r"(.*) \((\d{3}(?:, \d{3})*)(?:, (.*))?\)", claim)
        assert match, claim
        text, seeds, remark = match.groups()
        assert c.text == (text if remark is None else f"{text} ({remark})")
        assert c.seeds == tuple(seeds.split(", "))
        assert c.measurement == measurement


def test_get_claim_names_the_bad_id_and_the_valid_ones() -> None:
    assert get_claim("P-HE2015").group == "P"
    with pytest.raises(ValueError, match=r"'I12'.*I1, I2, .*P-DROPOUT2014"):
        get_claim("I12")


def test_sort_ids_orders_by_group_then_number_and_puts_others_last() -> None:
    shuffled = ["P-HE2015", "X10", "C2", "I10", "S1", "X2", "R14", "I2", "I2", "P-GLOROT2010"]
    assert sort_ids(shuffled) == [
        "I2", "I10", "R14", "S1", "C2", "P-GLOROT2010", "P-HE2015", "X2", "X10",
    ]  # fmt: skip
    assert sort_ids(reversed(CLAIM_IDS)) == list(CLAIM_IDS)


def test_every_registered_experiment_answers_a_listed_claim() -> None:
    unknown = sorted(set(load_all()) - set(CLAIM_IDS))
    assert not unknown, f"experiments registered under IDs not in the claim list: {unknown}"


def test_every_registered_published_result_cites_its_paper() -> None:
    for claim_id, exp in load_all().items():
        if claim_id in PUBLISHED_IDS:
            assert exp.source, f"{claim_id}: claims.py gives no paper as its source"


def test_every_claim_and_published_result_has_an_experiment() -> None:
    registry = load_all()
    missing = [claim_id for claim_id in CLAIM_IDS if claim_id not in registry]
    assert not missing, f"no experiment registered for {len(missing)} IDs: {', '.join(missing)}"
