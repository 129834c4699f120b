"""Every claim the lab answers, as data: the tutorials' 36 claims and 7 published results.

The tutorials' claims are those of the project's ``CLAIMS.md`` (I1–I11 initialization, R1–R14
regularization, S1–S6 numerical stability, C1–C5 the recipes of document 000's table), each with
the documents that make it and what a measurement must show. Published results that the lab
reproduces at CPU scale have ``P-`` IDs and cite their paper. The text is embedded here because
the package cannot read the project's documents at run time.

Example:
    >>> len(TUTORIAL_IDS), len(PUBLISHED_IDS)
    (36, 7)
    >>> get_claim("I5").measurement
    'measured vs predicted variance across n_in and scales'
    >>> sort_ids(["P-HE2015", "C1", "I10", "I2", "R1"])
    ['I2', 'I10', 'R1', 'C1', 'P-HE2015']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CLAIMS",
    "CLAIM_IDS",
    "GROUPS",
    "PUBLISHED_IDS",
    "SEEDS",
    "TUTORIAL_IDS",
    "Claim",
    "Group",
    "get_claim",
    "sort_ids",
]

Group = Literal["I", "R", "S", "C", "P"]

GROUPS: dict[Group, str] = {
    "I": "Initialization",
    "R": "Regularization",
    "S": "Numerical stability",
    "C": "Recipes (document 000's table: scenario → initialization + regularization)",
    "P": "Published results at CPU scale",
}

SEEDS: dict[str, str] = {
    "000": "L2, Dropout, Xavier (regularization and initialization, symmetry breaking)",
    "001": "Parameter initialization and regularization",
    "002": "Parameter initialization explained, with derivations: Xavier, He",
    "003": "The regularization trio: weight decay, Dropout and LayerNorm",
    "004": "Core techniques of deep learning: from regularization to numerical stability",
}


@dataclass(frozen=True)
class Claim:
    """One claim: its stable ID, group, a short title, the claim, who makes it, the test of it.

    Attributes:
        id: the stable ID (``"I5"``, ``"P-HE2015"``).
        group: ``"I"``, ``"R"``, ``"S"``, ``"C"`` or ``"P"`` (published result).
        title: a few words for tables.
        text: the claim as ``CLAIMS.md`` states it (English), or the paper's result.
        seeds: the tutorial documents that make it (keys of :data:`SEEDS`); empty for ``P-``.
        measurement: what a measurement must show for a verdict.
        source: the paper, for a published result; empty for a tutorial claim.
    """

    id: str
    group: Group
    title: str
    text: str
    seeds: tuple[str, ...]
    measurement: str
    source: str = ""


def _c(
    id: str, group: Group, title: str, text: str, seeds: str, measurement: str, source: str = ""
) -> Claim:
    return Claim(id, group, title, text, tuple(seeds.split()), measurement, source)


_RECIPE = (
    "the recipe (this init with this regularization) trains the scenario's model at least as "
    "well as the same model with the init or the regularization swapped out (held-out accuracy "
    "and train/test gap after a fixed budget); CLAIMS.md gives the recipe, the lab this test"
)
_PAPER = "; direction and rough magnitude must match the paper, stating where the scale differs"

CLAIMS: tuple[Claim, ...] = (
    # I. Initialization
    _c(
        "I1", "I", "Constant init keeps units identical (symmetry)",
        "All-zero or constant weights keep every hidden unit of a layer identical through "
        "training: the symmetry problem",
        "002 000",
        "after N SGD steps the rows of a hidden layer's weight matrix are still identical (max "
        "pairwise difference ~0)",
    ),
    _c(
        "I2", "I", "Random init and dropout break the symmetry",
        "Random init breaks the symmetry; dropout breaks it as well",
        "000",
        "rows diverge with random init; with constant init + dropout they diverge too",
    ),
    _c(
        "I3", "I", "Too large or too small init: exploding or vanishing signal",
        "Too-large init explodes activations or saturates tanh/sigmoid; too-small init shrinks "
        "activations toward 0; either way gradients vanish or explode with depth",
        "002 004",
        "per-layer activation and gradient std over depth for small/large scales",
    ),
    _c(
        "I4", "I", "Standard init U(±1/√n) gives variance 1/3 at every depth",
        "\"Standard\" init U(-1/sqrt(n), 1/sqrt(n)) with Var(x)=1 gives hidden pre-activations "
        "of mean 0 and variance 1/3, independent of depth",
        "001",
        "variance at layer 1 and at depth L, tanh network",
    ),
    _c(
        "I5", "I", "Var(z) = n_in·Var(w)·Var(x)",
        "Var(z) = n_in * Var(w) * Var(x) for z = sum_j w_j x_j with independent zero-mean "
        "factors",
        "000 002",
        "measured vs predicted variance across n_in and scales",
    ),
    _c(
        "I6", "I", "Xavier keeps tanh/sigmoid variance across layers",
        "Xavier/Glorot, Var(w) = 2/(n_in+n_out), normal or U(±sqrt(6/(n_in+n_out))), keeps "
        "forward activation variance and backward gradient variance roughly constant across "
        "layers for tanh/sigmoid-like activations",
        "000 001 002 004",
        "per-layer forward and backward std, depth ≥ 30",
    ),
    _c(
        "I7", "I", "He keeps ReLU variance; Xavier + ReLU shrinks",
        "He/Kaiming, Var(w) = 2/n_in, normal or U(±sqrt(6/n_in)), keeps variance constant for "
        "ReLU; ReLU halves the variance so Xavier + ReLU shrinks with depth",
        "000 002 004",
        "per-layer std for He vs Xavier with ReLU at depth ≥ 30; fan_in vs fan_out modes",
    ),
    _c(
        "I8", "I", "Uniform and normal variants have the same variance",
        "The uniform and normal variants of a scheme have the same variance (a = sqrt(3)·sigma)",
        "000 002",
        "empirical variance of both variants",
    ),
    _c(
        "I9", "I", "Orthogonal init keeps RNN gradients flowing",
        "Orthogonal init suits recurrent networks: it keeps gradients flowing through time",
        "004",
        "gradient norm vs time steps for orthogonal vs Xavier/default recurrent weights",
    ),
    _c(
        "I10", "I", "Init chosen by activation (the policy)",
        "Choose init by activation: ReLU family → He, tanh/sigmoid → Xavier, recurrent → "
        "orthogonal; biases 0; BatchNorm weight 1, bias 0; classification output layer Xavier",
        "004",
        "the automatic policy applies exactly this, and training beats a mismatched choice",
    ),
    _c(
        "I11", "I", "Deeper networks are more sensitive to init",
        "Deeper networks are more sensitive to initialization: good init is what lets them "
        "train at all, and train faster",
        "002 004",
        "accuracy / loss after a fixed budget vs depth for good and bad init",
    ),
    # R. Regularization
    _c(
        "R1", "R", "SGD + L2 is exactly weight decay",
        "L2 adds (lambda/2)·‖theta‖² to the loss; with plain SGD it is exactly weight decay "
        "theta ← theta − eta·lambda·theta − eta·grad",
        "001 003 004",
        "trajectories of SGD+L2 and SGD+decay agree to float precision",
    ),
    _c(
        "R2", "R", "With Adam, L2 ≠ decoupled decay (AdamW)",
        "With Adam they differ: L2's effect is rescaled by the adaptive step, decoupled weight "
        "decay (AdamW) is not; AdamW is the right way to decay weights with Adam",
        "001 003",
        "trajectories differ; effective shrinkage per parameter; generalization on a small task",
    ),
    _c(
        "R3", "R", "L1 drives unimportant weights to zero",
        "L1 subtracts a constant eta·lambda·sign(w) each step, shrinks small weights harder "
        "than L2, drives unimportant weights to ~0: sparsity and feature selection",
        "001",
        "fraction of (near-)zero weights; recovery of the informative inputs of a synthetic "
        "task with irrelevant features",
    ),
    _c(
        "R4", "R", "λ must grow with n to keep L2's shrink factor",
        "To keep L2's per-step shrink factor when the number of weights n grows, lambda must "
        "grow with n (for the lambda/n form)",
        "001",
        "shrink factor vs n",
    ),
    _c(
        "R5", "R", "Weight decay reduces overfitting",
        "Weight decay reduces overfitting (train/test gap) by limiting model complexity",
        "000 003 004",
        "gap with and without decay, small data, large model",
    ),
    _c(
        "R6", "R", "No decay on biases and norm parameters",
        "Bias and normalization parameters should get no or less decay",
        "004",
        "parameter groups do this; effect measured",
    ),
    _c(
        "R7", "R", "Inverted and classic dropout agree in expectation",
        "Dropout zeroes units with probability p during training; inverted dropout scales kept "
        "units by 1/(1−p) so no scaling at test; the classic form scales by the keep "
        "probability at test: the two are equivalent in expectation",
        "000 003 004",
        "expected activations match; train/eval behaviour",
    ),
    _c(
        "R8", "R", "Dropout reduces overfitting; acts as an ensemble",
        "Dropout reduces overfitting, most with large models and small data; it acts as an "
        "ensemble of exponentially many sub-networks",
        "000 003 004",
        "gap reduction vs data size; weight-scaled prediction vs Monte-Carlo average of "
        "sub-networks",
    ),
    _c(
        "R9", "R", "Typical dropout rates and placement",
        "Typical rates: 0.5 for hidden layers, 0.1–0.3 for inputs; place dropout after the "
        "activation, mostly after fully connected layers",
        "003 004",
        "a small sweep",
    ),
    _c(
        "R10", "R", "Dropout and BatchNorm are not combined",
        "Dropout and BatchNorm are usually not combined (their functions overlap)",
        "004",
        "variance shift between train and eval when dropout precedes BN",
    ),
    _c(
        "R11", "R", "LayerNorm is per sample, batch independent",
        "LayerNorm normalizes each sample over its features: y = gamma·(x − mu)/sqrt(var + eps) "
        "+ beta; it does not depend on the batch, unlike BatchNorm",
        "003",
        "outputs for batch size 1 vs N; formula vs torch",
    ),
    _c(
        "R12", "R", "LayerNorm allows larger learning rates",
        "LayerNorm stabilizes training, speeds convergence and allows larger learning rates",
        "003",
        "largest stable learning rate and loss curves with/without",
    ),
    _c(
        "R13", "R", "Pre-LN is more stable than Post-LN",
        "Pre-LN (LayerNorm → sublayer → add) is more stable than Post-LN in deep Transformers",
        "003",
        "training of deep Pre-LN vs Post-LN stacks without warmup",
    ),
    _c(
        "R14", "R", "L2 + Dropout beat either alone",
        "L2 + Dropout together often work better than either alone",
        "000",
        "2×2 grid",
    ),
    # S. Numerical stability
    _c(
        "S1", "S", "Gradients vanish or explode with depth",
        "Gradients vanish in deep networks when backprop multiplies many factors below 1 "
        "(sigmoid/tanh), and explode when they are above 1",
        "004",
        "per-layer gradient norms vs depth",
    ),
    _c(
        "S2", "S", "ReLU variants avoid vanishing gradients",
        "ReLU and its variants (LeakyReLU, PReLU) avoid the vanishing of saturating activations",
        "004",
        "same depth, activation swapped",
    ),
    _c(
        "S3", "S", "Gradient clipping tames explosions in RNNs",
        "Gradient clipping by norm (max_norm 0.5–5) bounds the update and tames explosions, "
        "notably in RNNs",
        "004",
        "training an RNN on a long-range task with and without clipping",
    ),
    _c(
        "S4", "S", "BatchNorm keeps activations in range",
        "BatchNorm keeps activations in range and indirectly fixes gradient problems",
        "004",
        "per-layer std with/without BN under a bad init",
    ),
    _c(
        "S5", "S", "Deep networks need residual connections",
        "Residual connections give gradients a direct path; networks deeper than ~20 layers "
        "strongly need them",
        "004",
        "plain vs residual at depths 10–50: trainability",
    ),
    _c(
        "S6", "S", "Per-layer gradient norms catch problems early",
        "Monitor per-layer gradient norms during training to catch these problems early",
        "004",
        "the monitor flags each injected problem",
    ),
    # C. Recipes
    _c(
        "C1", "C", "Deep ReLU network: He + L2 + Dropout",
        "Deep ReLU network → init: He; regularization: L2 + Dropout",
        "000",
        _RECIPE,
    ),
    _c(
        "C2", "C", "Shallow tanh/sigmoid network: Xavier + L2",
        "Shallow tanh/sigmoid network → init: Xavier; regularization: L2",
        "000",
        _RECIPE,
    ),
    _c(
        "C3", "C", "Small fully connected network: Xavier or default + L2",
        "Small fully connected network → init: Xavier or default; regularization: L2",
        "000",
        _RECIPE,
    ),
    _c(
        "C4", "C", "CNN image classification: He + Dropout + BatchNorm",
        "CNN image classification → init: He; regularization: Dropout + BatchNorm",
        "000",
        _RECIPE,
    ),
    _c(
        "C5", "C", "NLP (RNN/Transformer): Xavier + LayerNorm + Dropout",
        "NLP (RNN/Transformer) → init: Xavier or custom; regularization: LayerNorm + Dropout",
        "000",
        _RECIPE,
    ),
    # P. Published results
    _c(
        "P-GLOROT2010", "P", "Glorot & Bengio 2010: normalized init for tanh",
        "In a deep tanh network the standard init U(±1/sqrt(n)) lets activations shrink and "
        "back-propagated gradients change from layer to layer, while the normalized init "
        "Var(w) = 2/(n_in+n_out) keeps per-layer activation and gradient std roughly constant",
        "",
        "per-layer activation and gradient std, standard vs normalized init, tanh" + _PAPER,
        "X. Glorot, Y. Bengio. Understanding the difficulty of training deep feedforward neural "
        "networks. AISTATS 2010.",
    ),
    _c(
        "P-HE2015", "P", "He et al. 2015: 30-layer plain ReLU net",
        "A 30-layer plain ReLU network does not train with Xavier init (it stalls) and trains "
        "with He init",
        "",
        "training loss after a fixed budget, Xavier vs He, 30-layer plain ReLU network" + _PAPER,
        "K. He, X. Zhang, S. Ren, J. Sun. Delving Deep into Rectifiers: Surpassing Human-Level "
        "Performance on ImageNet Classification. ICCV 2015.",
    ),
    _c(
        "P-SAXE2014", "P", "Saxe et al. 2014: orthogonal init in deep linear nets",
        "In deep linear networks, orthogonal init learns in a time independent of depth, while "
        "scaled Gaussian init slows down with depth",
        "",
        "steps to reach a loss threshold vs depth, orthogonal vs scaled Gaussian" + _PAPER,
        "A. M. Saxe, J. L. McClelland, S. Ganguli. Exact solutions to the nonlinear dynamics "
        "of learning in deep linear neural networks. ICLR 2014.",
    ),
    _c(
        "P-LSUV2016", "P", "Mishkin & Matas 2016: LSUV",
        "Layer-sequential unit-variance init (LSUV) brings every layer's output std within "
        "tolerance of 1 and makes early training faster",
        "",
        "every layer's output std after LSUV; loss early in training vs a standard init"
        + _PAPER,
        "D. Mishkin, J. Matas. All you need is a good init. ICLR 2016.",
    ),
    _c(
        "P-FIXUP2019", "P", "Zhang et al. 2019: Fixup / zero-init residual",
        "A very deep residual network without normalization trains with Fixup / zero-initialized "
        "residual branches at a learning rate where the standard init diverges",
        "",
        "training of a very deep residual MLP without normalization at one learning rate, "
        "standard vs Fixup / zero-init residual branches" + _PAPER,
        "H. Zhang, Y. N. Dauphin, T. Ma. Fixup Initialization: Residual Learning Without "
        "Normalization. ICLR 2019.",
    ),
    _c(
        "P-ADAMW2019", "P", "Loshchilov & Hutter 2019: AdamW decouples wd from lr",
        "Over a grid of learning rate × weight decay, decoupled weight decay (AdamW) separates "
        "the optimal weight decay from the learning rate, while Adam + L2 couples them",
        "",
        "held-out loss over a small lr × wd grid for Adam + L2 and AdamW: how the best wd moves "
        "with lr" + _PAPER,
        "I. Loshchilov, F. Hutter. Decoupled Weight Decay Regularization. ICLR 2019.",
    ),
    _c(
        "P-DROPOUT2014", "P", "Srivastava et al. 2014: dropout and max-norm",
        "Dropout, with max-norm regularization, reduces the train/test gap of an MLP",
        "",
        "train/test gap of an MLP with and without dropout and max-norm" + _PAPER,
        "N. Srivastava, G. Hinton, A. Krizhevsky, I. Sutskever, R. Salakhutdinov. Dropout: A "
        "Simple Way to Prevent Neural Networks from Overfitting. JMLR 15, 2014.",
    ),
)  # fmt: skip

CLAIM_IDS: tuple[str, ...] = tuple(c.id for c in CLAIMS)
TUTORIAL_IDS: tuple[str, ...] = tuple(c.id for c in CLAIMS if c.group != "P")
PUBLISHED_IDS: tuple[str, ...] = tuple(c.id for c in CLAIMS if c.group == "P")

_BY_ID = {c.id: c for c in CLAIMS}
_NUMBER = re.compile(r"(\d+)")


def get_claim(claim_id: str) -> Claim:
    """The claim with ID ``claim_id``; ``ValueError`` naming the valid IDs if there is none."""
    try:
        return _BY_ID[claim_id]
    except KeyError:
        raise ValueError(
            f"unknown claim ID {claim_id!r}; valid IDs are {', '.join(CLAIM_IDS)}."
        ) from None


def _natural(claim_id: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in _NUMBER.split(claim_id))


def sort_ids(ids: Iterable[str]) -> list[str]:
    """``ids`` without repeats, in the lab's order: I, R, S, C, then P-, then any other ID.

    Known IDs follow :data:`CLAIMS`; other IDs (experiments not in the list) come last in
    natural order (``X2`` before ``X10``).
    """
    order = {claim_id: i for i, claim_id in enumerate(CLAIM_IDS)}
    return sorted(
        set(ids),
        key=lambda i: (0, order[i], ()) if i in order else (1, 0, _natural(i)),
    )
