"""Trainability of hard configurations under each init method, for a fixed CPU budget.

Five configurations that are known to be hard to start training, each trained for the same
number of seeded steps under every init method, on data embedded here or generated from the
seed (no download):

1. ``tanh-mlp-50``: depth-50 tanh MLP, width 128, on scikit-learn's ``load_digits`` (64
   features standardized with the training split's statistics, 10 classes, 80/20 split), SGD
   lr 0.003, momentum 0.9, batch 64, 600 steps.
2. ``relu-mlp-100``: depth-100 ReLU MLP, width 128, no normalization, on digits; SGD lr 0.001,
   momentum 0.9, batch 64, 600 steps.
3. ``resmlp-200``: 200 residual blocks ``x + W2 relu(W1 x + b1) + b2`` after a ``Linear ->
   ReLU`` stem (width 64, no normalization; ``models.resmlp``), on digits, plain SGD lr 0.05,
   600 steps: the Fixup regime (Zhang et al. 2019 train unnormalized ResNets with this block:
   each branch ends in a weight layer).
4. ``lstm-adding-200``: LSTM, hidden 64, on the adding problem (Hochreiter & Schmidhuber 1997)
   with T = 200: channel 0 holds U(0, 1) values, channel 1 marks one position in each half of
   the sequence; the target is the sum of the two marked values; MSE loss; Adam lr 1e-2,
   batch 64, 1200 steps. Predicting the mean (1.0) gives MSE 1/6 ≈ 0.167.
5. ``postln-hist-12``: 12-layer Post-LN Transformer (d_model 64, 4 heads, d_ff 256, no
   dropout, bidirectional attention) on the histogram task of Weiss et al. 2021 ("Thinking
   Like Transformers"): for each of 16 tokens from a vocabulary of 16, output how many times it
   occurs in the sequence (16 classes); per-token cross-entropy; Adam lr 1e-3 constant, no
   warmup, batch 64, 600 steps. Always answering "once" scores ~0.38. (The budget was 400
   steps; there auto_init ended at the target's edge on seed 0, 0.944 or 0.965 depending on the
   thread count, and reached it on seeds 1 and 2 at steps 250 and 225. At 600 steps it clears
   the target, and the other methods stay on the 0.38 plateau.)

Methods (one learning rate per config, shared by all of them):

- ``default``: the model as built (PyTorch's default init, the LSTM's U(-1/√H, 1/√H), ...).
- ``mismatched``: the scheme for the other activation family on every ``Linear``, recurrent and
  attention weight, biases 0: Xavier uniform on ReLU-family nets (the ReLU MLPs, and the GELU
  Transformer), He normal (``kaiming_normal_``, ReLU gain, torch's fans) on tanh nets (the tanh
  MLP and the LSTM, whose gates are sigmoid/tanh). Embeddings and LayerNorms keep their init.
- ``auto_init``: ``stabletrain.auto_init(model, example)``, with the option that applies to
  the architecture: ``residual="fixup"`` for ``resmlp-200`` (residual branches without
  normalization), ``residual="zero"`` for ``postln-hist-12`` (every block is the identity at
  init, so the Post-LN stack starts as well conditioned as a Pre-LN one; Xiong et al. 2020
  trace Post-LN's need for warmup to its large gradients at init), ``looks_linear=True`` for
  ``relu-mlp-100`` (a plain ReLU chain starts as an exact linear isometry; Balduzzi et al.
  2017).
- ``lsuv_``: ``stabletrain.lsuv_(model, example)`` (orthogonal, then unit output std).
- ``lsuv (PyPI)``: ``lsuv.lsuv_with_singlebatch`` from the ``lsuv`` package, when importable:
  from the project's environment, else from a scratch venv (``--lsuv-venv``, by default
  ``/tmp/lsuvenv``, created with ``python -m venv /tmp/lsuvenv && /tmp/lsuvenv/bin/pip install
  torch==2.13.0 lsuv``; only the ``lsuv`` package is loaded from it, never its torch).
  Otherwise its rows say "unavailable" and why.

The data-dependent methods see the same 64-row example batch from the training distribution.

How the learning rates were chosen. Config 5 uses the issue's setting (Adam 1e-3 without
warmup). For the others a coarse grid was run once on seed 0 with ``default``,
``mismatched``, ``auto_init`` and ``lsuv_``, and the value kept is the one where the most runs
reach the target, ties broken by the mean final metric (not any one method's best value).
Measured (600 steps; runs reaching the target / mean final accuracy): tanh-mlp-50 at 0.01
0/4 (all ≈ 0.1-0.2), 0.003 2/4, 0.001 0/4; relu-mlp-100 at 0.01 0/4 (≈ 0.1), 0.003 0/4 (0.19),
0.001 0/4 (0.29); resmlp-200 at 0.1 0/4 (all diverge; so does Fixup's own recipe, He then
``init_residual_(..., "fixup")``, at step 21, while it trains 100 blocks at 0.1 as in the lab's
P-FIXUP2019), 0.05 1/4 (auto_init 0.961, the rest diverge), 0.01 1/4 (auto_init 0.942).
lstm-adding-200 (1500 steps, default and auto_init only): at Adam 1e-3 both stay on the 0.167
plateau; at 1e-2 auto_init reaches the target at step 1050, default does not. Task 5 replaces
the reversal task first tried: a 12-layer *Pre-LN* Transformer (the known remedy, default init)
stayed at 0.19 token accuracy after 800 steps there, so the budget could not tell inits apart;
on the histogram task the Pre-LN control reaches 0.95 at step 240 of 400 (not in the table).

Measured per (config, method): the final training loss (mean minibatch loss of the last 20
steps), the final metric on a held-out set (digits: test accuracy on the 20% split; adding:
MSE on 512 fresh sequences; histogram: token accuracy on 512 fresh sequences), and the first
evaluated step at which the metric reached the config's target (evaluated every
``eval_every`` steps: 25, 50 for the LSTM; None if never). Targets: accuracy >= 0.90 on digits
(a shallow MLP gets ~0.97); MSE < 0.05 on adding (below a third of the trivial 0.167, which
requires using the markers); token accuracy >= 0.95 on the histogram. A run whose loss becomes
non-finite stops there and is marked diverged. No gradient clipping, no warmup, no schedules:
the init is the only thing that differs between methods.

Then two timings (medians of alternating runs, ``time.perf_counter``):

- ``auto_init`` against the model's own default init, on each config's model with its 64-row
  example batch: rebuilding the model with its builder (``rebuild``), and calling
  ``reset_parameters()`` on every module that has one (``reset``). ``auto_init`` includes a
  traced forward pass and a calibration pass. Target: ``auto_init / rebuild <= 1.2``. Since
  an init that observes the model must run it, the table also times one plain no-grad forward
  pass (``forward``) and reports ``auto_init / (rebuild + passes × forward)`` (``/floor``):
  where one forward pass costs more than a fifth of a rebuild, 1.2× is out of reach for any
  data-dependent init, and ``/floor`` is the overhead that is auto_init's own.
- ``lsuv_`` against the ``lsuv`` package on an MLP (depth 20, width 128, ReLU) and a small
  residual CNN (conv stem, 4 residual blocks of two 3x3 convs, 16 channels, 16x16 inputs), each
  on a 64-row batch: wall time, forward passes (counted by wrapping ``model.forward``), and the
  largest ``|output std - 1|`` over the fitted layers afterwards (measured here with hooks).

Denormal floats are flushed to zero (``torch.set_flush_denormal``): a 100-layer ReLU net with
vanishing activations otherwise runs ~50x slower on CPU; it changes no result that matters.

Run ``python benchmarks/trainability.py`` (about 10 minutes on 2 cores), ``--quick`` for a
smoke run (smaller models, 30 steps; under a minute), ``--json PATH`` to also write every row,
``--seed`` to change the seed of the models, data and inits.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import json
import math
import statistics
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

import stabletrain as st
from _timing import alternating_medians, count_forward
from stabletrain import models
from stabletrain.models.tasks import adding_problem

Tensor = torch.Tensor
TaskKind = Literal["classify", "sequence", "regress"]
Family = Literal["relu", "tanh"]
ResidualMode = Literal["zero", "fixup", "scaled"]

EXAMPLE_ROWS = 64  # rows of the example batch given to auto_init / lsuv_ / lsuv
LOSS_WINDOW = 20  # final loss: mean minibatch loss over the last LOSS_WINDOW steps
EVAL_ROWS = 512  # fresh sequences in the held-out set of the synthetic tasks
TARGET_RATIO = 1.2  # auto_init time / rebuild time
DEFAULT_LSUV_SITE = Path("/tmp/lsuvenv")
METHODS = ("default", "mismatched", "auto_init", "lsuv_", "lsuv (PyPI)")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Task:
    """How a config draws training batches, scores a model and what counts as trained."""

    kind: TaskKind
    sample: Callable[[torch.Generator, int], tuple[Tensor, Tensor]]  # (gen, rows) -> (x, y)
    eval_x: Tensor
    eval_y: Tensor
    metric: str  # "accuracy", "token accuracy" or "mse"
    target: float

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy (per token for sequences) or MSE."""
        if self.kind == "regress":
            return F.mse_loss(out, y)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def score(self, out: Tensor, y: Tensor) -> float:
        """Accuracy (per token for sequences) or MSE."""
        if self.kind == "regress":
            return float(F.mse_loss(out, y))
        return float((out.argmax(-1) == y).float().mean())

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the target (accuracy >= target, MSE < target)."""
        if self.kind == "regress":
            return value < self.target
        return value >= self.target


def digits_task(seed: int) -> Task:
    """scikit-learn's 8x8 digits: 80/20 split by a seeded permutation, standardized features."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.data, dtype=torch.float32)  # (1797, 64)
    y = torch.as_tensor(data.target, dtype=torch.long)  # (1797,)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.8 * len(x))
    train, test = order[:n_train], order[n_train:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / torch.where(std > 0, std, torch.ones_like(std))  # constant pixels stay 0
    x_train, y_train = x[train], y[train]

    def sample(gen: torch.Generator, rows: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(0, n_train, (rows,), generator=gen)
        return x_train[idx], y_train[idx]

    return Task("classify", sample, x[test], y[test], "accuracy", 0.90)


def adding_task(seed: int, length: int) -> Task:
    """The adding problem with sequences of ``length``; target MSE < 0.05."""
    eval_x, eval_y = adding_problem(torch.Generator().manual_seed(seed + 10), EVAL_ROWS, length)
    return Task(
        "regress",
        lambda gen, rows: adding_problem(gen, rows, length),
        eval_x,
        eval_y,
        "mse",
        0.05,
    )


def histogram_batch(
    gen: torch.Generator, rows: int, length: int, vocab: int
) -> tuple[Tensor, Tensor]:
    """Random tokens ``(rows, length)`` and, per token, its count in its sequence minus 1."""
    x = torch.randint(0, vocab, (rows, length), generator=gen)  # (B, T)
    y = (x.unsqueeze(1) == x.unsqueeze(2)).sum(-1) - 1  # (B, T): 0 means "occurs once"
    return x, y


def histogram_task(seed: int, length: int, vocab: int) -> Task:
    """Count each token's occurrences (classes ``0..length-1``); target token accuracy >= 0.95."""
    eval_x, eval_y = histogram_batch(
        torch.Generator().manual_seed(seed + 20), EVAL_ROWS, length, vocab
    )
    return Task(
        "sequence",
        lambda gen, rows: histogram_batch(gen, rows, length, vocab),
        eval_x,
        eval_y,
        "token accuracy",
        0.95,
    )


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class Config:
    """One hard configuration: a model builder, its task and one optimizer for every method."""

    name: str
    build: Callable[[], nn.Module]
    task: Task
    family: Family  # activation family: decides the mismatched scheme
    residual: ResidualMode | None  # auto_init's residual mode
    looks_linear: bool  # auto_init's looks-linear option for plain ReLU chains
    optimizer: Literal["sgd", "adam"]
    lr: float
    momentum: float
    steps: int
    batch_size: int
    eval_every: int

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """SGD (with ``momentum``) or Adam at ``lr``, constant."""
        if self.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum)
        return torch.optim.Adam(model.parameters(), lr=self.lr)


@dataclass(frozen=True)
class Sizes:
    """Model sizes and step counts: the full run, or the smoke run of ``--quick``."""

    tanh_depth: int
    relu_depth: int
    res_blocks: int
    adding_length: int
    tf_layers: int
    mlp_steps: int
    res_steps: int
    lstm_steps: int
    tf_steps: int
    eval_every: int


FULL = Sizes(50, 100, 200, 200, 12, 600, 600, 1200, 600, 25)
QUICK = Sizes(10, 20, 20, 50, 4, 30, 30, 30, 30, 10)


def configs(sizes: Sizes, seed: int) -> list[Config]:
    """The five configurations of the module docstring, at ``sizes``."""
    digits = digits_task(seed)
    s = sizes
    return [
        Config(
            name=f"tanh-mlp-{s.tanh_depth}",
            build=lambda: models.mlp(64, 10, s.tanh_depth, 128, activation="tanh"),
            task=digits,
            family="tanh",
            residual=None,
            looks_linear=False,
            optimizer="sgd",
            lr=0.003,
            momentum=0.9,
            steps=s.mlp_steps,
            batch_size=64,
            eval_every=s.eval_every,
        ),
        Config(
            name=f"relu-mlp-{s.relu_depth}",
            build=lambda: models.mlp(64, 10, s.relu_depth, 128, activation="relu"),
            task=digits,
            family="relu",
            residual=None,
            looks_linear=True,
            optimizer="sgd",
            lr=0.001,
            momentum=0.9,
            steps=s.mlp_steps,
            batch_size=64,
            eval_every=s.eval_every,
        ),
        Config(
            name=f"resmlp-{s.res_blocks}",
            build=lambda: models.resmlp(64, 10, s.res_blocks, 64),
            task=digits,
            family="relu",
            residual="fixup",
            looks_linear=False,
            optimizer="sgd",
            lr=0.05,
            momentum=0.0,
            steps=s.res_steps,
            batch_size=64,
            eval_every=s.eval_every,
        ),
        Config(
            name=f"lstm-adding-{s.adding_length}",
            build=lambda: models.rnn("lstm", 2, 64, num_layers=1, out_features=1),
            task=adding_task(seed, s.adding_length),
            family="tanh",
            residual=None,
            looks_linear=False,
            optimizer="adam",
            lr=1e-2,
            momentum=0.0,
            steps=s.lstm_steps,
            batch_size=64,
            eval_every=2 * s.eval_every,
        ),
        Config(
            name=f"postln-hist-{s.tf_layers}",
            build=lambda: models.transformer(
                d_model=64,
                n_heads=4,
                n_layers=s.tf_layers,
                norm_position="post",
                vocab_size=16,
                out_features=16,
                causal=False,
            ),
            task=histogram_task(seed, 16, 16),
            family="relu",  # GELU: a ReLU-like activation, so the mismatch is Xavier
            residual="zero",
            looks_linear=False,
            optimizer="adam",
            lr=1e-3,
            momentum=0.0,
            steps=s.tf_steps,
            batch_size=64,
            eval_every=s.eval_every,
        ),
    ]


# --------------------------------------------------------------------------- init methods


def mismatched_(model: nn.Module, family: Family, generator: torch.Generator) -> None:
    """Xavier uniform on ReLU-family nets, He normal on tanh nets; biases 0.

    Applies to ``Linear`` weights (attention's ``out_proj`` included), recurrent weights and
    attention's ``in_proj_weight``, with ``torch.nn.init``'s fans (a stacked LSTM weight
    ``(4H, in)`` has fan_in ``in``).
    """

    def weight_(w: Tensor) -> None:
        if family == "relu":
            nn.init.xavier_uniform_(w, generator=generator)
        else:
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)

    for module in model.modules():
        if not isinstance(module, nn.Linear | nn.RNNBase | nn.MultiheadAttention):
            continue
        for name, p in module.named_parameters(recurse=False):
            if "bias" in name:
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                weight_(p)


@dataclass
class LsuvPackage:
    """The ``lsuv`` PyPI package's single-batch entry point, or why it is unavailable."""

    fn: Callable[..., Any] | None
    source: str  # where it was imported from, or why it could not be

    def __call__(self, model: nn.Module, batch: Tensor) -> None:
        if self.fn is None:
            raise RuntimeError(f"lsuv is unavailable: {self.source}")
        self.fn(model, batch, verbose=False)


def _import_from(site: Path) -> ModuleType:
    """Import the ``lsuv`` package from a scratch venv's site-packages without adding that venv
    to ``sys.path`` (its torch must not shadow the project's)."""
    init = site / "lsuv" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "lsuv", init, submodule_search_locations=[str(init.parent)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no loadable lsuv package at {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["lsuv"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["lsuv"]
        raise
    return module


def load_lsuv(venv: Path) -> LsuvPackage:
    """``lsuv.lsuv_with_singlebatch`` from this environment, else from ``venv``'s site-packages."""
    reasons = []
    try:
        module = importlib.import_module("lsuv")
        return LsuvPackage(module.lsuv_with_singlebatch, f"lsuv from {module.__file__}")
    except Exception as err:  # ImportError, or the package failing at import time
        reasons.append(f"not importable in this environment ({type(err).__name__}: {err})")
    sites = sorted(venv.glob("lib/python*/site-packages"))
    if not sites:
        reasons.append(f"no scratch venv at {venv} (see the module docstring to create one)")
    for site in sites:
        if not (site / "lsuv" / "__init__.py").exists():
            reasons.append(f"not installed in {site}")
            continue
        try:
            module = _import_from(site)
            return LsuvPackage(module.lsuv_with_singlebatch, f"lsuv from {module.__file__}")
        except Exception as err:
            reasons.append(f"fails to import from {site} ({type(err).__name__}: {err})")
    return LsuvPackage(None, "; ".join(reasons))


def apply_method(
    method: str, model: nn.Module, config: Config, example: Tensor, seed: int, lsuv: LsuvPackage
) -> str:
    """Initialize ``model`` in place by ``method``; returns a short note for the table."""
    generator = torch.Generator().manual_seed(seed + 3)
    torch.manual_seed(seed + 3)  # the lsuv package draws from the global generator
    if method == "default":
        return ""
    if method == "mismatched":
        mismatched_(model, config.family, generator)
        return "xavier_uniform" if config.family == "relu" else "he_normal"
    if method == "auto_init":
        report = st.auto_init(
            model,
            example,
            residual=config.residual,
            looks_linear=config.looks_linear,
            generator=generator,
        )
        return (
            f"{report.forward_passes} fwd"
            + (f", {config.residual}" if config.residual else "")
            + (", looks-linear" if config.looks_linear else "")
        )
    if method == "lsuv_":
        report = st.lsuv_(model, example, generator=generator)
        missed = [n for n in report.notes if n.startswith("not within")]
        return f"{report.forward_passes} fwd" + (", some layers off tol" if missed else "")
    if method == "lsuv (PyPI)":
        with count_forward(model) as counter:
            lsuv(model, example)
        return f"{counter.calls} fwd"
    raise ValueError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}.")


# --------------------------------------------------------------------------- training


@dataclass
class Row:
    """One (config, method) training run."""

    config: str
    method: str
    status: str  # "ok", "diverged at step N", "unavailable: ...", "init error: ..."
    final_loss: float | None
    metric: str
    final_metric: float | None
    target: float
    steps_to_target: int | None
    steps: int
    init_s: float | None
    train_s: float | None
    note: str = ""
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, metric)

    @property
    def reached(self) -> bool:
        return self.steps_to_target is not None


@torch.no_grad()
def evaluate(model: nn.Module, task: Task) -> float:
    """The task's metric on its held-out set."""
    return task.score(model(task.eval_x), task.eval_y)


def train(
    model: nn.Module, config: Config, seed: int
) -> tuple[float, float, int | None, str, list[tuple[int, float]]]:
    """Train ``config.steps`` steps; (final loss, final metric, steps to target, status, history).

    The data order comes from a generator seeded by ``seed``, so every method sees the same
    batches.
    """
    task = config.task
    torch.manual_seed(seed + 4)
    gen = torch.Generator().manual_seed(seed + 1)
    optimizer = config.make_optimizer(model)
    losses: list[float] = []
    history: list[tuple[int, float]] = []
    steps_to_target: int | None = None
    status = "ok"
    model.train()
    for step in range(1, config.steps + 1):
        x, y = task.sample(gen, config.batch_size)
        loss = task.loss(model(x), y)
        value = loss.item()
        if not math.isfinite(value):
            status = f"diverged at step {step}"
            losses.append(value)
            break
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        losses.append(value)
        if step % config.eval_every == 0 or step == config.steps:
            metric = evaluate(model, task)
            history.append((step, metric))
            if steps_to_target is None and task.reached(metric):
                steps_to_target = step
    final_metric = evaluate(model, task)
    tail = losses[-LOSS_WINDOW:]
    final_loss = tail[-1] if status != "ok" else statistics.fmean(tail)
    return final_loss, final_metric, steps_to_target, status, history


def run_one(config: Config, method: str, example: Tensor, seed: int, lsuv: LsuvPackage) -> Row:
    """Build the model (same default init for every method), init it by ``method``, train it."""
    task = config.task
    blank = Row(
        config.name,
        method,
        "",
        None,
        task.metric,
        None,
        task.target,
        None,
        config.steps,
        None,
        None,
    )
    if method == "lsuv (PyPI)" and lsuv.fn is None:
        blank.status = "unavailable"
        blank.note = lsuv.source
        return blank
    torch.manual_seed(seed)
    model = config.build()
    start = time.perf_counter()
    try:
        note = apply_method(method, model, config, example, seed, lsuv)
    except Exception as err:
        print(f"\n{method} raised on {config.name}:", file=sys.stderr)
        traceback.print_exc()
        blank.status = f"init error: {type(err).__name__}: {err}"
        return blank
    init_s = time.perf_counter() - start
    start = time.perf_counter()
    loss, metric, steps_to_target, status, history = train(model, config, seed)
    train_s = time.perf_counter() - start
    return Row(
        config.name,
        method,
        status,
        loss,
        task.metric,
        metric,
        task.target,
        steps_to_target,
        config.steps,
        init_s,
        train_s,
        note,
        history,
    )


def example_batch(config: Config, seed: int) -> Tensor:
    """The 64-row batch from the training distribution that every data-dependent init sees."""
    x, _ = config.task.sample(torch.Generator().manual_seed(seed + 2), EXAMPLE_ROWS)
    return x


# --------------------------------------------------------------------------- timings


@dataclass(frozen=True)
class InitCostRow:
    """auto_init against the model's own default init, on one config's model."""

    config: str
    rebuild_ms: float
    reset_ms: float
    auto_init_ms: float
    forward_passes: int
    ratio_rebuild: float  # auto_init / rebuild
    ratio_reset: float  # auto_init / reset
    forward_ms: float = float("nan")  # one plain no-grad forward pass on the example
    ratio_floor: float = float("nan")  # auto_init / (rebuild + forward_passes × forward)


def _forward(model: nn.Module, example: Any) -> None:
    with torch.no_grad():
        st.graph.call_model(model, example)


def reset_all(model: nn.Module) -> None:
    """Call ``reset_parameters()`` on every module that has one: the default init in place."""
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def time_auto_init(configs_: Sequence[Config], seed: int, repeats: int) -> list[InitCostRow]:
    """Median wall time of auto_init, of rebuilding and of resetting each config's model."""
    rows = []
    for config in configs_:
        torch.manual_seed(seed)
        model = config.build()
        example = example_batch(config, seed)
        auto = partial(
            st.auto_init, model, example, residual=config.residual, looks_linear=config.looks_linear
        )
        passes = auto().forward_passes
        ms = {
            name: s * 1e3
            for name, s in alternating_medians(
                {
                    "rebuild": config.build,
                    "reset": partial(reset_all, model),
                    "auto_init": auto,
                    "forward": partial(_forward, model, example),
                },
                repeats,
            ).items()
        }
        row = InitCostRow(
            config.name,
            ms["rebuild"],
            ms["reset"],
            ms["auto_init"],
            passes,
            ms["auto_init"] / ms["rebuild"],
            ms["auto_init"] / ms["reset"],
            ms["forward"],
            ms["auto_init"] / (ms["rebuild"] + passes * ms["forward"]),
        )
        print(
            f"  {row.config:<20} auto_init / rebuild {row.ratio_rebuild:6.2f}x, "
            f"/ (rebuild + {passes} forward) {row.ratio_floor:5.2f}x",
            flush=True,
        )
        rows.append(row)
    return rows


@dataclass(frozen=True)
class LsuvRow:
    """One LSUV implementation on one model."""

    model: str
    implementation: str
    ms: float | None
    forward_passes: int | None
    worst_std_error: float | None  # max over fitted layers of |output std - 1| afterwards
    note: str = ""


def residual_cnn(channels: int = 16, blocks: int = 4) -> nn.Sequential:
    """Conv stem, ``blocks`` residual blocks ``x + conv(relu(conv(x)))`` each followed by ReLU,
    global average pooling and a Linear head (10 classes); inputs ``(B, 3, H, W)``."""

    def block() -> nn.Module:
        branch = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(channels, channels, 3, padding=1)),
                    ("act", nn.ReLU()),
                    ("conv2", nn.Conv2d(channels, channels, 3, padding=1)),
                ]
            )
        )
        return nn.Sequential(OrderedDict([("res", models.Residual(branch)), ("act", nn.ReLU())]))

    layers: list[tuple[str, nn.Module]] = [
        ("stem", nn.Conv2d(3, channels, 3, padding=1)),
        ("act", nn.ReLU()),
    ]
    layers += [(f"block{i}", block()) for i in range(1, blocks + 1)]
    layers += [
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("head", nn.Linear(channels, 10)),
    ]
    return nn.Sequential(OrderedDict(layers))


@torch.no_grad()
def worst_std_error(model: nn.Module, batch: Tensor) -> float:
    """Max over Linear/Conv layers of ``|std(output) - 1|`` on ``batch`` (hooks removed after)."""
    stds: list[float] = []

    def hook(module: nn.Module, args: Any, output: Tensor) -> None:
        stds.append(float(output.std()))

    with contextlib.ExitStack() as stack:
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                stack.callback(module.register_forward_hook(hook).remove)
        model(batch)
    return max(abs(s - 1.0) for s in stds)


def time_lsuv(seed: int, repeats: int, lsuv: LsuvPackage) -> list[LsuvRow]:
    """``lsuv_`` against the lsuv package on an MLP and a small residual CNN."""
    gen = torch.Generator().manual_seed(seed + 5)
    cases: dict[str, tuple[Callable[[], nn.Module], Tensor]] = {
        "mlp-20 (ReLU, 128)": (
            lambda: models.mlp(64, 10, 20, 128, activation="relu"),
            torch.randn(EXAMPLE_ROWS, 64, generator=gen),
        ),
        "residual CNN (4 blocks)": (
            residual_cnn,
            torch.randn(EXAMPLE_ROWS, 3, 16, 16, generator=gen),
        ),
    }
    rows = []
    for name, (build, batch) in cases.items():
        torch.manual_seed(seed)
        base = build()
        impls: dict[str, Callable[[nn.Module, Tensor], object]] = {"stabletrain.lsuv_": st.lsuv_}
        if lsuv.fn is not None:
            impls["lsuv (PyPI)"] = lsuv
        # a fresh copy of the same model for every call, made outside the timed region
        copies: dict[str, list[nn.Module]] = {
            impl: [copy.deepcopy(base) for _ in range(repeats + 1)] for impl in impls
        }
        times = alternating_medians(
            {impl: partial(fn_on_next, fn, copies[impl], batch) for impl, fn in impls.items()},
            repeats,
        )
        for impl, fn in impls.items():
            model = copy.deepcopy(base)
            with count_forward(model) as counter:
                fn(model, batch)
            error = worst_std_error(model, batch)
            rows.append(LsuvRow(name, impl, times[impl] * 1e3, counter.calls, error))
            print(f"  {name:<24} {impl:<18} {times[impl] * 1e3:8.1f} ms", flush=True)
        if lsuv.fn is None:
            rows.append(LsuvRow(name, "lsuv (PyPI)", None, None, None, "unavailable"))
    return rows


def fn_on_next(
    fn: Callable[[nn.Module, Tensor], object], pool: list[nn.Module], batch: Tensor
) -> None:
    """Apply ``fn`` to the next unused model of ``pool`` (each timed call gets a fresh model)."""
    fn(pool.pop(), batch)


# --------------------------------------------------------------------------- report


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_training(rows: Sequence[Row]) -> str:
    """The training rows as a table, then one summary line per method."""
    header = (
        f"{'config':<20} {'method':<12} {'final loss':>10} {'metric':<15} {'final':>7} "
        f"{'target':>9} {'steps to target':>15} {'reached':>7}  {'init s':>6} {'train s':>7}  note"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        op = "<" if r.metric == "mse" else ">="
        note = "; ".join(x for x in (r.status if r.status != "ok" else "", r.note) if x)
        lines.append(
            f"{r.config:<20} {r.method:<12} {_num(r.final_loss, '10.4f')} {r.metric:<15} "
            f"{_num(r.final_metric, '7.4f')} {op + format(r.target, 'g'):>9} "
            f"{_num(r.steps_to_target, '15d'):>15} {'yes' if r.reached else 'no':>7}  "
            f"{_num(r.init_s, '6.2f'):>6} {_num(r.train_s, '7.1f'):>7}  {note}"
        )
    lines.append("-" * len(header))
    n_configs = len(dict.fromkeys(r.config for r in rows))
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        if all(r.status == "unavailable" for r in mine):
            lines.append(f"{method:<12} unavailable: {mine[0].note}")
            continue
        reached = [r.config for r in mine if r.reached]
        missed = [r.config for r in mine if not r.reached]
        lines.append(
            f"{method:<12} reached the target on {len(reached)}/{n_configs} configs"
            + (f" (missed: {', '.join(missed)})" if missed else "")
        )
    return "\n".join(lines)


def format_init_cost(rows: Sequence[InitCostRow]) -> str:
    """auto_init against rebuilding / resetting the model."""
    header = (
        f"{'config':<20} {'rebuild ms':>10} {'reset ms':>9} {'forward ms':>10} "
        f"{'auto_init ms':>12} {'fwd':>4} {'/rebuild':>9} {'/reset':>8} {'/floor':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        flag = f"  > {TARGET_RATIO}x" if r.ratio_rebuild > TARGET_RATIO else ""
        lines.append(
            f"{r.config:<20} {r.rebuild_ms:>10.2f} {r.reset_ms:>9.2f} {r.forward_ms:>10.2f} "
            f"{r.auto_init_ms:>12.2f} {r.forward_passes:>4} {r.ratio_rebuild:>8.2f}x "
            f"{r.ratio_reset:>7.2f}x {r.ratio_floor:>6.2f}x{flag}"
        )
    lines.append("-" * len(header))
    geo = statistics.geometric_mean(r.ratio_rebuild for r in rows)
    lines.append(
        f"geometric mean auto_init / rebuild: {geo:.2f}x (target <= {TARGET_RATIO}x); "
        f"auto_init includes a traced forward pass and calibration on {EXAMPLE_ROWS} rows;\n"
        "floor = rebuild + fwd × one forward pass: the least any init that observes the model "
        f"can cost (geometric mean auto_init / floor "
        f"{statistics.geometric_mean(r.ratio_floor for r in rows):.2f}x)"
    )
    return "\n".join(lines)


def format_lsuv(rows: Sequence[LsuvRow]) -> str:
    """lsuv_ against the lsuv package."""
    header = (
        f"{'model':<24} {'implementation':<18} {'ms':>9} {'fwd passes':>10} {'max |std-1|':>11}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:<24} {r.implementation:<18} {_num(r.ms, '9.1f')} "
            f"{_num(r.forward_passes, '10d')} {_num(r.worst_std_error, '11.4f')}"
            + (f"  {r.note}" if r.note else "")
        )
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (NaN and inf as JSON's extension tokens) to ``path``."""
    path.write_text(json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the arguments, run every (config, method), time the inits, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small models, 30 steps: smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every row here")
    parser.add_argument("--seed", type=int, default=0, help="seed of models, data and inits")
    parser.add_argument(
        "--lsuv-venv",
        type=Path,
        default=DEFAULT_LSUV_SITE,
        metavar="DIR",
        help="scratch venv to import the lsuv package from if this environment lacks it",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        metavar="NAME",
        help="run only these config families, e.g. tanh-mlp resmlp (default: all)",
    )
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    total_start = time.perf_counter()
    sizes = QUICK if args.quick else FULL
    repeats = 2 if args.quick else 5
    lsuv = load_lsuv(args.lsuv_venv)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, seed {args.seed}"
        f"{', quick' if args.quick else ''}; lsuv package: {lsuv.source}",
        flush=True,
    )
    all_configs = configs(sizes, args.seed)
    if args.configs:  # by family, so one name works for --quick and full sizes
        families = {c.name.rsplit("-", 1)[0] for c in all_configs}
        unknown = sorted(set(args.configs) - families)
        if unknown:
            parser.error(f"unknown config(s) {', '.join(unknown)}; valid: {', '.join(families)}")
        all_configs = [c for c in all_configs if c.name.rsplit("-", 1)[0] in args.configs]
    rows: list[Row] = []
    for config in all_configs:
        example = example_batch(config, args.seed)
        for method in METHODS:
            row = run_one(config, method, example, args.seed, lsuv)
            rows.append(row)
            print(
                f"  {row.config:<20} {row.method:<12} {_num(row.final_metric, '.4f'):>7} "
                f"target step {_num(row.steps_to_target, 'd'):>5}  {row.status}",
                flush=True,
            )
    print("\ntiming auto_init against the default init", flush=True)
    cost_rows = time_auto_init(all_configs, args.seed, repeats)
    print("timing lsuv_ against the lsuv package", flush=True)
    lsuv_rows = time_lsuv(args.seed, repeats, lsuv)
    total_s = time.perf_counter() - total_start

    print("\nTrainability: same steps, seed and learning rate for every method")
    print(format_training(rows))
    print("\nInit cost: auto_init against the model's own default init (medians)")
    print(format_init_cost(cost_rows))
    print("\nLSUV: stabletrain.lsuv_ against the lsuv package (medians)")
    print(format_lsuv(lsuv_rows))
    print(f"\ntotal {total_s:.0f} s")
    if args.json is not None:
        write_json(
            args.json,
            {
                "torch_version": torch.__version__,
                "num_threads": torch.get_num_threads(),
                "seed": args.seed,
                "quick": args.quick,
                "sizes": asdict(sizes),
                "lsuv_package": lsuv.source,
                "total_s": total_s,
                "training": [{**asdict(r), "reached": r.reached} for r in rows],
                "init_cost": [asdict(r) for r in cost_rows],
                "lsuv": [asdict(r) for r in lsuv_rows],
            },
        )
        print(f"rows written to {args.json}")


if __name__ == "__main__":
    main()
