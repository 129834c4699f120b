"""The lab's reports: every text escaped, figures embedded as real PNGs, JSON that reads back."""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from matplotlib.image import imread

from stabletrain._render import render_text
from stabletrain.lab import Figure, Result, Table, Verdict, verdicts
from stabletrain.lab.report import (
    html_report,
    markdown_report,
    results_json,
    verdict_table,
    write_reports,
)
from tests._claims import fake_claim, known_claims

EVIL = "<script>alert('x')</script> & | `a` *b*"


@pytest.fixture(scope="module", autouse=True)
def _evil_claim() -> Iterator[None]:
    """X1: a claim whose title and text are hostile (the report reads them from the list)."""
    with known_claims(fake_claim("X1", title=f"title {EVIL}", text=f"claim {EVIL}")):
        yield


def results() -> list[Result]:
    ok = Result(
        verdicts.close_to(0.34, 1 / 3, rel_tol=0.05),
        "Var ratio = 1.02",
        "Measured 0.34 against 1/3.",
        tables=(Table("variances", ("n_in", "measured", "note"), ((64, 0.34, "fine"),)),),
        figures=(Figure("var by n_in", "n_in", "var", {"measured": ([1, 2], [0.3, 0.34])}),),
        claim_id="I5",
        seconds=0.5,
    )
    evil = Result(
        Verdict("does not hold", math.nan, 1.0, f"rule {EVIL}"),
        f"key {EVIL}",
        f"explanation {EVIL}",
        tables=(Table(f"table {EVIL}", (f"col {EVIL}",), ((f"cell {EVIL}",), (None,))),),
        figures=(
            Figure(f"fig {EVIL} $x$", "x", "y", {f"s {EVIL}": ([1, 2, 3], [1.0, -1.0, 0.0])}),
            Figure("bars", "cfg", "acc", {"a": (["u", "v"], [0.5, 0.6])}, logy=True, kind="bar"),
        ),
        claim_id="X1",
        seconds=1.0,
    )
    return [ok, Result.failed("P-HE2015", f"ValueError: {EVIL}"), evil]


@pytest.fixture(scope="module")
def page() -> str:
    return html_report(results(), quick=True, seed=3)


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_html_escapes_every_text_and_has_no_markup_from_the_data(page: str) -> None:
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp;" in page
    for where in ("title", "claim", "rule", "key", "explanation", "table", "col", "cell", "fig"):
        assert f"{where} &lt;script&gt;" in page, where
    assert "ValueError: &lt;script&gt;" in page


def test_html_is_self_contained_with_the_figures_as_pngs_that_decode(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page
    assert "td.num, th.num { text-align: right" in page  # the shared page style, inlined
    assert ".s-does-not-hold {" in page
    assert not re.search(r'(src|href)="(?!data:image/png|#claim-)', page)
    pngs = _pngs(page)
    assert len(pngs) == 3
    for png in pngs:
        image = imread(io.BytesIO(png), format="png")
        assert image.shape[:2] == (360, 640)
        assert image.std() > 0  # something is drawn


def test_html_lists_each_claim_with_its_verdict_and_documents(page: str) -> None:
    assert 'id="claim-I5"' in page
    assert "Var(z) = n_in * Var(w) * Var(x)" in page  # the claim's text from CLAIMS.md
    assert "002 (Parameter initialization explained" in page
    assert "K. He, X. Zhang" in page  # a published result's paper
    assert "seed 3" in page
    assert '<span class="status s-holds">1 holds</span>' in page
    assert '<span class="status s-error">1 error</span>' in page


def test_markdown_escapes_text_so_tables_keep_their_columns() -> None:
    md = markdown_report(results(), quick=False, seed=0)
    assert "<script>" not in md
    assert "full mode" in md
    rows = [line for line in md.splitlines() if line.startswith("| X1 |")]
    assert len(rows) == 1
    assert len(re.findall(r"(?<!\\)\|", rows[0])) == 6  # five cells, no stray separators
    assert "\\| \\`a\\` \\*b\\*" in md
    assert "| I5 | Var(z) = n_in·Var(w)·Var(x) | holds | Var ratio = 1.02 | 0.5 |" in md
    assert "| 64 | 0.34 | fine |" in md
    assert "## Initialization" in md
    assert "## Numerical stability" in md  # X1's group
    assert md.index("## Initialization") < md.index("## Published") < md.index("## Numerical")


def test_a_result_whose_id_is_not_a_claim_goes_under_other_experiments() -> None:
    r = Result(verdicts.at_most(0.0, 1.0), "k", "e", claim_id="Z7")
    md = markdown_report([results()[0], r], quick=True, seed=0)
    assert "### Z7: Z7" in md
    assert md.index("## Initialization") < md.index("## Other experiments") < md.index("### Z7")


def test_results_json_reads_back_into_the_same_results() -> None:
    data = json.loads(json.dumps(results_json(results(), quick=True, seed=2, seconds=9.0)))
    assert (data["schema"], data["version"], data["mode"], data["seed"]) == (
        "stabletrain.lab",
        2,
        "quick",
        2,
    )
    assert data["seconds"] == 9.0
    assert data["counts"] == {
        "holds": 1,
        "holds with caveat": 0,
        "inconclusive": 0,
        "does not hold": 1,
        "error": 1,
    }
    back = [Result.from_dict(r) for r in data["results"]]
    assert [r.to_dict() for r in back] == json.loads(json.dumps([r.to_dict() for r in results()]))


def test_verdict_table_shows_each_row_and_the_error_text() -> None:
    text = render_text(verdict_table(results()), width=200)
    assert "I5" in text
    assert "holds" in text
    assert "ValueError" in text
    assert "title <script>" in text  # a terminal shows text as it is


def test_verdict_table_shows_brackets_as_text_not_as_markup() -> None:
    r = Result(verdicts.at_most(0.0, 1.0), "kept [a, b] [bold]x[/bold] [/]", "", claim_id="I1")
    text = render_text(verdict_table([r]), width=200)
    assert "kept [a, b] [bold]x[/bold] [/]" in text


def test_write_reports_writes_the_three_files(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    paths = write_reports(results()[:2], out, quick=True, seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md", "results.json"]
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert json.loads(paths["json"].read_text())["results"][0]["claim_id"] == "I5"


def test_write_reports_writes_only_the_formats_asked_for(tmp_path: Path) -> None:
    fast = ("md", "json")  # no HTML: no matplotlib figure to draw
    paths = write_reports(results()[:1], tmp_path, quick=True, seed=0, formats=fast)
    assert sorted(paths) == ["json", "markdown"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "results.json"]
    with pytest.raises(ValueError, match="pdf; valid: html, md, json"):
        write_reports(results()[:1], tmp_path, quick=True, seed=0, formats=("pdf",))


def test_a_figure_that_cannot_be_drawn_is_a_note_not_a_lost_report() -> None:
    bad = Result(
        verdicts.at_most(0.0, 1.0),
        "k",
        "e",
        figures=(
            Figure("odd <i>", "x", "y", {"a": ([1], [1.0])}, kind="pie"),
            Figure("fine", "x", "y", {"a": ([1], [1.0])}),
        ),
        claim_id="I1",
    )
    page = html_report([bad], quick=True, seed=0)
    assert (
        "Figure “odd &lt;i&gt;” could not be drawn: ValueError: draw_figure: unknown kind" in page
    )
    assert len(_pngs(page)) == 1
