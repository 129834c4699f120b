"""``stabletrain lab``: every claim of the tutorials reproduced, with a measured verdict.

``stabletrain lab`` runs every experiment (quick mode: seconds each), prints the verdict table
and writes ``report.md``, ``report.html`` and ``results.json`` into ``--out``. ``stabletrain lab
I5 P-HE2015 --full`` runs two at full size; ``--list`` shows every claim ID and whether an
experiment answers it. Results are cached per ID, mode, seed, version and experiment source in
``$XDG_CACHE_HOME/stabletrain/lab`` (``--no-cache`` runs everything afresh).

Exit status: 0 when every experiment gave a verdict (whatever the verdict), 1 when one failed
(an error row) or has no experiment yet, 2 on bad input (unknown ID, unusable ``--out``), 130
when interrupted (Ctrl-C): the experiments that finished are cached, shown and reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from stabletrain._fit import Cell, Col, FitTable
from stabletrain.cli._commands import COMMANDS
from stabletrain.cli._load import INTERRUPTED, CLIError, check_int, check_seed, parse_formats
from stabletrain.cli._out import check_kind, check_out_dir, mark, print_json, writing_into
from stabletrain.lab.claims import CLAIM_IDS, CLAIMS, PUBLISHED_IDS, TUTORIAL_IDS, sort_ids

if TYPE_CHECKING:  # the runner, the reports and the experiments load only when the lab runs
    from stabletrain.lab.experiment import Result
    from stabletrain.lab.runner import LabInterrupted

DEFAULT_OUT = "lab-report"


def list_table() -> FitTable:
    """Every claim and published ID with its title and whether an experiment is registered.

    Read from the claim list and the experiments' sources: no experiment is imported.
    """
    from stabletrain.lab.registry import index

    entries = index()
    titles = {c.id: c.title for c in CLAIMS}
    rows: list[list[Cell]] = []
    for claim_id in sort_ids([*CLAIM_IDS, *entries]):
        entry = entries.get(claim_id)
        title = titles.get(claim_id, "")
        if entry is None:
            status = Text("missing", style="red")
        elif claim_id not in titles:  # its module fails to import until the claim is added
            status = Text("not in claims.py", style="red")
        else:
            status = Text("registered")
        rows.append([Text(claim_id), Text(title), status])
    columns = (
        Col("ID", justify="left", key=True),
        Col("claim", justify="left", wrap=True, min_width=40, short=""),
        Col("experiment", justify="left", short=""),
    )
    title = (
        f"{len(TUTORIAL_IDS)} claims of the tutorials and {len(PUBLISHED_IDS)} published "
        f"results; {sum(i in entries for i in CLAIM_IDS)} with an experiment"
    )
    return FitTable(columns, rows, title=title)


def list_json() -> list[dict[str, object]]:
    """``--list --json``: one object per ID: ``id``, ``title``, ``experiment`` (bool)."""
    from stabletrain.lab.registry import index

    entries = index()
    titles = {c.id: c.title for c in CLAIMS}
    return [
        {
            "id": i,
            "title": titles.get(i, ""),
            "experiment": i in entries,
        }
        for i in sort_ids([*CLAIM_IDS, *entries])
    ]


def _write(results: list[Result], out: Path, args: argparse.Namespace, seconds: float) -> str:
    """Write the reports into ``out``; the line that says where (or why the HTML is missing)."""
    from stabletrain.lab.report import write_reports

    with writing_into(out):
        mark(out, "lab")
        try:
            paths = write_reports(
                results,
                out,
                quick=not args.full,
                seed=args.seed,
                seconds=seconds,
                formats=parse_formats(args.format),
            )
        except ImportError as err:  # the HTML needs the report extra; md and json are written
            return str(err)
    return f"Reports: {', '.join(str(p) for p in paths.values())}"


def _interrupted(stop: LabInterrupted, out: Path, args: argparse.Namespace, start: float) -> int:
    """Ctrl-C: show and write what finished, say what did not; exit status 130."""
    from stabletrain.lab.report import verdict_table

    console, done = Console(quiet=args.quiet), stop.results
    total = len(done) + len(stop.pending)
    if done:
        console.print(verdict_table(done))
        console.print(Text(_write(done, out, args, time.perf_counter() - start)))
    where = f"cached and reported in {str(out)!r}" if done else "none to report"
    print(
        f"stabletrain lab: interrupted: {len(done)} of {total} experiments finished ({where}); "
        f"did not finish: {' '.join(stop.pending)}; run the same command again to go on.",
        file=sys.stderr,
    )
    return INTERRUPTED


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity where the OS has one), at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def run(args: argparse.Namespace) -> int:
    """List the claims, or run the lab, print the verdicts and write the reports.

    Raises :class:`~stabletrain.cli._load.CLIError` on bad input (the root prints it in one
    line and exits 2). On Ctrl-C, the verdicts of the experiments that finished are shown and
    written, one line on stderr names those that did not, and the exit status is 130.
    """
    console = Console(quiet=args.quiet or args.json)
    if args.list:
        if args.json:
            print_json(list_json())
        else:
            console.print(list_table())
        return 0
    if args.json:
        raise CLIError("--json goes with --list; the lab's results are in --out/results.json.")
    check_seed(args.seed)
    check_int("--threads", args.threads, low=1)
    jobs = default_jobs() if args.jobs is None else check_int("--jobs", args.jobs, low=1)
    parse_formats(args.format)
    from stabletrain.lab.report import verdict_table
    from stabletrain.lab.runner import LabInterrupted, default_cache_dir, resolve_ids
    from stabletrain.lab.runner import run as run_lab

    try:
        ids = resolve_ids([i.upper() for i in args.ids] or None)
    except ValueError as err:
        raise CLIError(str(err).removeprefix("run: ")) from err
    out = check_out_dir(args.out)
    check_kind(out, "lab", force=args.force)
    start = time.perf_counter()
    try:
        results = run_lab(
            ids,
            quick=not args.full,
            seed=args.seed,
            cache_dir=None if args.no_cache else default_cache_dir(),
            threads=args.threads,
            jobs=jobs,
            progress=not args.quiet,
        )
    except LabInterrupted as stop:
        return _interrupted(stop, out, args, start)
    seconds = time.perf_counter() - start
    console.print(verdict_table(results))
    console.print(f"{len(results)} experiments in {seconds:.1f} s")
    console.print(Text(_write(results, out, args, seconds)))
    failed = [r.claim_id for r in results if r.error]
    if failed:
        print(f"stabletrain lab: failed: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lab``."""
    parser = sub.add_parser(
        "lab",
        help=COMMANDS["lab"],
        description="Run the lab's experiments (all by default), print the verdicts and write "
        "report.md, report.html and results.json.",
    )
    parser.add_argument(
        "ids", nargs="*", metavar="ID", help="claim IDs such as I5 R2 P-HE2015 (default: all)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="full",
        action="store_false",
        help="CI sizes, seconds per experiment (default)",
    )
    mode.add_argument(
        "--full", dest="full", action="store_true", help="sizes that make the point convincingly"
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"folder for the reports (default ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--format",
        default="html,md,json",
        help="reports to write, e.g. md,json (default all; the HTML's figures take seconds)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every experiment (default 0)")
    parser.add_argument(
        "--list", action="store_true", help="list every claim ID and whether it has an experiment"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --list: the claims as JSON on stdout (id, title, experiment)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no table and no progress bar; reports still written"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into --out even if it holds another kind of report (replacing it)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while the experiments run (default 1: the models are small)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="experiments run at once, each in its own process with one thread (default: the "
        "cores this process may use, at most 4); the results do not depend on it",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run everything afresh; neither read nor write the cache",
    )
    parser.set_defaults(handler=run, full=False)
