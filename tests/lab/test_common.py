"""The lab's shared helpers: digits split, train loop, per-layer signals vs a hand-written pass."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stabletrain import models
from stabletrain.lab._common import TrainLog, accuracy, digits, layer_signals, train


def test_digits_split_is_seeded_disjoint_and_standardized() -> None:
    a, b, c = digits(0), digits(0), digits(1)
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert len(a.x_train) + len(a.x_test) == 1797
    kept = a.x_train.std(0) > 0
    assert torch.allclose(a.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(a.x_train.std(0)[kept], torch.ones(int(kept.sum())), atol=1e-4)


def test_digits_n_train_keeps_that_many_rows_and_rejects_too_many() -> None:
    assert len(digits(0, n_train=100).x_train) == 100
    with pytest.raises(ValueError, match="n_train=5000"):
        digits(0, n_train=5000)
    with pytest.raises(ValueError, match="train_fraction"):
        digits(0, train_fraction=1.5)


def test_train_learns_digits_and_stops_at_a_non_finite_loss() -> None:
    torch.manual_seed(0)
    data = digits(0)
    model = models.mlp(64, 10, depth=1, width=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log = train(model, opt, data.sampler(64, torch.Generator().manual_seed(0)), steps=100)
    assert not log.diverged
    assert len(log.losses) == 100
    assert accuracy(model, data.x_test, data.y_test) > 0.85
    assert log.first_below(1.0) is not None

    huge = torch.optim.SGD(model.parameters(), lr=1e12)
    bad = train(model, huge, data.sampler(64, torch.Generator().manual_seed(0)), steps=50)
    assert bad.diverged
    assert bad.final_loss() == math.inf
    assert len(bad.losses) < 50


def test_layer_signals_match_a_hand_written_forward_and_backward_pass() -> None:
    torch.manual_seed(0)
    net = models.mlp(16, 3, depth=2, width=32, activation="tanh")
    x = torch.randn(200, 16)
    got = layer_signals(net, x, generator=torch.Generator().manual_seed(5))
    # reference: explicit layers, the same probe at the output
    l1, l2, head = net.linear1, net.linear2, net.head
    x_ref = x.clone().requires_grad_(True)
    z1 = l1(x_ref)
    z2 = l2(torch.tanh(z1))
    out = head(torch.tanh(z2))
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    g1, g2, g3 = torch.autograd.grad(out, [z1, z2, out], probe)
    for signal, z, g in zip(got, (z1, z2, out), (g1, g2, g3), strict=True):
        assert signal.forward_std == pytest.approx(float(z.detach().std()), rel=1e-5)
        assert signal.batch_std == pytest.approx(float(z.detach().std(0).mean()), rel=1e-5)
        assert signal.backward_std == pytest.approx(float(g.std()), rel=1e-5)
    assert all(p.grad is None for p in net.parameters())


def test_layer_signals_reject_a_model_without_such_layers() -> None:
    with pytest.raises(ValueError, match="Conv2d"):
        layer_signals(nn.Sequential(nn.Linear(2, 2)), torch.randn(3, 2), layer_types=(nn.Conv2d,))


def test_layer_signals_backpropagate_a_loss_when_given_a_target() -> None:
    torch.manual_seed(0)
    net = models.mlp(16, 3, depth=1, width=32, activation="tanh")
    x, y = torch.randn(50, 16), torch.randint(0, 3, (50,))
    got = layer_signals(net, x, target=y)
    z1 = net.linear1(x)
    out = net.head(torch.tanh(z1))
    g1, g2 = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), [z1, out])
    assert got[0].backward_std == pytest.approx(float(g1.std()), rel=1e-5)
    assert got[1].backward_std == pytest.approx(float(g2.std()), rel=1e-5)


def test_train_log_curve_averages_whole_windows() -> None:
    log = TrainLog((4.0, 2.0, 3.0, 1.0, 9.0), diverged=False)
    assert log.curve(2) == ([2.0, 4.0], [3.0, 2.0])
    with pytest.raises(ValueError, match="window"):
        log.curve(0)
