"""Staged experiments: measured on several seeds, decided on the interval, explained by name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import torch

from stabletrain._render import escape_markdown
from stabletrain.lab import Context, Verdict, verdicts
from stabletrain.lab.estimate import Estimate
from stabletrain.lab.experiment import REGISTRY, experiment
from stabletrain.lab.report import markdown_report
from stabletrain.lab.staged import Explanation, Staged, measured, named_numbers


@dataclass(frozen=True)
class Draw:
    value: float = measured("units", "a seeded draw")
    seed: int = measured("", "the replicate's seed")
    curve: tuple[float, ...] = ()


class Drawn(Staged[Draw]):
    """Holds when the mean draw is below 0.9 (a uniform draw's mean is 0.5)."""

    def measure(self, ctx: Context) -> Draw:
        x = float(torch.rand((), generator=ctx.generator(1)))
        return Draw(value=x, seed=ctx.seed, curve=(x, x))

    def decide(self, ms: Sequence[Draw]) -> Verdict:
        return verdicts.at_most(Estimate.of(m.value for m in ms), 0.9)

    def explain(self, ms: Sequence[Draw], verdict: Verdict) -> Explanation:
        return Explanation(f"mean draw {verdict.measured:.3f}", "Draws are uniform.")


def test_it_runs_on_three_seeds_quick_and_five_full_each_its_own() -> None:
    quick = Drawn().run(Context(quick=True, seed=4))
    full = Drawn().run(Context(quick=False, seed=4))
    assert quick.verdict.seeds == 3
    assert full.verdict.seeds == 5
    seeds = {m.name: m.values for m in full.measured}["seed"]
    assert seeds[0] == 4
    assert len(set(seeds)) == 5
    values = {m.name: m.values for m in full.measured}["value"]
    assert len(set(values)) == 5  # different draws: the replicates do not share a stream
    assert quick.measured[0].values == full.measured[0].values[:3]


def test_named_numbers_keep_units_and_skip_curves() -> None:
    ms = [Draw(0.25, 0), Draw(0.75, 1)]
    nums = named_numbers(ms)
    assert [(n.name, n.unit, n.values) for n in nums] == [
        ("value", "units", (0.25, 0.75)),
        ("seed", "", (0.0, 1.0)),
    ]


def test_the_report_shows_the_interval_and_the_named_numbers() -> None:
    result = Drawn().run(Context(quick=True, seed=0))
    md = markdown_report([result], quick=True, seed=0)
    v = result.verdict
    assert escape_markdown(f"[{v.low:.4g}, {v.high:.4g}] over 3 seeds") in md
    assert "**Measured on 3 seeds**" in md
    assert "| value | units |" in md


def test_decide_must_return_a_verdict() -> None:
    class Bad(Drawn):
        def decide(self, ms: Sequence[Draw]) -> Verdict:
            return "holds"  # type: ignore[return-value]

    with pytest.raises(TypeError, match=r"Bad\.decide returned str, not a Verdict"):
        Bad().run(Context())


def test_the_decorator_registers_an_instance_and_returns_the_class() -> None:
    cls = experiment("I5", register=False)(Drawn)
    assert cls is Drawn
    with pytest.raises(TypeError, match="must define measure, decide, explain"):
        experiment("I5", register=False)(type("Empty", (), {}))


def test_registered_staged_experiments_hash_their_own_module() -> None:
    from stabletrain.lab import registry

    registry.load_all()
    for exp in REGISTRY.values():
        if exp.staged is not None:
            assert exp.module == type(exp.staged).__module__
            assert exp.module.startswith("stabletrain.lab.experiments.")


@pytest.mark.parametrize(
    ("values", "bound", "caveat", "outcome"),
    [
        ([0.01, 0.02, 0.03], 0.05, None, "holds"),  # 0.02 ± 0.025: under 0.05
        ([0.02, 0.04, 0.07], 0.05, None, "inconclusive"),  # 0.043 ± 0.062 straddles
        ([0.2, 0.21, 0.22], 0.05, None, "does not hold"),  # wholly above
        ([0.04, 0.06, 0.08], 0.05, 0.2, "holds with caveat"),  # under the caveat bound
        ([0.15, 0.2, 0.3], 0.05, 0.2, "inconclusive"),  # straddles the caveat bound
        ([0.3, 0.31, 0.32], 0.05, 0.2, "does not hold"),
    ],
)
def test_at_most_decides_on_the_whole_interval(
    values: list[float], bound: float, caveat: float | None, outcome: str
) -> None:
    v = verdicts.at_most(Estimate.of(values), bound, caveat=caveat)
    assert v.outcome == outcome
    assert v.seeds == 3
    assert v.low is not None
    assert v.high is not None
    assert v.low <= v.measured <= v.high


def test_at_least_mirrors_at_most() -> None:
    for values, outcome in [
        ([1.0, 1.1, 1.2], "holds"),
        ([0.7, 0.9, 1.3], "inconclusive"),
        ([0.1, 0.2, 0.3], "does not hold"),
    ]:
        assert verdicts.at_least(Estimate.of(values), 0.5).outcome == outcome


def test_close_to_uses_the_interval_of_the_relative_error() -> None:
    v = verdicts.close_to(Estimate.of([0.98, 1.0, 1.02]), 1.0, rel_tol=0.1)
    assert v.outcome == "holds"
    assert v.low == 0.0  # the target lies inside the interval
    wide = verdicts.close_to(Estimate.of([0.8, 1.0, 1.2]), 1.0, rel_tol=0.1)
    assert wide.outcome == "inconclusive"
    off = verdicts.close_to(Estimate.of([1.5, 1.51, 1.52]), 1.0, rel_tol=0.1)
    assert off.outcome == "does not hold"


def test_a_single_number_has_no_interval() -> None:
    v = verdicts.at_most(0.01, 0.05)
    assert (v.low, v.high, v.seeds) == (None, None, 1)
    assert v.interval() == ""


def test_inconclusive_is_weaker_than_holding_and_stronger_than_failing() -> None:
    hold, unsure, fail = (
        Verdict(o, 0.0, 0.0, "r") for o in ("holds", "inconclusive", "does not hold")
    )
    assert verdicts.weakest([hold, unsure]).outcome == "inconclusive"
    assert verdicts.weakest([unsure, fail]).outcome == "does not hold"


def test_a_staged_class_without_a_stage_is_refused_naming_it() -> None:
    class NoDecide(Staged[Draw]):
        def measure(self, ctx: Context) -> Draw:
            return Draw(0.5, ctx.seed)

        def explain(self, ms: Sequence[Draw], verdict: Verdict) -> Explanation:
            return Explanation("k", "t")

    with pytest.raises(TypeError, match=r"NoDecide must define .*\(missing: decide;"):
        experiment("I5", register=False)(NoDecide)
