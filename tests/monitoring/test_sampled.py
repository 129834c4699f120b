"""Sampled weight norms and update ratios: the estimator's stated error, and its error against
the exact values on real training runs (the lab's digits MLP and CNN, a Transformer LM)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stabletrain import models
from stabletrain.lab._common import digits
from stabletrain.monitoring import MemorySink, TrainingMonitor, every
from stabletrain.monitoring._sampled import SAMPLE_SIZE, SampledNorms

TOLERANCE = 0.10  # the largest relative error of an estimate against the exact value


def test_parameters_no_larger_than_the_sample_are_measured_exactly() -> None:
    params = [torch.randn(64, 64), torch.randn(10)]
    est = SampledNorms(params, [0, 1], 2, [True, True], torch.device("cpu"))
    exact = torch.stack([(p.double() ** 2).sum() for p in params])
    torch.testing.assert_close(est.weight_sums(), exact)


def test_per_layer_sums_match_a_slow_reference_on_the_same_samples() -> None:
    # sampled, exact (smaller than the sample), empty and frozen parameters across three layers,
    # owners interleaved: the row-sum layout against Σ (n/k) v² parameter by parameter
    gen = torch.Generator().manual_seed(3)
    shapes = [(40, 3), (7,), (0,), (5, 5), (16,), (30, 2), (3,)]
    params = [torch.randn(*shape, generator=gen) for shape in shapes]
    owners, updated = [0, 1, 1, 2, 0, 2, 0], [True, True, False, True, False, True, True]
    est = SampledNorms(params, owners, 3, updated, torch.device("cpu"), size=16)
    old = [p.clone() for p in params]
    before = est.gather()
    for p in params:
        p.add_(0.1 * torch.randn(p.shape, generator=gen))
    weight, upd, delta, _ = est.update(before)

    def reference(values: list[torch.Tensor], only_updated: bool) -> torch.Tensor:
        out = torch.zeros(3, dtype=torch.float64)
        for i, v in enumerate(values):
            flat = v.reshape(-1).double()
            idx = est.index[i]
            sample = flat if idx is None else flat[idx]
            if sample.numel() and (updated[i] or not only_updated):
                out[owners[i]] += flat.numel() / sample.numel() * float((sample**2).sum())
        return out

    torch.testing.assert_close(weight, reference(params, False))
    torch.testing.assert_close(upd, reference(params, True))
    changes = [p - o for p, o in zip(params, old, strict=True)]
    torch.testing.assert_close(delta, reference(changes, True))
    torch.testing.assert_close(est.weight_sums(), reference(params, False))


def test_the_relative_standard_error_is_the_one_the_docstring_states() -> None:
    # RSE(Σv²) = sqrt((1 − k/n) / k) · CV(v²), with CV(v²) = √2 for Gaussian entries
    n, k, draws = 65536, 1024, 300
    p = torch.randn(n, generator=torch.Generator().manual_seed(0))
    exact = float((p.double() ** 2).sum())
    estimates = torch.tensor(
        [
            float(SampledNorms([p], [0], 1, [True], torch.device("cpu"), k, seed).weight_sums())
            for seed in range(draws)
        ]
    )
    stated = math.sqrt((1 - k / n) / k) * math.sqrt(2)
    assert float(estimates.mean()) == pytest.approx(exact, rel=3 * stated / math.sqrt(draws))
    assert float(estimates.std()) / exact == pytest.approx(stated, rel=0.15)


def test_the_sample_draws_no_number_from_the_global_generator() -> None:
    state = torch.random.get_rng_state()
    SampledNorms([torch.empty(10_000)], [0], 1, [True], torch.device("cpu"))
    assert torch.equal(torch.random.get_rng_state(), state)


# --------------------------------------------------------------------------- real runs

Batch = tuple[torch.Tensor, torch.Tensor]


def digits_mlp(seed: int) -> tuple[nn.Module, Callable[[], Batch], Callable[..., torch.Tensor]]:
    data = digits(seed)
    model = models.mlp(64, 10, depth=3, width=256)
    return model, data.sampler(64, torch.Generator().manual_seed(seed)), F.cross_entropy


def digits_cnn(seed: int) -> tuple[nn.Module, Callable[[], Batch], Callable[..., torch.Tensor]]:
    data = digits(seed)
    model = models.cnn(1, 10, channels=(32, 64))
    sample = data.sampler(64, torch.Generator().manual_seed(seed))

    def images() -> Batch:
        x, y = sample()
        return x.reshape(-1, 1, 8, 8), y

    return model, images, F.cross_entropy


def token_lm(seed: int) -> tuple[nn.Module, Callable[[], Batch], Callable[..., torch.Tensor]]:
    vocab = 128
    model = models.transformer(
        vocab_size=vocab, out_features=vocab, d_model=64, n_layers=2, max_len=32, causal=True
    )
    gen = torch.Generator().manual_seed(seed)

    def batch() -> Batch:
        x = torch.randint(0, vocab, (8, 32), generator=gen)
        return x, torch.roll(x, -1, dims=1)  # predict the next token (a learnable shift)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))

    return model, batch, loss


RUNS = {"digits-mlp": digits_mlp, "digits-cnn": digits_cnn, "token-lm": token_lm}
OPTIMIZERS: dict[str, Callable[[nn.Module], torch.optim.Optimizer]] = {
    "sgd": lambda m: torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
    "adamw": lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimates_are_within_ten_percent_of_the_exact_values_at_every_logged_step(
    run: str, optimizer: str, seed: int
) -> None:
    torch.manual_seed(seed)
    model, batches, loss_fn = RUNS[run](seed)
    opt = OPTIMIZERS[optimizer](model)
    sampled, exact = MemorySink(), MemorySink()
    options = {"schedule": every(1), "summary": False}
    with (
        TrainingMonitor(model, opt, sinks=[sampled], **options) as mon,  # type: ignore[arg-type]
        TrainingMonitor(model, opt, sinks=[exact], exact=True, **options) as ref,  # type: ignore[arg-type]
    ):
        for _ in range(15):
            x, y = batches()
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step(loss)
            ref.step(loss)
    want = {(r.step, r.layer, r.metric): r.value for r in exact.rows}
    got = {(r.step, r.layer, r.metric): r.value for r in sampled.rows}
    keys = [k for k in want if k[2] in ("weight_norm", "update_ratio")]
    assert {k[2] for k in keys} == {"weight_norm", "update_ratio"}
    assert max(p.numel() for p in model.parameters()) > SAMPLE_SIZE  # something is sampled
    errors = {k: abs(got[k] - want[k]) / want[k] for k in keys if want[k] > 0}
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= TOLERANCE, (worst, got[worst], want[worst])


def test_a_huge_parameter_is_sampled_with_replacement_and_still_unbiased() -> None:
    n = 5_000_000  # above the size where the sample comes from a permutation
    p = torch.randn(n, generator=torch.Generator().manual_seed(0))
    est = SampledNorms([p], [0], 1, [True], torch.device("cpu"))
    exact = float((p.double() ** 2).sum())
    rse = math.sqrt(2 / SAMPLE_SIZE)  # CV(v²) = √2 for Gaussian entries
    assert float(est.weight_sums()) == pytest.approx(exact, rel=4 * rse)
