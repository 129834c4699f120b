"""Running registered experiments in worker processes, one experiment per task.

Each worker is a fresh ``spawn`` process (no state inherited from the caller), runs with one
torch thread, imports only the module of the experiment it is given and runs it exactly as
the runner does in-process (seeded from the run's seed, the global random state restored), so
a result is the same with one job or several. Results travel back as
:meth:`~stabletrain.lab.experiment.Result.to_dict` data.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from stabletrain.lab.experiment import Context, Result

__all__ = ["run_in_workers"]


def _work(claim_id: str, quick: bool, seed: int) -> dict[str, Any]:
    """In a worker: load and run the experiment of ``claim_id``; its result as data."""
    import torch

    from stabletrain.lab.registry import load
    from stabletrain.lab.runner import _execute

    torch.set_num_threads(1)
    exp = load([claim_id]).get(claim_id)
    if exp is None:
        return Result.failed(claim_id, "no experiment is registered for this claim").to_dict()
    return _execute(exp, claim_id, Context(quick=quick, seed=seed)).to_dict()


@contextmanager
def _pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    except BaseException:  # Ctrl-C: drop what has not started, do not wait for the rest
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_in_workers(
    claim_ids: Sequence[str],
    ctx: Context,
    jobs: int,
    on_done: Callable[[str, Result], None],
) -> None:
    """Run the experiments of ``claim_ids`` on ``jobs`` processes, calling ``on_done`` with
    each result as it finishes (in the order they finish)."""
    with _pool(jobs) as pool:
        running: dict[Future[dict[str, Any]], str] = {}
        for claim_id in claim_ids:
            running[pool.submit(_work, claim_id, ctx.quick, ctx.seed)] = claim_id
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                claim_id = running.pop(future)
                try:
                    result = Result.from_dict(future.result())
                except Exception as exc:  # a worker that died: an error row, the run goes on
                    result = Result.failed(claim_id, f"{type(exc).__name__}: {exc}")
                on_done(claim_id, result)
