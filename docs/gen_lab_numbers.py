"""Write the lab's measured numbers and figures as Markdown includes for the documentation site.

The guides quote the lab's own verdicts, numbers and figures; this script makes them from the
JSON that ``stabletrain lab`` writes, so the site never shows a pasted number::

    stabletrain lab --quick --out lab-report/               # about 10 minutes on 2 cores
    cp lab-report/results.json docs/_generated/lab-quick.json
    python docs/gen_lab_numbers.py                          # `make docs` runs this step

It writes, under ``docs/_generated/lab/`` (not committed; rebuilt by every ``make docs``):

- ``<ID>.md`` for every claim: verdict, key number, explanation, the rule and threshold, the
  tables and the figures (``figures/<ID>-<n>.png``, drawn from the JSON's series with the
  reports' own plotting code; skipped, with a note, where matplotlib is not installed);
- ``summary.md``: the verdict table of every claim in the JSON;
- ``run.md``: one line saying which run the numbers come from (mode, seed, versions, time,
  and which claims it covers when it is a subset).

A page includes them with ``--8<-- "_generated/lab/I5.md"``; images are linked from
``docs/guides/``, the folder of every page that includes them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
DEFAULT_JSON = DOCS / "_generated" / "lab-quick.json"
DEFAULT_OUT = DOCS / "_generated" / "lab"
LINK_PREFIX = "../_generated/lab/"  # from docs/guides/, where the including pages live
MAX_ROWS = 12  # a table longer than this is cut, with the count of rows left out

VERDICT_MARK = {
    "holds": "✅ holds",
    "holds with caveat": "⚠️ holds with caveat",
    "inconclusive": "❔ inconclusive",
    "does not hold": "❌ does not hold",
}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(table: dict[str, Any]) -> list[str]:
    rows = table["rows"]
    lines = [
        f"*{table['title']}*",
        "",
        "| " + " | ".join(_cell(c) for c in table["columns"]) + " |",
        "|" + "---|" * len(table["columns"]),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"\n({len(rows) - MAX_ROWS} more rows in the lab's report)")
    return [*lines, ""]


def _verdict(result: dict[str, Any]) -> str:
    if result["status"] == "error":
        return f"no verdict: the experiment failed ({result['error']})"
    return VERDICT_MARK.get(result["verdict"]["outcome"], result["verdict"]["outcome"])


def _interval(verdict: dict[str, Any]) -> str:
    """`` [low, high] over n seeds`` (95% interval), or nothing for one measurement."""
    if verdict.get("low") is None:
        return ""
    return f" [{_cell(verdict['low'])}, {_cell(verdict['high'])}] over {verdict['seeds']} seeds"


def _measured(result: dict[str, Any]) -> list[str]:
    """The lab report's table of the experiment's named numbers, as Markdown."""
    from stabletrain.lab import Result
    from stabletrain.lab.report import measured_table

    lines: list[str] = []
    for table in measured_table(Result.from_dict(result)):
        lines += _table(table.to_dict())
    return lines


def claim_page(result: dict[str, Any], figures: list[str]) -> str:
    """The Markdown of one claim's result; ``figures`` are the image files drawn for it."""
    verdict = result["verdict"]
    lines = [
        f"**{result['claim_id']}: {_verdict(result)}**: {result['key_number']}.",
        "",
        result["explanation"],
        "",
    ]
    if result["status"] != "error":
        lines += [
            f"Rule: {verdict['rule']} (measured {_cell(verdict['measured'])}{_interval(verdict)}, "
            f"threshold {_cell(verdict['threshold'])}).",
            "",
        ]
    lines += _measured(result)  # results.json version 2; none in version 1
    for table in result["tables"]:
        lines += _table(table)
    if figures:
        for path, figure in zip(figures, result["figures"], strict=True):
            lines += [f"![{figure['title']}]({LINK_PREFIX}{path})", ""]
    elif result["figures"]:
        n = len(result["figures"])
        lines += [f"({n} figure{'s' * (n > 1)} in the lab's report; not drawn here.)", ""]
    return "\n".join(lines)


def summary_page(data: dict[str, Any]) -> str:
    """The verdict table of every claim in the run."""
    lines = ["| claim | verdict | key number |", "|---|---|---|"]
    for r in data["results"]:
        lines.append(f"| {r['claim_id']} | {_verdict(r)} | {_cell(r['key_number'])} |")
    return "\n".join([*lines, ""])


def run_line(data: dict[str, Any], all_ids: list[str] | None) -> str:
    """Which run the numbers come from."""
    ids = [r["claim_id"] for r in data["results"]]
    counts = ", ".join(f"{n} {k}" for k, n in data["counts"].items() if n)
    scope = f"all {len(ids)} claims"
    if all_ids is not None and set(ids) != set(all_ids):
        scope = f"{len(ids)} of the {len(all_ids)} claims ({', '.join(ids)})"
    return (
        f"Numbers from `stabletrain lab --{data['mode']}` (seed {data['seed']}; stabletrain "
        f"{data['stabletrain']}, torch {data['torch']}; {data['seconds']:.0f} s of experiments; "
        f"{scope}: {counts}).\n"
    )


def _draw(figure: dict[str, Any], path: Path) -> bool:
    try:
        from stabletrain.lab import Figure
        from stabletrain.report.figures import figure_plot
    except ImportError:
        return False
    try:
        plot = figure_plot(Figure.from_dict(figure))
    except ImportError:  # matplotlib missing
        return False
    path.write_bytes(plot.png)
    return True


def generate(results_json: Path, out: Path, *, draw: bool = True) -> dict[str, str]:
    """Write the includes for ``results_json`` into ``out``; returns ``{file name: text}``."""
    data = json.loads(results_json.read_text(encoding="utf-8"))
    if data.get("schema") != "stabletrain.lab":
        raise SystemExit(
            f"{results_json}: not the JSON of `stabletrain lab` (schema {data.get('schema')!r}); "
            "give the results.json of a lab run."
        )
    try:
        from stabletrain.lab.claims import CLAIM_IDS

        all_ids: list[str] | None = list(CLAIM_IDS)
    except ImportError:
        all_ids = None
    (out / "figures").mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    for result in data["results"]:
        drawn = []
        for k, figure in enumerate(result["figures"] if draw else [], start=1):
            name = f"figures/{result['claim_id']}-{k}.png"
            if not _draw(figure, out / name):
                drawn = []
                break
            drawn.append(name)
        pages[f"{result['claim_id']}.md"] = claim_page(result, drawn)
    pages["summary.md"] = summary_page(data)
    pages["run.md"] = run_line(data, all_ids)
    for name, text in pages.items():
        (out / name).write_text(text, encoding="utf-8")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-figures", action="store_true", help="tables and numbers only")
    args = parser.parse_args(argv)
    pages = generate(args.results, args.out, draw=not args.no_figures)
    figures = len(list((args.out / "figures").glob("*.png")))
    print(f"{len(pages)} includes and {figures} figures in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
