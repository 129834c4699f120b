"""Schedules: which steps ``every(n)`` logs, and the checks on user schedules."""

from __future__ import annotations

import pytest

from stabletrain.monitoring.schedules import check_schedule, every


@pytest.mark.parametrize(
    ("n", "offset", "want"), [(1, 0, [1, 2, 3, 4, 5, 6]), (3, 0, [3, 6]), (3, 1, [1, 4])]
)
def test_every_logs_the_steps_of_its_grid(n: int, offset: int, want: list[int]) -> None:
    schedule = every(n, offset=offset)
    assert [s for s in range(1, 7) if schedule(s)] == want


def test_every_has_a_readable_repr() -> None:
    assert repr(every(10)) == "every(10)"
    assert repr(every(10, offset=1)) == "every(10, offset=1)"


@pytest.mark.parametrize(
    ("n", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_every_rejects_a_bad_interval(n: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="every"):
        every(n)  # type: ignore[arg-type]


def test_every_rejects_a_negative_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        every(2, offset=-1)


def test_check_schedule_takes_an_int_as_every_n_and_any_callable() -> None:
    assert check_schedule(4, where="t")(8)
    assert not check_schedule(4, where="t")(6)

    def odd(step: int) -> bool:
        return step % 2 == 1

    assert check_schedule(odd, where="t") is odd


def test_check_schedule_rejects_other_types_and_names_the_fix() -> None:
    with pytest.raises(TypeError, match=r"every\(10\)"):
        check_schedule("often", where="t")
