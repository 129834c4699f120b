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
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stabletrain.cli._load import INTERRUPTED, CLIError, check_int, check_seed
from stabletrain.cli._out import check_out_dir, writing_into
from stabletrain.lab.claims import CLAIM_IDS, CLAIMS, PUBLISHED_IDS, TUTORIAL_IDS, sort_ids
from stabletrain.lab.experiment import Result
from stabletrain.lab.registry import load_all
from stabletrain.lab.report import verdict_table, write_reports
from stabletrain.lab.runner import LabInterrupted, default_cache_dir, resolve_ids
from stabletrain.lab.runner import run as run_lab

DEFAULT_OUT = "lab-report"


def list_table() -> Table:
    """Every claim and published ID with its title and whether an experiment is registered."""
    registry = load_all()
    titles = {c.id: c.title for c in CLAIMS}
    table = Table(
        title=f"{len(TUTORIAL_IDS)} claims of the tutorials and {len(PUBLISHED_IDS)} published "
        f"results; {sum(i in registry for i in CLAIM_IDS)} with an experiment"
    )
    table.add_column("ID", no_wrap=True)
    table.add_column("claim")
    table.add_column("experiment", no_wrap=True)
    for claim_id in sort_ids([*CLAIM_IDS, *registry]):
        exp = registry.get(claim_id)
        title = titles.get(claim_id) or (exp.title if exp else "")
        status = Text("registered") if exp else Text("missing", style="red")
        table.add_row(Text(claim_id), Text(title), status)
    return table


def _write(results: list[Result], out: Path, args: argparse.Namespace, seconds: float) -> str:
    """Write the reports into ``out``; the line that says where (or why the HTML is missing)."""
    with writing_into(out):
        try:
            paths = write_reports(
                results, out, quick=not args.full, seed=args.seed, seconds=seconds
            )
        except ImportError as err:  # the HTML needs the report extra; md and json are written
            return str(err)
    return f"Reports: {', '.join(str(p) for p in paths.values())}"


def _interrupted(stop: LabInterrupted, out: Path, args: argparse.Namespace, start: float) -> int:
    """Ctrl-C: show and write what finished, say what did not; exit status 130."""
    console, done = Console(), stop.results
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


def run(args: argparse.Namespace) -> int:
    """List the claims, or run the lab, print the verdicts and write the reports.

    Raises :class:`~stabletrain.cli._load.CLIError` on bad input (the root prints it in one
    line and exits 2). On Ctrl-C, the verdicts of the experiments that finished are shown and
    written, one line on stderr names those that did not, and the exit status is 130.
    """
    console = Console()
    if args.list:
        console.print(list_table())
        return 0
    check_seed(args.seed)
    check_int("--threads", args.threads, low=1)
    try:
        ids = resolve_ids([i.upper() for i in args.ids] or None)
    except ValueError as err:
        raise CLIError(str(err).removeprefix("run: ")) from err
    out = check_out_dir(args.out)
    start = time.perf_counter()
    try:
        results = run_lab(
            ids,
            quick=not args.full,
            seed=args.seed,
            cache_dir=None if args.no_cache else default_cache_dir(),
            threads=args.threads,
        )
    except LabInterrupted as stop:
        return _interrupted(stop, out, args, start)
    seconds = time.perf_counter() - start
    console.print(verdict_table(results))
    console.print(f"{len(results)} experiments in {seconds:.1f} s")
    console.print(Text(_write(results, out, args, seconds)))
    return 1 if any(r.error for r in results) else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``lab``."""
    parser = sub.add_parser(
        "lab",
        help="reproduce every claim of the tutorials with a measured verdict",
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
    parser.add_argument("--seed", type=int, default=0, help="seed of every experiment (default 0)")
    parser.add_argument(
        "--list", action="store_true", help="list every claim ID and whether it has an experiment"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while the experiments run (default 1: the models are small)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="run everything afresh; neither read nor write the cache",
    )
    parser.set_defaults(handler=run, full=False)
