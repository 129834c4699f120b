"""Every fenced Python block of the README and of the documentation site runs.

Conventions (CONTRIBUTING.md, "Code blocks in the docs"): the blocks of a page run in order in
one namespace, in a fresh temporary folder, after the page's hidden set-up blocks, written as
HTML comments that neither GitHub nor MkDocs shows:

    <!-- setup:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    -->

A set-up applies to the blocks after it. ``<!-- requires: transformers, lightning -->`` names the
optional packages a page needs (the test is skipped without them, and CI installs them all).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# docs/_generated/ holds what docs/gen_lab_numbers.py writes: numbers, no code.
PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_generated" not in p.parts),
]

_PIECE = re.compile(
    r"^```python[^\n]*\n(?P<code>.*?)^```\s*$"  # a fenced Python block
    r"|<!--\s*setup:\s*\n(?P<setup>.*?)-->"  # a hidden set-up block
    r"|<!--\s*requires:(?P<requires>[^>]*?)-->",
    re.DOTALL | re.MULTILINE,
)

pytestmark = [
    # Lightning's and transformers' own warnings are not the examples' concern.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*:UserWarning"),
]


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    setup: bool


def parse(text: str) -> tuple[list[Block], list[str]]:
    """The page's set-up and example blocks in order, and the packages it requires."""
    blocks: list[Block] = []
    requires: list[str] = []
    for match in _PIECE.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        if match["requires"] is not None:
            requires += [name.strip() for name in match["requires"].split(",") if name.strip()]
        else:
            setup = match["setup"] is not None
            blocks.append(Block(line, match["setup"] if setup else match["code"], setup))
    return blocks, requires


def run_page(page: Path, blocks: list[Block]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in blocks:
        what = "set-up" if block.setup else "example"
        code = compile(block.code, f"{page.relative_to(ROOT)}:{block.line} ({what})", "exec")
        exec(code, namespace)


def test_the_parser_finds_blocks_setups_and_requirements() -> None:
    text = (
        "<!-- requires: lightning, transformers -->\n<!-- setup:\nx = 1\n-->\n"
        "```python\ny = x + 1\n```\n```bash\nls\n```\n```python title='t'\nz = y\n```\n"
    )
    blocks, requires = parse(text)
    assert requires == ["lightning", "transformers"]
    assert [(b.setup, b.code) for b in blocks] == [
        (True, "x = 1\n"),
        (False, "y = x + 1\n"),
        (False, "z = y\n"),
    ]


def test_a_failing_block_names_its_page_and_line(tmp_path: Path) -> None:
    page = ROOT / "README.md"
    with pytest.raises(NameError) as info:
        run_page(page, [Block(12, "undefined_name", setup=False)])
    assert info.traceback[-1].frame.code.raw.co_filename == "README.md:12 (example)"


def test_every_page_with_python_has_a_block() -> None:
    counts = {p.name: sum(not b.setup for b in parse(p.read_text())[0]) for p in PAGES}
    assert counts["README.md"] >= 6, counts
    assert counts["initialization.md"] >= 3, counts


WITH_CODE = [p for p in PAGES if "```python" in p.read_text()]


@pytest.mark.parametrize("page", WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in WITH_CODE])
def test_every_python_block_of_the_page_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks, requires = parse(page.read_text())
    assert any(not b.setup for b in blocks), "a ```python fence the parser does not see"
    for name in requires:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"needs {name} (pip install 'stabletrain[all,hf,lightning]')")
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands here
    environ = dict(os.environ)  # a page may set variables (the DDP page sets RANK, WORLD_SIZE)
    try:
        run_page(page, blocks)
    finally:
        os.environ.clear()
        os.environ.update(environ)
