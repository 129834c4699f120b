"""Claims C1–C5: the recipes of document 000's table (scenario -> init + regularization).

Each recipe is trained next to reasonable alternatives, one ingredient changed at a time (the
init, or one regularizer dropped or added), on a task that matches its scenario, with the same
optimizer, budget, seeds and data for every candidate. Seeds are paired: seed ``s`` gives every
candidate the same data split, batch order and initial generator. Each seed is one measurement
(3 seeds quick, 5 full) of every candidate's test accuracy; the verdict asks whether the recipe
comes out best or close to it, on the interval over seeds of the paired difference "recipe minus
best alternative" (the best alternative: the one with the highest mean; the recipe: its weakest
member):

- "holds": the interval lies above ``-MARGIN`` (the recipe is within 5 points of the best
  alternative or ahead of it), and some alternative is worse than the recipe by more than
  ``BEATS`` over its whole interval (the choice matters, the recipe is on the right side of it);
- "holds with caveat": within 5 points but no alternative is measurably worse (on this task the
  recipe is as good as anything, not better); or the interval lies above ``-FAR`` only
  (measurably, somewhat behind);
- "inconclusive": the interval straddles ``-FAR`` (or, for "holds", ``-MARGIN`` while it clears
  ``-FAR``: then it reads "holds with caveat");
- "does not hold": the interval lies below ``-FAR``.

The ingredients, from :mod:`stabletrain`: He (``he_normal_``, ReLU gain; the classification
head Xavier, the tutorials' rule for output layers) or Xavier (``xavier_uniform_``) on every
Linear/Conv weight and attention input projection, biases 0, or PyTorch's default; L2 as
coupled weight decay through SGD on :func:`stabletrain.regularization.param_groups` (weights
only; biases and norms undecayed), which is exactly L2 (claim R1); dropout, BatchNorm and
LayerNorm through the model builders.

Scale: digits with 300 training images (small data, where regularization is meant to matter)
and 1438 test images; λ = 5e-3, ten times the tutorials' 5e-4 starting value, because these runs
last ~1000 steps, not ~100k (λ·lr·steps decides how much L2 shrinks the weights).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import nn

from stabletrain import init, models
from stabletrain.lab import verdicts
from stabletrain.lab._common import Sampler, accuracy, train
from stabletrain.lab._init_common import SCHEMES
from stabletrain.lab._reg_common import small_digits
from stabletrain.lab.estimate import Estimate
from stabletrain.lab.experiment import Context, Figure, Table, Verdict, experiment
from stabletrain.lab.staged import Explanation, Staged, measured
from stabletrain.regularization import param_groups

__all__ = [
    "BEATS",
    "C1",
    "C2",
    "C3",
    "C4",
    "C5",
    "FAR",
    "MARGIN",
    "Candidate",
    "Recipe",
    "RecipeCnn",
    "RecipeDeepRelu",
    "RecipeMeasurements",
    "RecipeNlp",
    "RecipeShallowTanh",
    "RecipeSmallFc",
    "Scenario",
    "beaten",
    "init_weights_",
    "judge",
    "sentiment",
]

InitName = Literal["he", "xavier", "default"]
# "Close to the best": the interval over seeds of (recipe − best alternative) test accuracy
# lies above −5 points (72 of 1438 test digits). With 3 seeds the 95% interval of the paired
# difference between two equally good configurations is itself about ±3-4 points here
# (measured: ±0.037 for C1's He variants, ±0.025 for C2's), so a narrower margin would call
# every tie "inconclusive" instead of resolving it.
MARGIN = 0.05
# Behind the best alternative by 5-10 points over the whole interval: close, with a caveat;
# wholly more than 10 points behind: does not hold.
FAR = 0.10
# An alternative is "worse" when the recipe beats it by more than MARGIN over the interval.
BEATS = MARGIN
L2 = 5e-3
N_TRAIN = 300
LR, MOMENTUM, BATCH = 0.02, 0.9, 32
_SCHEME = {"he": "he_normal", "xavier": "xavier_uniform"}


@dataclass(frozen=True)
class Candidate:
    """One configuration: init, L2 on or off, dropout rate, normalization on or off."""

    init: InitName
    l2: bool = False
    dropout: float = 0.0
    norm: bool = False  # BatchNorm (CNN) or LayerNorm (Transformer)
    recipe: bool = False

    def label(self, norm_name: str) -> str:
        parts = {"he": "He", "xavier": "Xavier", "default": "default"}[self.init]
        regs = [
            name
            for name, on in (("L2", self.l2), ("Dropout", self.dropout > 0), (norm_name, self.norm))
            if on
        ]
        return parts + (" + " + " + ".join(regs) if regs else ", no regularization")


def init_weights_(model: nn.Module, scheme: InitName, generator: torch.Generator) -> nn.Module:
    """He or Xavier on every Linear/Conv weight and attention input projection, biases 0.

    With ``"he"`` the classification head, the model's last Linear layer, gets Xavier: it
    feeds the loss, not a ReLU (the tutorials' rule for output layers, claim I10).
    ``"default"`` leaves PyTorch's init. Embeddings and normalization layers keep theirs.
    """
    if scheme == "default":
        return model
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    head = linears[-1] if linears else None
    for module in model.modules():
        draw = SCHEMES["xavier_uniform" if module is head else _SCHEME[scheme]]
        if isinstance(module, nn.Linear | nn.Conv2d):
            draw(module.weight, generator)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
            draw(module.in_proj_weight, generator)
            if module.in_proj_bias is not None:
                init.zeros_(module.in_proj_bias)
    return model


@dataclass(frozen=True)
class _Data:
    sample: Sampler
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Scenario:
    """A recipe's task: data per seed, a model per candidate, an optimizer, a budget.

    The recipe comes first in ``candidates``; quick mode trains only the first
    ``quick_candidates`` (0: all), so the alternatives that decide the verdict come next.
    """

    description: str
    norm_name: str  # what ``Candidate.norm`` means here
    candidates: tuple[Candidate, ...]
    build: Callable[[Candidate], nn.Module]
    data: Callable[[Context], _Data]
    optimizer: Callable[[nn.Module, Candidate], torch.optim.Optimizer]
    steps: tuple[int, int]  # quick, full
    quick_candidates: int = 0

    def chosen(self, ctx: Context) -> tuple[Candidate, ...]:
        """The candidates ``ctx``'s mode trains."""
        if ctx.quick and self.quick_candidates:
            return self.candidates[: self.quick_candidates]
        return self.candidates


@dataclass(frozen=True)
class RecipeMeasurements:
    """Every candidate's accuracy at one seed (the same data, batches and init draws for all)."""

    recipe_accuracy: float = measured("accuracy", "test accuracy of the recipe's weakest member")
    best_alternative: float = measured("accuracy", "the best alternative's test accuracy")
    worst_alternative: float = measured("accuracy", "the worst alternative's test accuracy")
    labels: tuple[str, ...] = ()
    recipe: tuple[bool, ...] = ()
    test: tuple[float, ...] = ()  # per candidate, in ``labels`` order
    train: tuple[float, ...] = ()
    steps: int = 0


def _digits_data(ctx: Context) -> _Data:
    split = small_digits(N_TRAIN, ctx.seed)
    sample = split.sampler(BATCH, ctx.generator(100))
    return _Data(sample, split.x_train, split.y_train, split.x_test, split.y_test)


def _sgd(model: nn.Module, c: Candidate) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        param_groups(model, weight_decay=L2 if c.l2 else 0.0), lr=LR, momentum=MOMENTUM
    )


def _measure(ctx: Context, scenario: Scenario) -> RecipeMeasurements:
    """Train every candidate at ``ctx.seed`` on the same data, batches and init draws."""
    steps = ctx.pick(*scenario.steps)
    candidates = scenario.chosen(ctx)
    tests, trains = [], []
    for c in candidates:
        data = scenario.data(ctx)  # a fresh batch stream: the same batches for every candidate
        ctx.seed_all(1000)  # default init and dropout masks: the same per seed
        model = init_weights_(scenario.build(c), c.init, ctx.generator(2000))
        train(model, scenario.optimizer(model, c), data.sample, steps=steps)
        tests.append(accuracy(model, data.x_test, data.y_test))
        trains.append(accuracy(model, data.x_train, data.y_train))
    recipe = tuple(c.recipe for c in candidates)
    others = [t for t, r in zip(tests, recipe, strict=True) if not r]
    return RecipeMeasurements(
        recipe_accuracy=min(t for t, r in zip(tests, recipe, strict=True) if r),
        best_alternative=max(others),
        worst_alternative=min(others),
        labels=tuple(c.label(scenario.norm_name) for c in candidates),
        recipe=recipe,
        test=tuple(tests),
        train=tuple(trains),
        steps=steps,
    )


def _mean(ms: Sequence[RecipeMeasurements], i: int) -> float:
    """Candidate ``i``'s mean test accuracy over the seeds."""
    return statistics.fmean(m.test[i] for m in ms)


def _diff(ms: Sequence[RecipeMeasurements], i: int, j: int) -> Estimate:
    """The interval over seeds of candidate ``i``'s accuracy minus candidate ``j``'s (paired)."""
    return Estimate.of(m.test[i] - m.test[j] for m in ms)


def _roles(ms: Sequence[RecipeMeasurements]) -> tuple[int, int, int]:
    """Indices of the best alternative and of the recipe's weakest and strongest members (by
    mean test accuracy over the seeds)."""
    n = len(ms[0].test)
    members = [i for i in range(n) if ms[0].recipe[i]]
    if not members:
        raise ValueError("judge: no candidate is marked as the recipe (recipe=True).")
    if len(members) == n:
        raise ValueError("judge: no alternative to compare the recipe with.")
    rival = max((i for i in range(n) if i not in members), key=lambda i: _mean(ms, i))
    weakest = min(members, key=lambda i: _mean(ms, i))
    strongest = max(members, key=lambda i: _mean(ms, i))
    return rival, weakest, strongest


def beaten(ms: Sequence[RecipeMeasurements]) -> list[int]:
    """The alternatives that the recipe's strongest member beats by more than ``BEATS`` over
    the whole interval of the paired difference."""
    _, _, top = _roles(ms)
    return [
        j for j in range(len(ms[0].test)) if not ms[0].recipe[j] and _diff(ms, top, j).low > BEATS
    ]


def judge(ms: Sequence[RecipeMeasurements]) -> Verdict:
    """The recipe's verdict from the interval of (recipe's weakest member − best alternative).

    Above ``-MARGIN`` over the interval and some alternative beaten: "holds"; above
    ``-MARGIN`` but nothing beaten, or above ``-FAR`` only: "holds with caveat"; straddling
    ``-FAR``: "inconclusive"; below it: "does not hold".

    Example:
        >>> def seed(recipe: float, other: float, bad: float) -> RecipeMeasurements:
        ...     return RecipeMeasurements(recipe, other, bad, ("r", "o", "b"),
        ...                               (True, False, False), (recipe, other, bad))
        >>> judge([seed(0.95, 0.95, 0.5), seed(0.96, 0.94, 0.5), seed(0.94, 0.95, 0.6)]).outcome
        'holds'
        >>> judge([seed(0.95, 0.95, 0.95), seed(0.96, 0.95, 0.95), seed(0.94, 0.95, 0.95)]).outcome
        'holds with caveat'
        >>> judge([seed(0.80, 0.95, 0.5), seed(0.81, 0.96, 0.5), seed(0.79, 0.94, 0.5)]).outcome
        'does not hold'
    """
    rival, weakest, _ = _roles(ms)
    verdict = verdicts.at_least(_diff(ms, weakest, rival), -MARGIN, caveat=-FAR)
    if verdict.outcome != "holds" or beaten(ms):
        return verdict
    return replace(
        verdict,
        outcome="holds with caveat",
        rule=f"{verdict.rule}; caveat: no alternative is worse by more than {BEATS:g}",
    )


def _rows(ms: Sequence[RecipeMeasurements]) -> tuple[tuple[object, ...], ...]:
    _, weakest, _ = _roles(ms)
    rows = []
    for i, label in enumerate(ms[0].labels):
        test = Estimate.of(m.test[i] for m in ms)
        gap = _diff(ms, weakest, i)
        rows.append(
            (
                label,
                "recipe" if ms[0].recipe[i] else "alternative",
                test.value,
                test.half_width,
                statistics.fmean(m.train[i] for m in ms),
                gap.value,
                gap.low,
                gap.high,
            )
        )
    return tuple(rows)


def _outcome_text(ms: Sequence[RecipeMeasurements], verdict: Verdict) -> str:
    if verdict.outcome == "holds":
        worse = ", ".join(f"{ms[0].labels[j]} ({_mean(ms, j):.3f})" for j in beaten(ms))
        return (
            f"The recipe is within {MARGIN:g} of the best alternative over the interval, and "
            f"beats {worse} by more than {BEATS:g}."
        )
    if verdict.outcome == "holds with caveat":
        if verdict.low is not None and verdict.low < -MARGIN:
            return (
                f"The recipe may be behind the best alternative by more than {MARGIN:g} but by "
                f"less than {FAR:g}: close, but not shown to be as good."
            )
        return (
            "The recipe is close to the best alternative, but no alternative is measurably "
            "worse: on this task the choice does not matter."
        )
    if verdict.outcome == "inconclusive":
        return f"The interval straddles {-FAR:g}: these seeds cannot tell."
    return f"The recipe is behind the best alternative by more than {FAR:g} over the interval."


def _explain(
    ms: Sequence[RecipeMeasurements], verdict: Verdict, scenario: Scenario, claim: str
) -> Explanation:
    rival, weakest, _ = _roles(ms)
    labels, n_all = ms[0].labels, len(scenario.candidates)
    gap = _diff(ms, weakest, rival)
    subset = (
        f", the first {len(labels)} of {n_all} candidates (quick mode)"
        if len(labels) < n_all
        else ""
    )
    text = (
        f"Claim: {claim}. {scenario.description} {ms[0].steps} steps, {len(ms)} paired "
        f"seed(s){subset}. Test accuracy (mean over seeds): "
        + ", ".join(f"{label} {_mean(ms, i):.3f}" for i, label in enumerate(labels))
        + f". Best alternative: {labels[rival]}. Recipe ({labels[weakest]}) minus it: "
        f"{gap.describe()} (holds above {-MARGIN:g} over the interval, caveat above "
        f"{-FAR:g}). " + _outcome_text(ms, verdict)
    )
    key = (
        "recipe "
        + " / ".join(f"{_mean(ms, i):.3f}" for i in range(len(labels)) if ms[0].recipe[i])
        + f" vs best alternative {_mean(ms, rival):.3f} ({labels[rival]}); recipe - it "
        f"{gap.value:+.3f}"
    )
    table = Table(
        "Recipe against alternatives (test accuracy over paired seeds)",
        (
            "candidate",
            "role",
            "test accuracy (mean)",
            "± 95% CI",
            "train accuracy (mean)",
            "recipe minus this (mean)",
            "low",
            "high",
        ),
        _rows(ms),
    )
    figure = Figure(
        "Test accuracy by candidate (mean over seeds)",
        "candidate",
        "test accuracy",
        {label: ([float(i)], [_mean(ms, i)]) for i, label in enumerate(labels)},
        kind="bar",
    )
    return Explanation(key, text, (table,), (figure,))


class Recipe(Staged[RecipeMeasurements]):
    """A recipe trained next to its alternatives; subclasses set the scenario and the claim."""

    scenario: ClassVar[Scenario]
    claim: ClassVar[str]

    def measure(self, ctx: Context) -> RecipeMeasurements:
        return _measure(ctx, self.scenario)

    def decide(self, ms: Sequence[RecipeMeasurements]) -> Verdict:
        return judge(ms)

    def explain(self, ms: Sequence[RecipeMeasurements], verdict: Verdict) -> Explanation:
        return _explain(ms, verdict, self.scenario, self.claim)


def _mlp_builder(depth: int, width: int, activation: str) -> Callable[[Candidate], nn.Module]:
    def build(c: Candidate) -> nn.Module:
        return models.mlp(64, 10, depth, width, activation=activation, dropout=c.dropout)

    return build


def _alternatives(recipe: Candidate, *others: Candidate) -> tuple[Candidate, ...]:
    return (replace(recipe, recipe=True), *others)


P_MLP = 0.2  # dropout after each hidden activation of the MLPs
DEEP = Candidate("he", l2=True, dropout=P_MLP)
C1 = Scenario(
    description=(
        "A deep ReLU MLP (6 hidden layers of 128) on digits, 300 training images; SGD lr "
        f"{LR:g}, momentum {MOMENTUM:g}, batch {BATCH}, L2 λ = {L2:g}, dropout {P_MLP:g}."
    ),
    norm_name="norm",
    candidates=_alternatives(
        DEEP,
        # quick mode: the strongest alternative measured (no Dropout, which trains faster
        # early: 5 points ahead after 100 steps, even after 200) and PyTorch's default init
        replace(DEEP, dropout=0.0),
        replace(DEEP, init="default"),
        replace(DEEP, init="xavier"),
        replace(DEEP, l2=False),
        replace(DEEP, l2=False, dropout=0.0),
    ),
    build=_mlp_builder(6, 128, "relu"),
    data=_digits_data,
    optimizer=_sgd,
    steps=(200, 800),
    quick_candidates=3,
)


@experiment("C1")
class RecipeDeepRelu(Recipe):
    """C1: He init with L2 + Dropout for a deep ReLU MLP, against one change at a time."""

    scenario = C1
    claim = "a deep ReLU network should use He init with L2 + Dropout"


SHALLOW = Candidate("xavier", l2=True)
C2 = Scenario(
    description=(
        "A shallow tanh MLP (2 hidden layers of 64) on digits, 300 training images; SGD lr "
        f"{LR:g}, momentum {MOMENTUM:g}, batch {BATCH}, L2 λ = {L2:g}, dropout {P_MLP:g}."
    ),
    norm_name="norm",
    candidates=_alternatives(
        SHALLOW,
        # quick mode: the init changes and dropping L2 (every one within 1.5 points measured)
        replace(SHALLOW, init="default"),
        replace(SHALLOW, init="he"),
        replace(SHALLOW, l2=False),
        replace(SHALLOW, l2=False, dropout=P_MLP),
        replace(SHALLOW, dropout=P_MLP),
    ),
    build=_mlp_builder(2, 64, "tanh"),
    data=_digits_data,
    optimizer=_sgd,
    steps=(150, 800),
    quick_candidates=4,
)


@experiment("C2")
class RecipeShallowTanh(Recipe):
    """C2: Xavier init with L2 for a shallow tanh MLP, against one change at a time."""

    scenario = C2
    claim = "a shallow tanh/sigmoid network should use Xavier init with L2"


SMALL = Candidate("xavier", l2=True)
C3 = Scenario(
    description=(
        "A small fully connected ReLU network (1 hidden layer of 32) on digits, 300 training "
        f"images; SGD lr {LR:g}, momentum {MOMENTUM:g}, batch {BATCH}, L2 λ = {L2:g}, dropout "
        f"{P_MLP:g}. The recipe allows Xavier or the default init: both are recipe members."
    ),
    norm_name="norm",
    candidates=(
        replace(SMALL, recipe=True),
        replace(SMALL, init="default", recipe=True),
        # quick mode: dropping L2 and He's init (every one within 1.5 points measured)
        replace(SMALL, init="default", l2=False),
        replace(SMALL, init="he"),
        replace(SMALL, l2=False),
        replace(SMALL, l2=False, dropout=P_MLP),
    ),
    build=_mlp_builder(1, 32, "relu"),
    data=_digits_data,
    optimizer=_sgd,
    steps=(150, 800),
    quick_candidates=4,
)


@experiment("C3")
class RecipeSmallFc(Recipe):
    """C3: Xavier or default init with L2 for a small fully connected network."""

    scenario = C3
    claim = "a small fully connected network should use Xavier or default + L2"


P_CNN = 0.3  # dropout before the head of the CNN


def _cnn(c: Candidate) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),  # (B, 64) -> (B, 1, 8, 8)
        models.cnn(1, 10, (16, 32), dropout=c.dropout, batch_norm=c.norm),
    )


CONV = Candidate("he", dropout=P_CNN, norm=True)
C4 = Scenario(
    description=(
        "A CNN (two conv stages of 16 and 32 channels, global average pooling; "
        "stabletrain.models.cnn) on the 8x8 digit images, 300 training images; SGD lr "
        f"{LR:g}, momentum {MOMENTUM:g}, batch {BATCH}, dropout {P_CNN:g} before the head, "
        "BatchNorm after each conv."
    ),
    norm_name="BatchNorm",
    candidates=_alternatives(
        CONV,
        # quick mode: one regularizer dropped at a time (without Dropout it trains faster
        # early: 4 points ahead after 100 steps; without BatchNorm 10 points behind)
        replace(CONV, dropout=0.0),
        replace(CONV, norm=False),
        replace(CONV, init="xavier"),
        replace(CONV, dropout=0.0, norm=False),
        replace(CONV, init="default"),
    ),
    build=_cnn,
    data=_digits_data,
    optimizer=_sgd,
    steps=(200, 600),
    quick_candidates=3,
)


@experiment("C4")
class RecipeCnn(Recipe):
    """C4: He init with Dropout + BatchNorm for a small CNN, against one change at a time."""

    scenario = C4
    claim = "a CNN image classifier should use He init with Dropout + BatchNorm"


VOCAB, LENGTH, N_SEQ, N_SEQ_TEST = 20, 12, 300, 1000
POSITIVE, NEGATIVE = range(0, 5), range(5, 10)  # the rest of the vocabulary is neutral
LABEL_NOISE = 0.1
P_SEQ = 0.1  # the Transformer's usual dropout rate


def sentiment(
    generator: torch.Generator, rows: int, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic sentiment task: is a sequence's count of positive words above its negative?

    Tokens are uniform over ``VOCAB`` words (5 positive, 5 negative, 10 neutral); ties get a
    random label; a fraction ``noise`` of the labels is flipped.

    Example:
        >>> x, y = sentiment(torch.Generator().manual_seed(0), 4, 0.0)
        >>> x.shape, y.tolist() == [int((r < 5).sum() > ((r >= 5) & (r < 10)).sum())
        ...                          if (r < 5).sum() != ((r >= 5) & (r < 10)).sum() else v
        ...                          for r, v in zip(x, y.tolist())]
        (torch.Size([4, 12]), True)
    """
    x = torch.randint(0, VOCAB, (rows, LENGTH), generator=generator)  # (B, T)
    pos = ((x >= POSITIVE.start) & (x < POSITIVE.stop)).sum(1)
    neg = ((x >= NEGATIVE.start) & (x < NEGATIVE.stop)).sum(1)
    coin = torch.randint(0, 2, (rows,), generator=generator)
    y = torch.where(pos == neg, coin, (pos > neg).long())
    flip = torch.rand(rows, generator=generator) < noise
    return x, torch.where(flip, 1 - y, y)


class _MeanPool(nn.Module):
    """Average the per-position logits of a sequence model: ``(B, T, C) -> (B, C)``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x).mean(1)
        return out


def _transformer(c: Candidate) -> nn.Module:
    body = models.transformer(
        vocab_size=VOCAB,
        out_features=2,
        d_model=32,
        n_heads=4,
        n_layers=2,
        dropout=c.dropout,
        max_len=LENGTH,
    )
    if not c.norm:  # the same Pre-LN stack with every LayerNorm removed
        for block in body.blocks:
            block.ln1, block.ln2 = nn.Identity(), nn.Identity()
        body.final_norm = nn.Identity()
    return _MeanPool(body)


def _sentiment_data(ctx: Context) -> _Data:
    x, y = sentiment(ctx.generator(300), N_SEQ, LABEL_NOISE)
    x_test, y_test = sentiment(ctx.generator(400), N_SEQ_TEST, 0.0)
    batches = ctx.generator(500)

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, N_SEQ, (BATCH,), generator=batches)
        return x[idx], y[idx]

    return _Data(sample, x, y, x_test, y_test)


def _adam(model: nn.Module, c: Candidate) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-3)


SEQ = Candidate("xavier", dropout=P_SEQ, norm=True)
C5 = Scenario(
    description=(
        "A 2-layer Pre-LN Transformer (d_model 32, 4 heads; stabletrain.models.transformer, "
        "logits averaged over positions) on a synthetic sentiment task: 12 tokens from 20 "
        "words, label = more positive than negative words, 300 training sequences with 10% "
        f"of the labels flipped, 1000 clean test sequences; Adam lr 1e-3, batch {BATCH}, "
        f"dropout {P_SEQ:g}. 'No LayerNorm' removes every LayerNorm of the same stack."
    ),
    norm_name="LayerNorm",
    candidates=_alternatives(
        SEQ,
        # quick mode: the strongest alternative measured (no Dropout) and the weakest (He)
        replace(SEQ, dropout=0.0),
        replace(SEQ, init="he"),
        replace(SEQ, norm=False),
        replace(SEQ, init="default"),
        replace(SEQ, dropout=0.0, norm=False),
    ),
    build=_transformer,
    data=_sentiment_data,
    optimizer=_adam,
    steps=(100, 300),  # at 60 steps one seed's interval reached -0.10 (-0.02 ± 0.08)
    quick_candidates=3,
)


@experiment("C5")
class RecipeNlp(Recipe):
    """C5: Xavier init with LayerNorm + Dropout for a small Transformer on a sentiment task."""

    scenario = C5
    claim = "an NLP model (RNN/Transformer) should use Xavier init with LayerNorm + Dropout"
