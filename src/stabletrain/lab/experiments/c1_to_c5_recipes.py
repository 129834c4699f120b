"""Claims C1–C5: the recipes of document 000's table (scenario -> init + regularization).

Each recipe is trained next to reasonable alternatives, one ingredient changed at a time (the
init, or one regularizer dropped or added), on a task that matches its scenario, with the same
optimizer, budget, seeds and data for every candidate. Seeds are paired: seed ``s`` gives every
candidate the same data split, batch order and initial generator. The verdict asks whether the
recipe comes out best or within noise of the best:

- noise between two candidates: twice the standard error of their per-seed accuracy
  differences, at least ``NOISE_FLOOR``;
- "holds": every recipe member is within noise of the best candidate, and at least one
  alternative is worse than the recipe by more than noise (the choice matters, the recipe is on
  the right side of it);
- "holds with caveat": within noise of the best, but so is every alternative (on this task the
  recipe is as good as anything, not better); or below the best by more than noise but less
  than ``CLOSE`` times it (measurably, slightly worse);
- "does not hold": a recipe member is below the best by more than ``CLOSE`` times the noise.

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
from typing import Literal

import torch
from torch import nn

from stabletrain import init, models
from stabletrain.lab._common import Sampler, accuracy, train
from stabletrain.lab._init_common import SCHEMES
from stabletrain.lab._reg_common import small_digits
from stabletrain.lab._stab_common import mean_se
from stabletrain.lab.experiment import Context, Figure, Result, Table, Verdict, experiment
from stabletrain.regularization import param_groups

__all__ = ["Candidate", "Scenario", "Scores", "beaten", "init_weights_", "judge", "sentiment"]

InitName = Literal["he", "xavier", "default"]
# Two candidates differ when their mean test accuracies differ by more than twice the standard
# error of the paired differences, and never by less than 1 point (14 of 1438 test digits):
# with 2-4 seeds the standard error itself is uncertain.
NOISE_FLOOR = 0.01
# Below the best by more than noise but less than twice it: close, with a caveat.
CLOSE = 2.0
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
    """A recipe's task: data per seed, a model per candidate, an optimizer, a budget."""

    description: str
    norm_name: str  # what ``Candidate.norm`` means here
    candidates: tuple[Candidate, ...]
    build: Callable[[Candidate], nn.Module]
    data: Callable[[Context, int], _Data]
    optimizer: Callable[[nn.Module, Candidate], torch.optim.Optimizer]
    steps: tuple[int, int]  # quick, full
    seeds: tuple[int, int]
    quick_candidates: int = 0  # in quick mode only the first this-many candidates; 0: all


@dataclass(frozen=True)
class Scores:
    """One candidate's accuracies, per paired seed."""

    label: str
    recipe: bool
    test: tuple[float, ...]
    train: tuple[float, ...] = ()

    @property
    def mean(self) -> float:
        """Mean test accuracy."""
        return statistics.fmean(self.test)


def _digits_data(ctx: Context, seed: int) -> _Data:
    split = small_digits(N_TRAIN, ctx.seed + seed)
    sample = split.sampler(BATCH, ctx.generator(100 + seed))
    return _Data(sample, split.x_train, split.y_train, split.x_test, split.y_test)


def _sgd(model: nn.Module, c: Candidate) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        param_groups(model, weight_decay=L2 if c.l2 else 0.0), lr=LR, momentum=MOMENTUM
    )


def _paired_noise(a: Sequence[float], b: Sequence[float]) -> float:
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return max(NOISE_FLOOR, 2 * mean_se(diffs)[1])


def _evaluate(ctx: Context, scenario: Scenario) -> list[Scores]:
    steps, seeds = ctx.pick(scenario.steps[0], scenario.steps[1]), ctx.pick(*scenario.seeds)
    candidates = scenario.candidates
    if ctx.quick and scenario.quick_candidates:
        candidates = candidates[: scenario.quick_candidates]
    scores = []
    for c in candidates:
        tests, trains = [], []
        for s in range(seeds):
            data = scenario.data(ctx, s)
            ctx.seed_all(1000 + s)  # default init and dropout masks: the same per seed
            model = init_weights_(scenario.build(c), c.init, ctx.generator(2000 + s))
            train(model, scenario.optimizer(model, c), data.sample, steps=steps)
            tests.append(accuracy(model, data.x_test, data.y_test))
            trains.append(accuracy(model, data.x_train, data.y_train))
        scores.append(Scores(c.label(scenario.norm_name), c.recipe, tuple(tests), tuple(trains)))
    return scores


def beaten(scores: Sequence[Scores]) -> list[Scores]:
    """The alternatives below the recipe's best member by more than noise."""
    top = max((s for s in scores if s.recipe), key=lambda s: s.mean)
    return [
        s for s in scores if not s.recipe and top.mean - s.mean > _paired_noise(top.test, s.test)
    ]


def judge(scores: Sequence[Scores]) -> tuple[Verdict, list[tuple[float, float]]]:
    """The recipe's verdict, and per candidate ``(gap below the best, noise of that gap)``.

    Noise between two candidates is ``max(NOISE_FLOOR, 2·s.e.)`` of their paired per-seed
    differences. "does not hold": a recipe member is below the best by more than ``CLOSE``
    times the noise; "holds": every member within noise and some alternative below the best
    member by more than noise; "holds with caveat": within noise and no alternative is worse,
    or below the best by between one and ``CLOSE`` times the noise.

    Example:
        >>> recipe = Scores("recipe", True, (0.95, 0.96, 0.94))
        >>> worse = Scores("no L2", False, (0.90, 0.91, 0.89))
        >>> judge([recipe, worse])[0].outcome
        'holds'
        >>> judge([recipe, Scores("He", False, (0.95, 0.955, 0.945))])[0].outcome
        'holds with caveat'
        >>> behind = Scores("recipe", True, (0.90, 0.91, 0.89))
        >>> judge([behind, Scores("better", False, (0.95, 0.96, 0.94))])[0].outcome
        'does not hold'
        >>> judge([recipe, Scores("a bit better", False, (0.965, 0.975, 0.955))])[0].outcome
        'holds with caveat'
    """
    members = [i for i, s in enumerate(scores) if s.recipe]
    if not members:
        raise ValueError("judge: no candidate is marked as the recipe (recipe=True).")
    best = max(scores, key=lambda s: s.mean)
    gaps = [(best.mean - s.mean, _paired_noise(best.test, s.test)) for s in scores]
    worst = max(members, key=lambda i: gaps[i][0] - gaps[i][1])
    gap, noise = gaps[worst]
    worse = beaten(scores)
    rule = f"best - recipe <= noise ({noise:.3f})"
    if gap > CLOSE * noise:
        return Verdict("does not hold", gap, noise, f"{rule} (caveat <= {CLOSE:g}x)"), gaps
    if gap > noise:
        return (
            Verdict("holds with caveat", gap, noise, f"{rule}; caveat: within {CLOSE:g}x noise"),
            gaps,
        )
    if worse:
        return Verdict("holds", gap, noise, f"{rule}; beats {len(worse)} alternative(s)"), gaps
    return (
        Verdict("holds with caveat", gap, noise, f"{rule}; caveat: no alternative is worse"),
        gaps,
    )


def _result(ctx: Context, scenario: Scenario, claim: str) -> Result:
    scores = _evaluate(ctx, scenario)
    verdict, gaps = judge(scores)
    best = max(scores, key=lambda s: s.mean)
    recipe = [s for s in scores if s.recipe]
    rows = []
    for s, (gap, noise) in zip(scores, gaps, strict=True):
        mean, se = mean_se(s.test)
        rows.append(
            (
                s.label,
                "recipe" if s.recipe else "alternative",
                mean,
                se,
                statistics.fmean(s.train),
                gap,
                noise,
                "yes" if gap <= noise else "no",
            )
        )
    worse = beaten(scores)
    steps, seeds = ctx.pick(scenario.steps[0], scenario.steps[1]), ctx.pick(*scenario.seeds)
    outcome_text = {
        "holds": "The recipe is best or within noise of the best, and beats "
        + ", ".join(f"{s.label} ({s.mean:.3f})" for s in worse)
        + " by more than noise.",
        "holds with caveat": (
            f"The recipe is below the best by more than noise, within {CLOSE:g}x noise: "
            "close, but measurably behind."
            if verdict.measured > verdict.threshold
            else "The recipe is within noise of the best, but so is every alternative: on "
            "this task the choice does not matter."
        ),
        "does not hold": f"A recipe member is below the best by more than {CLOSE:g}x noise.",
    }[verdict.outcome]
    return Result(
        verdict=verdict,
        key_number=(
            "recipe "
            + " / ".join(f"{s.mean:.3f}" for s in recipe)
            + f" vs best {best.mean:.3f} ({best.label}); noise {verdict.threshold:.3f}"
        ),
        explanation=(
            f"Claim: {claim}. {scenario.description} {steps} steps, {seeds} paired seeds"
            + (
                f", the first {len(scores)} of {len(scenario.candidates)} candidates (quick mode). "
                if len(scores) < len(scenario.candidates)
                else ". "
            )
            + "Test accuracy (mean over seeds): "
            + ", ".join(f"{s.label} {s.mean:.3f}" for s in scores)
            + f". Best: {best.label}. The recipe is {verdict.measured:.3f} below the best "
            f"(noise {verdict.threshold:.3f}: twice the standard error of the paired "
            f"differences, at least {NOISE_FLOOR:g}). {outcome_text}"
        ),
        tables=(
            Table(
                "Recipe against alternatives (test accuracy over paired seeds)",
                (
                    "candidate",
                    "role",
                    "test accuracy (mean)",
                    "± s.e.",
                    "train accuracy (mean)",
                    "below the best",
                    "noise",
                    "within noise",
                ),
                tuple(rows),
            ),
        ),
        figures=(
            Figure(
                "Test accuracy by candidate (mean over seeds)",
                "candidate",
                "test accuracy",
                {s.label: ([float(i)], [s.mean]) for i, s in enumerate(scores)},
                kind="bar",
            ),
        ),
    )


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
        replace(DEEP, dropout=0.0),
        replace(DEEP, l2=False),
        replace(DEEP, l2=False, dropout=0.0),
        replace(DEEP, init="xavier"),
        replace(DEEP, init="default"),
    ),
    build=_mlp_builder(6, 128, "relu"),
    data=_digits_data,
    optimizer=_sgd,
    steps=(250, 800),
    seeds=(2, 4),
)


@experiment("C1")
def recipe_deep_relu(ctx: Context) -> Result:
    return _result(ctx, C1, "a deep ReLU network should use He init with L2 + Dropout")


SHALLOW = Candidate("xavier", l2=True)
C2 = Scenario(
    description=(
        "A shallow tanh MLP (2 hidden layers of 64) on digits, 300 training images; SGD lr "
        f"{LR:g}, momentum {MOMENTUM:g}, batch {BATCH}, L2 λ = {L2:g}, dropout {P_MLP:g}."
    ),
    norm_name="norm",
    candidates=_alternatives(
        SHALLOW,
        replace(SHALLOW, l2=False),
        replace(SHALLOW, l2=False, dropout=P_MLP),
        replace(SHALLOW, dropout=P_MLP),
        replace(SHALLOW, init="he"),
        replace(SHALLOW, init="default"),
    ),
    build=_mlp_builder(2, 64, "tanh"),
    data=_digits_data,
    optimizer=_sgd,
    steps=(300, 800),
    seeds=(3, 4),
)


@experiment("C2")
def recipe_shallow_tanh(ctx: Context) -> Result:
    return _result(ctx, C2, "a shallow tanh/sigmoid network should use Xavier init with L2")


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
        replace(SMALL, l2=False),
        replace(SMALL, init="default", l2=False),
        replace(SMALL, init="he"),
        replace(SMALL, l2=False, dropout=P_MLP),
    ),
    build=_mlp_builder(1, 32, "relu"),
    data=_digits_data,
    optimizer=_sgd,
    steps=(300, 800),
    seeds=(3, 4),
)


@experiment("C3")
def recipe_small_fc(ctx: Context) -> Result:
    return _result(ctx, C3, "a small fully connected network should use Xavier or default + L2")


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
        replace(CONV, dropout=0.0),
        replace(CONV, norm=False),
        replace(CONV, init="xavier"),
        replace(CONV, dropout=0.0, norm=False),
        replace(CONV, init="default"),
    ),
    build=_cnn,
    data=_digits_data,
    optimizer=_sgd,
    steps=(300, 600),
    seeds=(2, 3),
    quick_candidates=4,
)


@experiment("C4")
def recipe_cnn(ctx: Context) -> Result:
    return _result(ctx, C4, "a CNN image classifier should use He init with Dropout + BatchNorm")


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


def _sentiment_data(ctx: Context, seed: int) -> _Data:
    x, y = sentiment(ctx.generator(300 + seed), N_SEQ, LABEL_NOISE)
    x_test, y_test = sentiment(ctx.generator(400 + seed), N_SEQ_TEST, 0.0)
    batches = ctx.generator(500 + seed)

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
        replace(SEQ, dropout=0.0),
        replace(SEQ, norm=False),
        replace(SEQ, init="default"),
        replace(SEQ, dropout=0.0, norm=False),
        replace(SEQ, init="he"),
    ),
    build=_transformer,
    data=_sentiment_data,
    optimizer=_adam,
    steps=(100, 300),
    seeds=(2, 3),
    quick_candidates=4,
)


@experiment("C5")
def recipe_nlp(ctx: Context) -> Result:
    return _result(
        ctx, C5, "an NLP model (RNN/Transformer) should use Xavier init with LayerNorm + Dropout"
    )
