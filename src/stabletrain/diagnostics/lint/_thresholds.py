"""When the lint rules fire: one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from stabletrain._checks import check_positive_int, check_real

__all__ = ["LintThresholds"]


@dataclass(frozen=True)
class LintThresholds:
    """The thresholds of :func:`stabletrain.diagnostics.lint`. Every field is checked once.

    Attributes:
        plain_depth: ``deep_plain_stack`` fires on a chain of more than this many weight layers
            (in execution order) with no normalization and outside every residual branch. The
            tutorials' claim S5: networks deeper than about 20 layers strongly need residual
            connections.
        saturating_depth: ``deep_saturating`` fires on a chain of more than this many weight
            layers, each followed by tanh/sigmoid (or another saturating activation) and no
            normalization: each layer multiplies the gradient by ``E[f'(z)²] < 1`` (claim S1).
        post_ln_sublayers: ``deep_post_ln`` fires when at least this many residual additions
            are consumed by a LayerNorm alone (Post-LN). A Transformer block has two sublayers
            (attention, MLP), so the default 12 is a stack of six blocks (claim R13; Xiong et
            al. 2020, "On Layer Normalization in the Transformer Architecture").
        init_ratio_low, init_ratio_high: ``init_mismatch`` fires when a weight's std divided by
            the std its following activation asks for (He: ``gain/√fan_in``; Xavier:
            ``√(2/(fan_in + fan_out))``) lies outside ``[low, high]``, a band around 1.
            PyTorch's default ``U(±1/√fan_in)`` before a ReLU gives ``1/√6 ≈ 0.41``: the
            signal shrinks by that factor per layer.
        forget_bias_min: ``lstm_forget_gate_bias`` fires when an LSTM layer's forget-gate bias
            (``b_ih + b_hh`` over the forget block) averages below this; Jozefowicz et al. 2015
            ("An Empirical Exploration of Recurrent Network Architectures") set it to 1.

    Example:
        >>> LintThresholds(plain_depth=30).plain_depth
        30
        >>> LintThresholds(init_ratio_low=2.0, init_ratio_high=1.0)
        Traceback (most recent call last):
        ...
        ValueError: LintThresholds: init_ratio_low (2.0) must be below init_ratio_high (1.0).
    """

    plain_depth: int = 20
    saturating_depth: int = 10
    post_ln_sublayers: int = 12
    init_ratio_low: float = 0.5
    init_ratio_high: float = 2.0
    forget_bias_min: float = 0.5

    def __post_init__(self) -> None:
        where = "LintThresholds"
        for name in ("plain_depth", "saturating_depth", "post_ln_sublayers"):
            check_positive_int(name, getattr(self, name), where=where)
        for name in ("init_ratio_low", "init_ratio_high"):
            check_real(name, getattr(self, name), where=where, positive=True)
        check_real("forget_bias_min", self.forget_bias_min, where=where)
        if self.init_ratio_low >= self.init_ratio_high:
            raise ValueError(
                f"{where}: init_ratio_low ({self.init_ratio_low}) must be below init_ratio_high "
                f"({self.init_ratio_high})."
            )
        if not self.init_ratio_low <= 1.0 <= self.init_ratio_high:
            raise ValueError(
                f"{where}: the band [init_ratio_low, init_ratio_high] = [{self.init_ratio_low}, "
                f"{self.init_ratio_high}] must contain 1 (the scheme's own std), e.g. [0.5, 2]."
            )
