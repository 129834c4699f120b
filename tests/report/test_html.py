"""HTML reports: every name is escaped, every image is an embedded PNG that decodes, nothing is
loaded from elsewhere, and the page loads in headless Chromium with no console error."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from matplotlib.image import imread

from stabletrain.diagnostics import Diagnosis, LayerStats
from stabletrain.findings import Finding
from stabletrain.monitoring import Row
from stabletrain.report import RunLog, diagnosis_html, load_run, run_html
from tests.report._data import HOSTILE, SCRIPT, THRESHOLDS, diagnosis, fixed_diagnosis

CHROMIUM = Path("/usr/bin/chromium")
CSP_SCRIPTS = "script-src 'none'"
ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")  # a bare ampersand


class Page(HTMLParser):
    """The tags, attributes and text of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def images(self) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == "img"]


@pytest.fixture(scope="module")
def pages(run_log: tuple[Path, list[Finding]]) -> dict[str, str]:
    run = RunLog.from_rows(load_run(run_log[0]), thresholds=THRESHOLDS)
    return {"diagnosis": diagnosis_html(fixed_diagnosis()), "run": run_html(run)}


def test_names_messages_and_notes_are_escaped_and_shown_as_text(pages: dict[str, str]) -> None:
    page = pages["diagnosis"]
    parsed = Page(page)
    assert [tag for tag, _ in parsed.tags].count("script") == 0
    assert "<script>" not in page
    assert ENTITY.search(page) is None  # every & is written &amp;
    text = "".join(parsed.text)
    for name in HOSTILE:
        assert name in text  # the name reads as written
    assert html.escape(SCRIPT, quote=False) in page
    for shown in ("<MLP & co>", "Signal <shrinks> & vanishes | with depth.", "the <loss> & labels"):
        assert shown in text


def test_layer_names_in_a_run_are_escaped() -> None:
    page = run_html([Row(1, f"x.{SCRIPT}&", "grad_norm", 5e3), Row(1, None, "loss", 1.0)])
    assert "<script>" not in page
    assert ENTITY.search(page) is None
    assert f"x.{SCRIPT}&" in "".join(Page(page).text)


@pytest.mark.parametrize("kind", ["diagnosis", "run"])
def test_every_image_is_an_embedded_png_that_decodes_to_its_stated_size(
    pages: dict[str, str], kind: str
) -> None:
    images = Page(pages[kind]).images()
    assert len(images) == (3 if kind == "diagnosis" else 4)
    for img in images:
        src = img["src"] or ""
        assert src.startswith("data:image/png;base64,")
        pixels = imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert pixels.shape == (int(img["height"] or 0), int(img["width"] or 0), 4)
        assert img["alt"]


@pytest.mark.parametrize("kind", ["diagnosis", "run"])
def test_the_page_is_self_contained(pages: dict[str, str], kind: str) -> None:
    page = pages[kind]
    parsed = Page(page)
    for tag, attrs in parsed.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "base"), tag
        for name in ("src", "href", "srcset", "action", "data"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:"), (tag, name, value)
    assert "url(" not in page
    assert "@import" not in page
    assert CSP_SCRIPTS in page  # and the browser is told to load nothing else
    # the shared page style is inlined, then the page's own rules
    assert "td.num, th.num { text-align: right" in page
    assert ".sev-error {" in page


def test_a_fix_is_shown_before_and_after_side_by_side(pages: dict[str, str]) -> None:
    parsed = Page(pages["diagnosis"])
    cards = [attrs.get("class") for tag, attrs in parsed.tags if tag == "div"]
    assert "card before" in cards
    assert "card after" in cards
    assert "Before and after the fix" in "".join(parsed.text)
    assert "card before" not in diagnosis_html(diagnosis())


def test_a_wide_figure_spans_the_row(pages: dict[str, str]) -> None:
    figures = [a for t, a in Page(pages["diagnosis"]).tags if t == "figure"]
    assert [f.get("class") for f in figures] == [None, None, "wide"]  # the two heatmaps


def test_a_diagnosis_without_measurements_still_renders() -> None:
    d = Diagnosis(model="M", layers=(LayerStats(name="fc", kind="Linear", depth=0),))
    page = diagnosis_html(d)
    assert Page(page).images() == []
    assert "No findings." in page


# --------------------------------------------------------------------------- in a browser

PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(
  String(e.message || (e.target && e.target.tagName) || e)), true);
</script>"""

PROBE_BODY = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const result = {
    title: document.title,
    images: images.length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
    sizes: images.map((i) => [i.naturalWidth, i.naturalHeight]),
    errors: window.__errors,
  };
  const pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def load_in_chromium(page: str, folder: Path) -> tuple[dict[str, object], list[str]]:
    """Open ``page`` (with the probe scripts added) in headless Chromium; (result, console)."""
    assert page.count(CSP_SCRIPTS) == 1
    probed = (
        page.replace(CSP_SCRIPTS, "script-src 'unsafe-inline'")  # let the probe run, only it
        .replace("<head>", "<head>" + PROBE_HEAD, 1)
        .replace("</body>", PROBE_BODY + "</body>", 1)
    )
    path = folder / "probed.html"
    path.write_text(probed, encoding="utf-8")
    out = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={folder / 'profile'}",
            "--virtual-time-budget=5000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r'<pre id="result">(.*?)</pre>', out.stdout, re.S)
    assert match, f"the page did not finish loading; rc={out.returncode}\n{out.stderr[-3000:]}"
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(match.group(1))), console


@pytest.mark.parametrize("kind", ["diagnosis", "run"])
def test_the_page_loads_in_chromium_with_every_image_decoded_and_no_console_error(
    pages: dict[str, str], kind: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed: apt-get install chromium")
    result, console = load_in_chromium(pages[kind], tmp_path)
    stated = [[int(a["width"] or 0), int(a["height"] or 0)] for a in Page(pages[kind]).images()]
    assert result["images"] == len(stated) > 0
    assert result["broken"] == []
    assert result["sizes"] == stated
    assert result["errors"] == []
    assert console == []
    assert str(result["title"]).startswith("stabletrain")
