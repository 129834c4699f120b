"""Claims I1 and I2: constant init keeps hidden units identical; random init and dropout break it.

Both train the same small MLP (2 hidden layers of 32 units) on the digits with plain SGD and
measure, after training, how far apart the rows of each hidden layer's weight matrix are:
``spread = max_ij |W_ij - W_0j| / mean |W|`` (0 when every unit has the same incoming weights).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stabletrain import init, models
from stabletrain.lab import verdicts
from stabletrain.lab._common import accuracy, digits, train
from stabletrain.lab._init_common import Scheme, init_linears_
from stabletrain.lab.estimate import Estimate, over
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured

WIDTH, DEPTH = 32, 2  # a small MLP: the effect does not depend on size
LR, BATCH = 0.1, 64
CONSTANT = 0.05  # the constant weight of "constant init" (any non-zero value behaves the same)
DROPOUT = 0.5  # the tutorials' hidden-layer rate
# Identical rows in float32: computing identical units gives bit-identical results, so any
# spread above float rounding (~1e-7 relative) would be a real difference.
SYMMETRY_TOL = 1e-6
# Broken symmetry: rows differ by at least 1% of the typical weight, 10^4 times the rounding
# level; random init gives spreads of order 1-10.
BROKEN = 1e-2

_INITS: dict[str, Scheme] = {
    "zero": lambda w, g: init.zeros_(w),
    "constant": lambda w, g: init.constant_(w, CONSTANT),
    "random (Xavier)": lambda w, g: init.xavier_uniform_(w, generator=g),
}


@dataclass(frozen=True)
class TrainedRun:
    """One training run: its setting and the hidden layers' row spreads after training."""

    setting: str
    activation: str
    spreads: tuple[float, ...]  # one per hidden layer
    accuracy: float
    final_loss: float
    largest_weight: float  # max |W| over the hidden layers after training

    @property
    def spread(self) -> float:
        return max(self.spreads)


def _spread(weight: torch.Tensor) -> float:
    w = weight.detach()
    scale = float(w.abs().mean())
    return float((w - w[0]).abs().max()) / scale if scale > 0 else 0.0


def _steps(ctx: Context) -> int:
    return ctx.pick(200, 1000)


def _run(ctx: Context, scheme: str, activation: str, dropout: float) -> TrainedRun:
    ctx.seed_all()  # dropout masks come from torch's global generator
    data = digits(ctx.seed)
    model = models.mlp(
        data.n_features, data.n_classes, DEPTH, WIDTH, activation=activation, dropout=dropout
    )
    init_linears_(model, _INITS[scheme], ctx.generator(1))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    log = train(model, opt, data.sampler(BATCH, ctx.generator(2)), steps=_steps(ctx))
    hidden = [m for name, m in model.named_children() if name.startswith("linear")]
    weights = [m.weight.detach() for m in hidden if isinstance(m, nn.Linear)]
    setting = scheme + (f" + dropout {dropout:g}" if dropout else "")
    return TrainedRun(
        setting,
        activation,
        tuple(_spread(w) for w in weights),
        accuracy(model, data.x_test, data.y_test),
        log.final_loss(),
        max(float(w.abs().max()) for w in weights),
    )


def _table(title: str, runs: Sequence[TrainedRun]) -> Table:
    return Table(
        title,
        ("init", "activation", "spread layer 1", "spread layer 2", "test accuracy", "final loss"),
        tuple(
            (r.setting, r.activation, *r.spreads, round(r.accuracy, 4), round(r.final_loss, 4))
            for r in runs
        ),
    )


def _figure(title: str, runs: Sequence[TrainedRun]) -> Figure:
    labels = [f"{r.setting} ({r.activation})" for r in runs]
    return Figure(
        title,
        "setting",
        "row spread after training (max over hidden layers)",
        {
            label: ([float(i)], [r.spread])
            for i, (label, r) in enumerate(zip(labels, runs, strict=True))
        },
        kind="bar",
    )


@dataclass(frozen=True)
class ConstantInit:
    """I1's measurements on one seed: four trainings from all-zero or constant weights."""

    worst_spread: float = measured("relative", "largest row spread of a hidden weight matrix")
    best_accuracy: float = measured("accuracy", "best test accuracy of the four runs")
    zero_largest_weight: float = measured("", "largest |W| of a hidden layer, all-zero init")
    steps: int = measured("count", "SGD steps per run")
    runs: tuple[TrainedRun, ...] = ()


@experiment("I1")
class ConstantInitSymmetry(Staged[ConstantInit]):
    """Zero and constant init, tanh and ReLU: do the hidden units stay identical in training?

    Three seeds (data order and split differ): the spread is 0 on each when the claim holds.
    """

    def measure(self, ctx: Context) -> ConstantInit:
        runs = tuple(
            _run(ctx, scheme, activation, 0.0)
            for scheme in ("zero", "constant")
            for activation in ("tanh", "relu")
        )
        return ConstantInit(
            worst_spread=max(r.spread for r in runs),
            best_accuracy=max(r.accuracy for r in runs),
            zero_largest_weight=max(r.largest_weight for r in runs if r.setting == "zero"),
            steps=_steps(ctx),
            runs=runs,
        )

    def decide(self, ms: Sequence[ConstantInit]) -> Verdict:
        return verdicts.at_most(Estimate.of(m.worst_spread for m in ms), SYMMETRY_TOL)

    def explain(self, ms: Sequence[ConstantInit], verdict: Verdict) -> Explanation:
        m = ms[0]
        worst = max(m.runs, key=lambda r: r.spread)
        spread = Estimate.of(x.worst_spread for x in ms)
        text = (
            "Claim: all-zero or constant weights keep every hidden unit of a layer identical "
            f"through training. A {DEPTH}-hidden-layer MLP (width {WIDTH}, tanh and ReLU) "
            f"trained with SGD (lr {LR}) on the digits for {m.steps} steps, every weight set "
            f"to 0 or to {CONSTANT}, on {len(ms)} seed(s): the largest spread between the rows "
            f"of a hidden weight matrix is {spread.describe()} (first seed: {worst.setting}, "
            f"{worst.activation}), against a tolerance of {SYMMETRY_TOL:g}: {verdict.outcome}. "
            "Every unit computes the same function, so the layer acts like a single unit, and "
            f"the best test accuracy is {m.best_accuracy:.2f}. With all-zero weights the "
            f"largest hidden weight after training is {m.zero_largest_weight:.2g}: with a zero "
            "next layer every hidden gradient is 0."
        )
        return Explanation(
            key_number=f"largest row spread after {m.steps} SGD steps = {spread.value:.2g}",
            text=text,
            tables=(_table("Row spread of the hidden weight matrices after training", m.runs),),
            figures=(_figure("Hidden units stay identical under constant init", m.runs),),
        )


@dataclass(frozen=True)
class SymmetryBroken:
    """I2's measurements on one seed: random init, constant init with and without dropout."""

    random_spread: float = measured("relative", "row spread after training, Xavier init")
    constant_spread: float = measured("relative", "row spread after training, constant init")
    dropout_spread: float = measured("relative", "row spread, constant init + dropout")
    zero_dropout_spread: float = measured("relative", "row spread, all-zero init + dropout")
    random_accuracy: float = measured("accuracy", "test accuracy, Xavier init")
    dropout_accuracy: float = measured("accuracy", "test accuracy, constant init + dropout")
    runs: tuple[TrainedRun, ...] = ()


@experiment("I2")
class SymmetryBreaking(Staged[SymmetryBroken]):
    """Random init and dropout against the symmetry of a constant init (tanh MLP, digits)."""

    def measure(self, ctx: Context) -> SymmetryBroken:
        random_run = _run(ctx, "random (Xavier)", "tanh", 0.0)
        constant_run = _run(ctx, "constant", "tanh", 0.0)
        dropout_run = _run(ctx, "constant", "tanh", DROPOUT)
        zero_dropout_run = _run(ctx, "zero", "tanh", DROPOUT)
        return SymmetryBroken(
            random_spread=random_run.spread,
            constant_spread=constant_run.spread,
            dropout_spread=dropout_run.spread,
            zero_dropout_spread=zero_dropout_run.spread,
            random_accuracy=random_run.accuracy,
            dropout_accuracy=dropout_run.accuracy,
            runs=(random_run, constant_run, dropout_run, zero_dropout_run),
        )

    def decide(self, ms: Sequence[SymmetryBroken]) -> Verdict:
        def broken(name: str) -> Verdict:
            return verdicts.at_least(over(ms, name), BROKEN)

        core = verdicts.weakest([broken("dropout_spread"), broken("random_spread")])
        rule = (
            f"holds: spread >= {BROKEN:g} for random init, constant + dropout and zero + "
            "dropout; caveat: only for random init and constant + dropout"
        )
        zero = broken("zero_dropout_spread")
        if core.outcome == "holds" and zero.outcome != "holds":
            return dataclasses.replace(core, outcome="holds with caveat", rule=rule)
        return dataclasses.replace(core, rule=rule)

    def explain(self, ms: Sequence[SymmetryBroken], verdict: Verdict) -> Explanation:
        random, constant, dropout = (
            over(ms, f"{k}_spread") for k in ("random", "constant", "dropout")
        )
        zero = over(ms, "zero_dropout_spread")
        zero_text = (
            "also breaks the all-zero init"
            if zero.low >= BROKEN
            else (
                f"cannot break the all-zero init (spread {zero.value:.2g}): with zero "
                "weights every hidden gradient is exactly 0, and dropping zeros changes nothing"
            )
        )
        text = (
            "Claim: random init breaks the symmetry; dropout breaks it as well. After training "
            f"a tanh MLP on the digits ({len(ms)} seed(s)), the rows of the hidden weight "
            f"matrices differ by a relative spread of {random.describe()} with random (Xavier) "
            f"init and {constant.describe()} with constant init. Dropout ({DROPOUT:g}) on top "
            f"of the constant init gives {dropout.describe()} (threshold {BROKEN:g}): each "
            "unit is dropped by its own mask, so units receive different gradients and drift "
            f"apart. Verdict: {verdict.outcome}. Caveats: dropout {zero_text}; and units that "
            "differ are not yet units that learn different features: in the same budget the "
            f"network reaches a test accuracy of {over(ms, 'dropout_accuracy').value:.2f}, against "
            f"{over(ms, 'random_accuracy').value:.2f} with random init. Random init is the fix."
        )
        runs = ms[0].runs
        return Explanation(
            key_number=(
                f"row spread: random {random.value:.2g}, constant + dropout "
                f"{dropout.value:.2g}, constant {constant.value:.2g}"
            ),
            text=text,
            tables=(_table("Row spread of the hidden weight matrices after training", runs),),
            figures=(_figure("Symmetry broken by random init and by dropout", runs),),
        )
