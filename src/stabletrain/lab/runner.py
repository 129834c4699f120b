"""Running the lab: experiments in claim order, timed, cached, and an error row when one fails.

:func:`run` runs the experiments of the requested claim IDs (all by default) in the lab's order
(I, R, S, C, then ``P-``), each with the global random state seeded from ``seed`` and restored
afterwards, so a result does not depend on what ran before it. An experiment that raises, or a
claim with no experiment yet, becomes an error row (:meth:`Result.failed`) and the run goes on.

Results are cached as JSON in ``cache_dir`` (one file per ID, mode and seed) under a key made of
the ID, the mode, the seed, the stabletrain version and a hash of the experiment's source: its
module and the ``stabletrain.lab`` modules it uses, so editing an experiment or a shared helper
runs it again. Error rows are never cached.

Example:
    >>> from stabletrain.lab import Context, Experiment, Result, verdicts
    >>> def two(ctx: Context) -> Result:
    ...     return Result(verdicts.close_to(1.0 + 1.0, 2.0, rel_tol=1e-9), "1 + 1 = 2", "ok")
    >>> fake = {"I5": Experiment(ids=("I5",), fn=two)}  # in place of the registered one
    >>> [(r.claim_id, r.status) for r in run(["I5"], experiments=fake, progress=False)]
    [('I5', 'holds')]
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from stabletrain import __version__
from stabletrain.lab._extras import describe_import_error
from stabletrain.lab.claims import CLAIM_IDS, sort_ids
from stabletrain.lab.experiment import REGISTRY, Context, Experiment, Result
from stabletrain.lab.registry import LOAD_ERRORS, Entry, index, load

__all__ = [
    "LabInterrupted",
    "cache_key",
    "default_cache_dir",
    "resolve_ids",
    "run",
    "source_hash",
]

_LAB_PACKAGE = "stabletrain.lab"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/stabletrain/lab``, or ``~/.cache/stabletrain/lab``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stabletrain" / "lab"


def _module_source(module: ModuleType) -> bytes:
    file = getattr(module, "__file__", None)
    if file and Path(file).is_file():
        return Path(file).read_bytes()
    try:
        return inspect.getsource(module).encode()
    except (OSError, TypeError):
        return module.__name__.encode()  # no source to hash: the version still keys the cache


def _lab_imports(module: ModuleType) -> set[str]:
    """The ``stabletrain.lab`` modules that ``module``'s source imports (absolute or relative)."""
    try:
        tree = ast.parse(_module_source(module))
    except (SyntaxError, ValueError):
        return set()
    package = module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except (ImportError, ValueError):
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
    return {
        name
        for name in found
        if (name == _LAB_PACKAGE or name.startswith(_LAB_PACKAGE + ".")) and name in sys.modules
    }


def source_hash(exp: Experiment) -> str:
    """SHA-256 of the experiment's module source and of the ``stabletrain.lab`` modules it uses.

    "Uses" follows the imports of the source, transitively, within ``stabletrain.lab``, so an
    edit to a shared helper (``lab/_common.py``) changes the hash. A function without a module
    (built in a REPL) hashes its own code object.
    """
    digest = hashlib.sha256()
    module = sys.modules.get(exp.module)
    if module is None:
        code = getattr(exp.fn, "__code__", None)
        digest.update(repr(exp.fn).encode() if code is None else code.co_code)
        return digest.hexdigest()
    digest.update(_module_source(module))
    seen, todo = {module.__name__}, sorted(_lab_imports(module))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(_lab_imports(sys.modules[name]) - seen)
    for name in sorted(seen - {module.__name__}):
        digest.update(name.encode() + b"\0" + _module_source(sys.modules[name]))
    return digest.hexdigest()


def cache_key(claim_id: str, exp: Experiment, ctx: Context) -> str:
    """The key a cached result must match: ID, mode, seed, version and :func:`source_hash`."""
    parts = [claim_id, ctx.mode, str(ctx.seed), __version__, source_hash(exp)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _cache_path(cache_dir: Path, claim_id: str, ctx: Context) -> Path:
    return cache_dir / f"{claim_id}-{ctx.mode}-seed{ctx.seed}.json"


def _read_cache(path: Path, key: str) -> Result | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return Result.from_dict(data["result"])
    except (OSError, ValueError, KeyError, TypeError):  # missing, stale format or corrupt: rerun
        return None


def _write_cache(path: Path, key: str, result: Result) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"key": key, "result": result.to_dict()}), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    except BaseException:  # Ctrl-C or a full disk: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        raise


class LabInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run`: what finished before it, and what did not run.

    Attributes:
        results: the results of the experiments that finished, in the lab's order (each was
            cached as it finished; the interrupted one was not).
        pending: the IDs that did not finish, the interrupted one first.
    """

    def __init__(self, results: list[Result], pending: list[str]) -> None:
        total = len(results) + len(pending)
        super().__init__(f"lab interrupted after {len(results)} of {total} experiments")
        self.results = results
        self.pending = pending


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch, numpy and random globally; restore their states afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` (None: unchanged) inside the block."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _describe(exc: BaseException) -> str:
    """``"Type: message (at file.py:line)"`` with the innermost frame of the traceback."""
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


def _execute(exp: Experiment, claim_id: str, ctx: Context) -> Result:
    start = time.perf_counter()
    try:
        with _seeded(ctx.seed):
            result = exp.run(ctx)
    except Exception as exc:  # an experiment's failure is a row of the report, not a crash
        why = describe_import_error(exc) or _describe(exc)
        return Result.failed(claim_id, why, seconds=time.perf_counter() - start)
    return replace(result, claim_id=claim_id, seconds=time.perf_counter() - start, error="")


def _check_args(quick: object, seed: object) -> None:
    if not isinstance(quick, bool):
        raise TypeError(f"run: quick must be True or False, got {quick!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"run: seed must be an int >= 0, got {type(seed).__name__} {seed!r}.")
    if seed < 0:
        raise ValueError(f"run: seed must be an int >= 0, got {seed!r}.")


def resolve_ids(
    ids: Iterable[str] | None = None, *, experiments: Mapping[str, Experiment] | None = None
) -> list[str]:
    """The IDs :func:`run` would run for ``ids``, in the lab's order, each once.

    ``None`` means every claim and every registered ID; an ID that is neither raises a
    ``ValueError`` that lists the valid ones.

    Example:
        >>> resolve_ids(["R1", "I5", "R1"])
        ['I5', 'R1']
    """
    known = [*index(), *REGISTRY] if experiments is None else list(experiments)
    valid_ids = sort_ids([*CLAIM_IDS, *known])  # no experiment is imported to check an ID
    if ids is None:
        return valid_ids
    if isinstance(ids, str):
        raise TypeError(f"run: ids must be a list of IDs, got the string {ids!r}; use [{ids!r}].")
    wanted = list(ids)
    unknown = [i for i in wanted if i not in valid_ids]
    if unknown:
        raise ValueError(
            f"run: unknown claim ID(s) {', '.join(map(repr, unknown))}; valid IDs are "
            f"{', '.join(valid_ids)}."
        )
    return sort_ids(wanted)


def run(
    ids: Iterable[str] | None = None,
    *,
    quick: bool = True,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    experiments: Mapping[str, Experiment] | None = None,
    threads: int | None = 1,
    jobs: int = 1,
) -> list[Result]:
    """Run the experiments of ``ids`` (every claim by default); one :class:`Result` per ID.

    Args:
        ids: claim IDs (``["I5", "P-HE2015"]``); ``None`` runs every claim of
            :data:`~stabletrain.lab.claims.CLAIMS` and every other registered ID. Results come
            in the lab's order whatever the order asked, once per ID.
        quick: CI sizes (seconds per experiment) when True, the full sizes when False.
        seed: seeds every experiment (``Context.seed``) and the global random state.
        cache_dir: where results are cached (see the module docstring); ``None`` caches nothing.
        progress: show a progress bar on stderr.
        experiments: ``{ID: Experiment}`` to choose from; default every registered one.
        threads: torch's intra-op threads while the experiments run (restored afterwards);
            None keeps the current setting. The lab's models are small: with one thread each
            experiment runs 2-15x faster on a 2-core machine than with two, which spend their
            time waiting for each other.
        jobs: how many experiments run at once, each in its own process with one torch thread
            (the experiments of the lab's own modules; those of ``experiments``, or registered
            at run time elsewhere, run in this process first). The results are the same as
            with ``jobs=1``: each experiment seeds itself.

    Raises:
        LabInterrupted: Ctrl-C (a ``KeyboardInterrupt``) while an experiment ran; it carries
            the results of those that finished, which are cached.
        ValueError: an ID that is neither a claim nor registered (the message lists the valid
            IDs), or a negative seed.
        TypeError: ``ids`` given as one string, a seed that is not an int, ``quick`` not a bool.
    """
    _check_args(quick, seed)
    _check_count("threads", threads, none_ok=True)
    _check_count("jobs", jobs, none_ok=False)
    selected = resolve_ids(ids, experiments=experiments)
    # only the modules of the selected experiments are imported (and what they import)
    registry = load(selected) if experiments is None else dict(experiments)
    ctx = Context(quick=quick, seed=seed)
    cache = None if cache_dir is None else Path(cache_dir)
    plan = _Plan.of(selected, registry, ctx, cache)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        _threads(threads),
        Progress(*columns, console=Console(stderr=True), disable=not progress) as bar,
    ):
        task = bar.add_task("lab", total=len(selected), completed=len(plan.finished))

        def started(claim_id: str) -> None:
            bar.update(task, description=f"{claim_id} {registry[claim_id].title}")

        def finished(claim_id: str, result: Result) -> None:
            bar.advance(task, plan.finish(claim_id, result, registry, ctx, cache))

        # a worker imports an experiment by its ID: only those of the lab's own modules travel
        portable: list[str] = []
        if experiments is None and jobs > 1:
            entries = index()
            portable = [i for i in plan.todo if _importable(entries.get(i), registry[i])]
            portable.sort(key=lambda i: -_seed_count(registry[i], ctx))  # longest first
        try:
            for claim_id in (i for i in plan.todo if i not in portable):
                started(claim_id)
                finished(claim_id, _execute(registry[claim_id], claim_id, ctx))
            if len(portable) > 1:
                from stabletrain.lab._parallel import run_in_workers  # processes: only here

                bar.update(task, description=f"{len(portable)} experiments on {jobs} processes")
                run_in_workers(portable, ctx, jobs, finished)
            elif portable:
                started(portable[0])
                finished(portable[0], _execute(registry[portable[0]], portable[0], ctx))
        except KeyboardInterrupt as err:
            done = [plan.finished[i] for i in selected if i in plan.finished]
            raise LabInterrupted(done, [i for i in selected if i not in plan.finished]) from err
    return [plan.finished[claim_id] for claim_id in selected]


def _seed_count(exp: Experiment, ctx: Context) -> int:
    """How many seeds ``exp`` measures in ``ctx``'s mode (1 for an unstaged experiment): the
    parallel runner starts the experiments with the most seeds first, since those take the
    longest (up to 85 s of a quick run's 340 s), so that no long one starts last and runs
    alone at the end."""
    return 1 if exp.staged is None else int(exp.staged.seed_count(ctx))


def _importable(entry: Entry | None, exp: Experiment) -> bool:
    """Whether a worker process, which imports the lab's experiment modules, finds ``exp``
    where the index ``entry`` of its ID says (not one registered at run time, e.g. by a test)."""
    return entry is not None and entry.module == exp.module


def _check_count(name: str, value: object, *, none_ok: bool) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " or None" if none_ok else ""
        raise TypeError(f"run: {name} must be a positive int{hint}, got {value!r}.")
    if value < 1:
        raise ValueError(f"run: {name} must be >= 1{' or None' if none_ok else ''}, got {value!r}.")


def _missing(claim_id: str) -> Result:
    broken = "; ".join(f"{m}: {e}" for m, e in LOAD_ERRORS.items())
    reason = "no experiment is registered for this claim yet" + (
        f" (experiment modules that failed to import: {broken})" if broken else ""
    )
    return Result.failed(claim_id, reason)


@dataclass
class _Plan:
    """What a run must do: results already known (cached, or no experiment) and the
    experiments to run, each once, with the other IDs each one answers."""

    finished: dict[str, Result]
    todo: list[str]  # the first ID of each experiment to run
    also: dict[str, list[str]]  # first ID -> the other selected IDs of the same experiment

    @classmethod
    def of(
        cls,
        selected: Sequence[str],
        registry: Mapping[str, Experiment],
        ctx: Context,
        cache: Path | None,
    ) -> _Plan:
        plan = cls({}, [], {})
        first_of: dict[int, str] = {}
        for claim_id in selected:
            exp = registry.get(claim_id)
            if exp is None:
                plan.finished[claim_id] = _missing(claim_id)
                continue
            hit = None if cache is None else _read_cache(*_cache_entry(claim_id, exp, ctx, cache))
            if hit is not None:
                plan.finished[claim_id] = hit
            elif id(exp) in first_of:
                plan.also[first_of[id(exp)]].append(claim_id)
            else:
                first_of[id(exp)] = claim_id
                plan.todo.append(claim_id)
                plan.also[claim_id] = []
        return plan

    def finish(
        self,
        claim_id: str,
        result: Result,
        registry: Mapping[str, Experiment],
        ctx: Context,
        cache: Path | None,
    ) -> int:
        """Record ``result`` for ``claim_id`` and the other IDs of its experiment, caching each
        that is not an error; returns how many IDs it settled."""
        ids = [claim_id, *self.also[claim_id]]
        for other in ids:
            settled = replace(result, claim_id=other)
            self.finished[other] = settled
            if cache is not None and not settled.error:
                path, key = _cache_entry(other, registry[other], ctx, cache)
                with contextlib.suppress(OSError):  # a cache that cannot be written costs time
                    _write_cache(path, key, settled)
        return len(ids)


def _cache_entry(claim_id: str, exp: Experiment, ctx: Context, cache: Path) -> tuple[Path, str]:
    return _cache_path(cache, claim_id, ctx), cache_key(claim_id, exp, ctx)
