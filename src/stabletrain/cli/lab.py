"""``stabletrain lab``: every claim of the tutorials reproduced, with a measured verdict.

``stabletrain lab`` runs every experiment (quick mode: seconds each), prints the verdict table
and writes ``report.md``, ``report.html`` and ``results.json`` into ``--out``. ``stabletrain lab
I5 P-HE2015 --full`` runs two at full size; ``--list`` shows every claim ID and whether an
experiment answers it. Results are cached per ID, mode, seed, version and experiment source in
``$XDG_CACHE_HOME/stabletrain/lab`` (``--no-cache`` runs everything afresh).

Exit status: 0 when every experiment gave a verdict (whatever the verdict), 1 when one failed
(an error row) or has no experiment yet, 2 on bad input (unknown ID, unusable ``--out``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stabletrain.cli._load import CLIError
from stabletrain.lab.claims import CLAIM_IDS, CLAIMS, PUBLISHED_IDS, TUTORIAL_IDS, sort_ids
from stabletrain.lab.registry import load_all
from stabletrain.lab.report import verdict_table, write_reports
from stabletrain.lab.runner import default_cache_dir, resolve_ids
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


def _out_dir(out: str) -> Path:
    """The output folder, created; :class:`CLIError` when it cannot be used."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CLIError(
            f"--out {out!r} is a file, not a folder; give a folder path (default {DEFAULT_OUT})."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(
            f"cannot create --out folder {out!r} ({err.strerror}); give a writable folder."
        ) from err
    return path


def run(args: argparse.Namespace) -> int:
    """List the claims, or run the lab, print the verdicts and write the reports.

    Raises :class:`~stabletrain.cli._load.CLIError` on bad input (the root prints it in one
    line and exits 2).
    """
    console = Console()
    if args.list:
        console.print(list_table())
        return 0
    if args.seed < 0:
        raise CLIError(f"--seed must be an int >= 0, got {args.seed}.")
    if args.threads < 1:
        raise CLIError(f"--threads must be >= 1, got {args.threads}.")
    try:
        ids = resolve_ids([i.upper() for i in args.ids] or None)
    except ValueError as err:
        raise CLIError(str(err).removeprefix("run: ")) from err
    out = _out_dir(args.out)
    start = time.perf_counter()
    results = run_lab(
        ids,
        quick=not args.full,
        seed=args.seed,
        cache_dir=None if args.no_cache else default_cache_dir(),
        threads=args.threads,
    )
    seconds = time.perf_counter() - start
    console.print(verdict_table(results))
    console.print(f"{len(results)} experiments in {seconds:.1f} s")
    try:
        paths = write_reports(results, out, quick=not args.full, seed=args.seed, seconds=seconds)
    except ImportError as err:  # the HTML needs the report extra; md and json are written
        console.print(Text(str(err), style="yellow"))
    except OSError as err:
        raise CLIError(f"cannot write the reports into {str(out)!r} ({err}).") from err
    else:
        console.print(Text(f"Reports: {', '.join(str(p) for p in paths.values())}"))
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
