"""The loss ring: every non-finite loss is found once, with its step, however the ring wraps."""

from __future__ import annotations

import math
import random

import pytest
import torch

from stabletrain.monitoring._losses import LossRing

CPU = torch.device("cpu")


def read(ring: LossRing) -> list[float]:
    """What a logged step's copy of the ring holds."""
    values: list[float] = ring.values.tolist()
    return values


def test_unchecked_non_finite_losses_are_found_at_the_next_read_with_their_steps() -> None:
    ring = LossRing(8, CPU)
    for step in range(1, 6):
        loss = {2: math.nan, 4: -math.inf}.get(step, 1.0 / step)
        slot, found = ring.push(step, torch.tensor(loss), check=True)
        assert found == []
        assert slot == step - 1
    found = ring.nonfinite(read(ring))
    assert [s for s, _ in found] == [2, 4]
    assert math.isnan(found[0][1])
    assert found[1][1] == -math.inf
    assert ring.nonfinite(read(ring)) == []  # checked once


def test_losses_checked_elsewhere_are_not_reported_again() -> None:
    ring = LossRing(4, CPU)
    ring.push(1, math.nan, check=False)  # a number, or a logged step's loss
    ring.push(2, torch.tensor(math.inf), check=False)
    assert ring.nonfinite(read(ring)) == []


def test_a_ring_that_wraps_first_copies_its_unchecked_losses_out() -> None:
    ring = LossRing(3, CPU)
    bad = {2, 7, 11}
    found = []
    for step in range(1, 21):
        _, now = ring.push(step, torch.tensor(math.nan if step in bad else 0.5), check=True)
        found += now
    found += ring.flush()
    assert [s for s, _ in found] == sorted(bad)
    assert ring.flush() == []


def test_chronological_gives_the_last_window_losses_oldest_first() -> None:
    ring = LossRing(3, CPU)
    assert ring.chronological(read(ring)) == ()
    for step in range(1, 3):
        ring.push(step, float(step), check=False)
    assert ring.chronological(read(ring)) == (1.0, 2.0)
    for step in range(3, 6):
        ring.push(step, float(step), check=False)
    assert ring.chronological(read(ring)) == (3.0, 4.0, 5.0)


@pytest.mark.parametrize("seed", range(5))
def test_every_unchecked_non_finite_loss_is_reported_exactly_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    window = rng.randint(2, 6)
    ring = LossRing(window, CPU)
    want, found = [], []
    for step in range(1, 200):
        if rng.random() < 0.2:
            continue  # a step without a loss
        value = rng.choice([math.nan, math.inf, -math.inf]) if rng.random() < 0.15 else 1.0
        check = rng.random() < 0.8
        _, now = ring.push(step, torch.tensor(value), check=check)
        found += now
        if check and not math.isfinite(value):
            want.append(step)
        if rng.random() < 1 / (3 * window):  # a logged step, at irregular gaps
            found += ring.nonfinite(read(ring))
    found += ring.flush()
    assert want
    assert [s for s, _ in found] == want
