"""Which initialization a layer's weights look like, from their statistics.

A weight matrix of ``fan_in`` inputs and variance ``Var(w)`` looks like

- ``zeros`` / ``constant``: every entry equal (claim I1's symmetry problem);
- ``orthogonal``: rows (or, for a tall matrix, columns) of one common norm;
- ``he``: ``fan_in·Var(w) = 2``; ``standard``: ``1/3`` (``U(±1/sqrt(fan_in))``, PyTorch's
  default for Linear and Conv); ``lecun``: 1; ``xavier``: ``(fan_in+fan_out)/2·Var(w) = 1``
  (``xavier`` when it equals ``lecun``: a square layer);

each within :data:`TOLERANCE`; a normalization's gain of all ones is ``ones``. Anything else is
None (unknown).
"""

from __future__ import annotations

import math

from stabletrain.diagnostics._layers import LayerConstants, LayerSpec

TOLERANCE = 0.15
"""Relative tolerance on the variance (a finite matrix's sample variance scatters)."""
_EQUAL_NORMS = 1e-3
_CONSTANT = 1e-8


def _near(value: float, target: float) -> bool:
    return abs(value / target - 1) <= TOLERANCE


def scheme_of(spec: LayerSpec, c: LayerConstants) -> str | None:
    """The name of the scheme ``c`` looks like, or None."""
    if not math.isfinite(c.w_var):
        return None
    if c.w_var <= _CONSTANT * c.w_mean**2:  # equal entries, up to float32 rounding
        if spec.kind == "norm" and c.w_mean == 1:
            return "ones"
        return "zeros" if c.w_mean == 0 else "constant"
    if spec.kind != "linear" or spec.fans is None:
        return None
    if c.row_spread < _EQUAL_NORMS or c.col_spread < _EQUAL_NORMS:  # NaN: not measured
        return "orthogonal"
    fan_in, fan_avg = spec.fans.fan_in, spec.fans.fan_avg
    if _near(fan_in * c.w_var, 2.0):
        return "he"
    if _near(fan_in * c.w_var, 1 / 3):
        return "standard"
    if _near(fan_avg * c.w_var, 1.0):
        return "xavier"
    if _near(fan_in * c.w_var, 1.0):
        return "lecun"
    return None
