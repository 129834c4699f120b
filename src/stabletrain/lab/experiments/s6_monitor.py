"""Claim S6: the training monitor flags each injected problem, early, and leaves healthy runs alone.

Every trial trains an MLP on digits for a few SGD steps under
:class:`stabletrain.monitoring.TrainingMonitor` (every step logged to a
:class:`~stabletrain.monitoring.MemorySink`, traced with an example batch) and reads its
findings (severity warning or error). Five problems are injected, each in a few variants:

- deep sigmoid network, Xavier init: gradients vanish with depth (rules ``vanishing``,
  ``depth_trend``);
- ReLU network with an oversized init (2-4x He's std): gradients explode (``exploding``);
- ReLU network whose biases start at a large negative value: dead units (``dead_units``);
- constant weights: every unit of a layer is the same unit (``symmetric_units``);
- a NaN in one input batch: non-finite loss, gradients and weights (``nonfinite``);

and healthy networks (ReLU + He, tanh + Xavier, depths 2-8) check that nothing is flagged.
Each trial runs twice: with the ``"full"`` preset and with ``"minimal"``, which measures
per-layer gradient and weight norms and non-finite counts only (the tutorials' advice:
"monitor per-layer gradient norms").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from stabletrain import init, models
from stabletrain.lab import verdicts
from stabletrain.lab._common import digits
from stabletrain.lab._init_common import Scheme, init_linears_
from stabletrain.lab._stab_common import scaled_he
from stabletrain.lab.estimate import Estimate
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured
from stabletrain.monitoring import MemorySink, Preset, Thresholds, TrainingMonitor, every

STEPS, BATCH, LR, MOMENTUM = 10, 64, 0.01, 0.9
WIDTH = 64
# Each problem must be flagged in at least 90% of its trials, a healthy run in at most 10%.
DETECTED, FALSE_ALARMS = 0.9, 0.1
# "Early": on the first logged step on which the expected rule can fire: the step the problem
# appears (step 1 for an init, the NaN's step), for dead units the end of the monitor's window
# (a unit is dead when it was never positive over ``dead_window`` logged batches).
EARLY_STEPS = 0
DEAD_WINDOW = Thresholds().dead_window

Build = Callable[[torch.Generator], nn.Module]


@dataclass(frozen=True)
class _Trial:
    problem: str
    variant: str
    build: Build
    expect: frozenset[str]  # rules, any of which flags the problem; empty: a healthy run
    nan_step: int | None = None  # 1-based step whose batch gets a NaN

    @property
    def onset(self) -> int:
        """The first step on which the problem exists."""
        return self.nan_step or 1

    @property
    def earliest(self) -> int:
        """The first step on which an expected rule can fire."""
        return self.onset + (DEAD_WINDOW - 1 if "dead_units" in self.expect else 0)


@dataclass(frozen=True)
class Flagging:
    """What the monitor flagged in one trial under one preset.

    Attributes:
        problem, variant: the injected problem ("healthy": none) and its variant.
        preset: the monitor's preset, ``"full"`` or ``"minimal"``.
        expect: the rules any of which flags the problem (empty for a healthy run).
        rules: every rule that fired (severity warning or error).
        first_step: the first step an expected rule fired (None: never).
        earliest: the first step on which an expected rule can fire.
        grad_norms: per weight layer at step 1, input to output.
    """

    problem: str
    variant: str
    preset: Preset
    expect: frozenset[str]
    rules: frozenset[str]
    first_step: int | None
    earliest: int
    grad_norms: tuple[float, ...] = ()

    @property
    def flagged(self) -> bool:
        """A problem flagged by an expected rule; a healthy run flagged by any rule."""
        if not self.expect:
            return bool(self.rules)
        return self.first_step is not None

    @property
    def lag(self) -> float:
        """Logged steps between the earliest possible flag and the first one (inf: missed)."""
        return math.inf if self.first_step is None else float(self.first_step - self.earliest)


@dataclass(frozen=True)
class MonitorFlags:
    """S6's measurements on one seed: detection and false-alarm rates, and how late."""

    detected: float = measured(
        "fraction", "smallest share of a problem's trials flagged (preset 'full')"
    )
    false_alarms: float = measured("fraction", "healthy runs flagged (preset 'full')")
    lag: float = measured("steps", "latest detection after the first step its rule can fire")
    detected_minimal: float = measured(
        "fraction", "smallest share of a problem's trials flagged (preset 'minimal')"
    )
    flaggings: tuple[Flagging, ...] = ()


def _mlp(depth: int, activation: str, scheme: str | Scheme, bias: float = 0.0) -> Build:
    def build(generator: torch.Generator) -> nn.Module:
        model = models.mlp(64, 10, depth, WIDTH, activation=activation)
        init_linears_(model, scheme, generator, bias=bias)
        return model

    return build


def _constant(value: float) -> Build:
    def build(generator: torch.Generator) -> nn.Module:
        model = models.mlp(64, 10, 4, WIDTH)
        init_linears_(model, lambda w, g: init.constant_(w, value), generator)
        return model

    return build


def _trials(quick: bool) -> list[_Trial]:
    """The injected problems (one variant each quick, three full) and the healthy runs."""

    def pick(q: tuple[float, ...], f: tuple[float, ...]) -> tuple[float, ...]:
        return q if quick else f

    vanish = frozenset({"vanishing", "depth_trend"})
    trials = [
        _Trial(
            "vanishing", f"sigmoid, depth {d:g}", _mlp(int(d), "sigmoid", "xavier_normal"), vanish
        )
        for d in pick((10,), (10, 20, 30))
    ]
    trials += [
        _Trial(
            "exploding",
            f"ReLU, {s:g}x He",
            _mlp(10, "relu", scaled_he(s)),
            frozenset({"exploding"}),
        )
        for s in pick((2.0,), (2.0, 3.0, 4.0))
    ]
    trials += [
        _Trial(
            "dead units",
            f"ReLU, biases {b:g}",
            _mlp(4, "relu", "he_normal", b),
            frozenset({"dead_units"}),
        )
        for b in pick((-3.0,), (-2.0, -3.0, -5.0))
    ]
    trials += [
        _Trial("symmetric units", f"constant {c:g}", _constant(c), frozenset({"symmetric_units"}))
        for c in pick((0.01,), (0.01, 0.05, 0.1))
    ]
    nan = frozenset({"nonfinite"})
    trials += [
        _Trial("nonfinite", f"NaN input at step {k:g}", _mlp(4, "relu", "he_normal"), nan, int(k))
        for k in pick((5,), (3, 5, 8))
    ]
    healthy = [("ReLU + He, depth 8", _mlp(8, "relu", "he_normal"))]
    healthy += [("tanh + Xavier, depth 4", _mlp(4, "tanh", "xavier_normal"))]
    if not quick:
        healthy += [("ReLU + He, depth 2", _mlp(2, "relu", "he_normal"))]
        healthy += [("ReLU + He, depth 4", _mlp(4, "relu", "he_normal"))]
    trials += [_Trial("healthy", label, build, frozenset()) for label, build in healthy]
    return trials


def _run(ctx: Context, trial: _Trial, preset: Preset) -> Flagging:
    """Train ``trial``'s network for STEPS SGD steps under the monitor; read its findings."""
    data = digits(ctx.seed)
    ctx.seed_all()
    model = trial.build(ctx.generator())
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    batches = ctx.generator(100)
    sink = MemorySink()
    monitor = TrainingMonitor(
        model,
        opt,
        preset=preset,
        schedule=every(1),
        sinks=[sink],
        example_input=data.x_train[:32],
        summary=False,
    )
    with monitor:
        for step in range(1, STEPS + 1):
            idx = torch.randint(0, len(data.x_train), (BATCH,), generator=batches)
            x, y = data.x_train[idx], data.y_train[idx]
            if step == trial.nan_step:
                x = x.clone()
                x[0, 0] = math.nan
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
            monitor.step(loss)
    findings = monitor.findings("warning")
    steps = [f.step for f in findings if f.rule in trial.expect]
    layers = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    norms = [dict(sink.series("grad_norm", layer)).get(1, math.nan) for layer in layers]
    rules = frozenset(f.rule for f in findings)
    first = min(steps) if steps else None
    return Flagging(
        trial.problem,
        trial.variant,
        preset,
        trial.expect,
        rules,
        first,
        trial.earliest,
        tuple(norms),
    )


def _rate(fs: Iterable[Flagging]) -> float:
    listed = list(fs)
    return sum(f.flagged for f in listed) / len(listed) if listed else math.nan


def _rates(fs: Sequence[Flagging], preset: Preset) -> dict[str, float]:
    """Share of trials flagged per problem ("healthy" included) under ``preset``."""
    problems = dict.fromkeys(f.problem for f in fs)
    return {p: _rate(f for f in fs if f.problem == p and f.preset == preset) for p in problems}


def _summary(fs: Sequence[Flagging]) -> MonitorFlags:
    full, minimal = _rates(fs, "full"), _rates(fs, "minimal")
    problems = [p for p in full if p != "healthy"]
    lags = [f.lag for f in fs if f.preset == "full" and f.expect]
    return MonitorFlags(
        detected=min(full[p] for p in problems),
        false_alarms=full["healthy"],
        lag=max(lags),
        detected_minimal=min(minimal[p] for p in problems),
        flaggings=tuple(fs),
    )


@experiment("S6")
class MonitorFlagsProblems(Staged[MonitorFlags]):
    """Each injected problem and each healthy run, under both presets, on one seed."""

    def measure(self, ctx: Context) -> MonitorFlags:
        trials = _trials(ctx.quick)
        return _summary([_run(ctx, t, preset) for t in trials for preset in ("full", "minimal")])

    def decide(self, ms: Sequence[MonitorFlags]) -> Verdict:
        detect = verdicts.at_least(Estimate.of(m.detected for m in ms), DETECTED)
        quiet = verdicts.at_most(Estimate.of(m.false_alarms for m in ms), FALSE_ALARMS)
        early = verdicts.at_most(Estimate.of(m.lag for m in ms), EARLY_STEPS)
        return verdicts.weakest([detect, quiet, early])

    def explain(self, ms: Sequence[MonitorFlags], verdict: Verdict) -> Explanation:
        fs = [f for m in ms for f in m.flaggings]
        full, minimal = _rates(fs, "full"), _rates(fs, "minimal")
        problems = [p for p in full if p != "healthy"]
        found = [f for f in fs if f.preset == "full" and f.expect]
        lag = max(f.lag for f in found)
        missed_min = [p for p in problems if minimal[p] < DETECTED]
        text = _S6_TEXT.format(
            runs=sum(f.preset == "full" for f in fs),
            seeds=len(ms),
            lr=LR,
            momentum=MOMENTUM,
            steps=STEPS,
            rates="; ".join(
                f"{p}: flagged in {full[p]:.0%} of "
                f"{sum(f.problem == p and f.preset == 'full' for f in fs)} runs"
                for p in problems
            ),
            alarms=full["healthy"],
            detected=DETECTED,
            false_alarms=FALSE_ALARMS,
            timing=_timing(lag),
            early=EARLY_STEPS,
            window=DEAD_WINDOW,
            default_step=10 * DEAD_WINDOW,
            minimal=", ".join(f"{p} {minimal[p]:.0%}" for p in problems),
            alarms_min=minimal["healthy"],
            missing=_missing(missed_min),
            verdict=verdict.outcome,
        )
        firsts = [f.first_step for f in found if f.first_step is not None]
        key = (
            f"flagged {_span(full[p] for p in problems)} of injected problems (on step "
            f"{min(firsts, default=0)}-{max(firsts, default=0)}), {full['healthy']:.0%} of "
            "healthy runs"
        )
        return Explanation(key, text, (_table(fs),), (_figure(ms[0].flaggings),))


def _span(values: Iterable[float]) -> str:
    """``"100%"``, or ``"80%-100%"`` when the values differ."""
    listed = list(values)
    low, high = min(listed), max(listed)
    return f"{low:.0%}" if low == high else f"{low:.0%}-{high:.0%}"


def _timing(lag: float) -> str:
    if lag == 0:
        return "Every problem was flagged on the first logged step its rule can fire"
    return f"Detections came up to {lag:g} logged step(s) after the first step their rule can fire"


def _missing(missed: Sequence[str]) -> str:
    if not missed:
        return "."
    return (
        ": gradient norms catch vanishing and exploding gradients and NaNs, but "
        + " and ".join(missed)
        + " need the activation and weight statistics of the 'standard'/'full' presets."
    )


def _table(fs: Sequence[Flagging]) -> Table:
    rows = []
    for key in dict.fromkeys((f.problem, f.variant, f.preset) for f in fs):
        mine = [f for f in fs if (f.problem, f.variant, f.preset) == key]
        fired = sorted(set().union(*(f.rules for f in mine)))
        firsts = [f.first_step for f in mine if f.first_step is not None]
        expected = ", ".join(sorted(mine[0].expect)) or "(none)"
        first = min(firsts) if firsts else None
        rows.append((*key, expected, _rate(mine), first, ", ".join(fired) or "(none)"))
    columns = (
        "problem",
        "variant",
        "preset",
        "expected rules",
        "flagged",
        "first step flagged",
        "rules fired",
    )
    return Table(
        "Injected problems and what the monitor flagged (rate over seeds)", columns, tuple(rows)
    )


def _figure(fs: Sequence[Flagging]) -> Figure:
    profiles = {
        f.variant: ([float(i + 1) for i in range(len(f.grad_norms))], list(f.grad_norms))
        for f in fs
        if f.preset == "full"
        and f.problem in ("vanishing", "exploding", "healthy")
        and f.grad_norms
        and all(math.isfinite(g) and g > 0 for g in f.grad_norms)
    }
    title = "Per-layer gradient norm at step 1 (input to output; first seed)"
    return Figure(title, "weight layer", "gradient norm", profiles, logy=True)


_S6_TEXT = (
    "Claim: monitor per-layer gradient norms during training to catch these problems early. "
    "stabletrain.monitoring.TrainingMonitor watched {runs} short SGD runs ({seeds} seeds; lr "
    "{lr:g}, momentum {momentum:g}, {steps} steps, every step logged) on digits: {rates}; "
    "healthy runs flagged: {alarms:.0%} (bounds: >= {detected:.0%} detected on every seed, <= "
    "{false_alarms:.0%} false alarms). {timing} (bound: {early} steps late): the init problems "
    "on step 1, the NaN on the step it entered, dead units once the monitor's window of "
    "{window} logged batches was full (with the default schedule, every 10 steps, that is step "
    "{default_step}). With per-layer gradient norms alone (preset 'minimal': gradient and "
    "weight norms, non-finite counts) the rates are {minimal}, false alarms "
    "{alarms_min:.0%}{missing} Verdict: {verdict}."
)
