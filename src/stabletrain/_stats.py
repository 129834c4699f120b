"""Small robust statistics shared by the diagnostics and the monitor."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pairwise_slopes(xs: Sequence[float], ys: Sequence[float], points: int) -> list[float]:
    """The slopes ``(y_j - y_i) / (x_j - x_i)`` of every pair with distinct ``x``, over at most
    ``points`` evenly spaced points: their median is the Theil–Sen slope (Sen 1968), robust to
    outliers where least squares is not.

    Example:
        >>> import statistics
        >>> statistics.median(pairwise_slopes([0, 1, 2, 3, 4], [0.0, 2.0, 4.0, 6.0, 100.0], 10))
        2.0
    """
    step = max(1, math.ceil(len(xs) / points))
    px, py = xs[::step], ys[::step]
    return [
        (py[j] - py[i]) / (px[j] - px[i])
        for i in range(len(px))
        for j in range(i + 1, len(px))
        if px[j] != px[i]
    ]
