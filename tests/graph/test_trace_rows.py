"""trace(rows=1): the graph of one row is the graph of the batch, at a fraction of the cost."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

from stabletrain import models
from stabletrain.graph import STRUCTURE_ROWS, Graph, leading_rows, trace
from tests.benchmarks._run import load_benchmark

ZOO: ModuleType = load_benchmark("_zoo")


def _structure(graph: Graph) -> dict[str, Any]:
    """Everything a graph says about the model, without the node ids of its tensors."""
    rec = graph.recording
    return {
        "ops": [(o.name, o.params, o.module, o.act_params) for o in rec.ops],
        "calls": [(c.module, c.first_op, c.last_op) for c in rec.calls],
        "layers": [(n, i.order, i.following) for n, i in graph.layers.items()],
        "params": graph.params,
        "residuals": graph.residuals,
        "unused": graph.unused,
    }


def _builders() -> dict[str, tuple[Any, Any]]:
    """Models of every kind the library meets: its own builders and the benchmarks' zoo."""
    cases: dict[str, tuple[Any, Any]] = {
        "mlp-batchnorm": (
            lambda: models.mlp(16, 4, depth=3, width=32, norm="batch", dropout=0.1),
            lambda g: torch.randn(8, 16, generator=g),
        ),
        "cnn": (
            lambda: models.cnn(3, 10, dropout=0.2),
            lambda g: torch.randn(4, 3, 16, 16, generator=g),
        ),
        "resmlp": (lambda: models.resmlp(16, 4, 3, 32), lambda g: torch.randn(8, 16, generator=g)),
        "lstm": (
            lambda: models.rnn("lstm", 3, 16, num_layers=2, out_features=2),
            lambda g: torch.randn(4, 10, 3, generator=g),
        ),
        "transformer": (
            lambda: models.transformer(d_model=32, n_heads=4, n_layers=2, vocab_size=16),
            lambda g: torch.randint(0, 16, (4, 12), generator=g),
        ),
    }
    for name, spec in ZOO.ZOO.items():
        cases[name] = (spec, lambda g, spec=spec: spec.batch(g, 4)[0])
    return cases


CASES = _builders()


@pytest.mark.parametrize("rows", [1, STRUCTURE_ROWS])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_first_rows_trace_the_same_graph_as_the_batch(name: str, rows: int) -> None:
    build, batch = CASES[name]
    if isinstance(build, ZOO.Spec):
        reason = ZOO.unavailable(build)
        if reason is not None:
            pytest.skip(reason)
        build = build.build
    torch.manual_seed(0)
    model = build()
    example = batch(torch.Generator().manual_seed(0))
    assert _structure(trace(model, example, rows=rows)) == _structure(trace(model, example))


class _BatchSizes(nn.Module):
    """Records the batch size of every call; ReLU only when the batch has more than one row."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        h = self.linear(x)
        return h.relu() if x.shape[0] > 1 else h


def test_the_trace_runs_one_row_and_a_batch_dependent_model_shows_why_rows_is_opt_in() -> None:
    torch.manual_seed(0)
    model = _BatchSizes()
    one, full = trace(model, torch.randn(8, 4), rows=1), trace(model, torch.randn(8, 4))
    assert model.seen == [1, 8]
    assert one.layers["linear"].activation is None
    assert full.layers["linear"].activation is not None  # what rows=None is kept for
    assert _structure(one) != _structure(full)


def test_a_model_that_refuses_one_row_is_traced_on_two_then_on_the_whole_batch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())  # train mode
    sizes: list[int] = []
    model[0].register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[0]))
    graph = trace(model, torch.randn(6, 4), rows=1)
    assert sizes == [1, 2]  # BatchNorm raised on one value per channel, then took two
    assert graph.layers["0"].following[0].op == "batch_norm"
    assert model[1].num_batches_tracked.item() == 0  # buffers restored after both passes

    class FixedBatch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sizes.append(x.shape[0])
            return self.linear(x).reshape(6, 2, 2)  # only a batch of 6 fits

    sizes.clear()
    trace(FixedBatch(), torch.randn(6, 4), rows=STRUCTURE_ROWS)
    assert sizes == [1, 2, 6]


def test_tracing_leaves_the_random_state_as_it_was() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    for rows in (None, 1):
        before = torch.get_rng_state()
        trace(model, x, rows=rows)
        assert torch.equal(torch.get_rng_state(), before), rows


@pytest.mark.parametrize(
    ("example", "rows", "expected"),
    [
        (torch.zeros(8, 3), 1, [(1, 3)]),
        (torch.zeros(8, 3), 2, [(2, 3)]),
        ((torch.zeros(8, 3), torch.tensor(2.0)), 1, [(1, 3), ()]),  # a scalar stays
        ((torch.zeros(10, 8, 3), torch.zeros(8)), 1, None),  # sequence-first beside lengths
        (torch.zeros(1, 3), 1, None),  # already one row
        ({"ids": torch.zeros(4, 5), "flag": True}, 1, [(1, 5)]),
    ],
)
def test_leading_rows_cuts_only_a_batch_every_tensor_shares(
    example: Any, rows: int, expected: list[tuple[int, ...]] | None
) -> None:
    got = leading_rows(example, rows)
    if expected is None:
        assert got is None
    else:
        leaves = got.values() if isinstance(got, dict) else got if isinstance(got, tuple) else [got]
        shapes = [tuple(t.shape) for t in leaves if isinstance(t, torch.Tensor)]
        assert shapes == expected


@pytest.mark.parametrize(
    ("rows", "error"), [(0, ValueError), (-2, ValueError), (1.0, TypeError), (True, TypeError)]
)
def test_bad_rows_are_refused_naming_the_argument(rows: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="rows"):
        trace(nn.Linear(2, 2), torch.randn(4, 2), rows=rows)
