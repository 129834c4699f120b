"""What the framework adapters share: the optional import, the loss of a step's outputs, the
model input of a batch, and a sink that writes through a framework's ``log_metrics``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from stabletrain.monitoring.sinks.base import Row, Sink
from stabletrain.monitoring.sinks.tensorboard import scalars

TAG_PREFIX = "stabletrain"


def missing_extra(package: str, extra: str, where: str, err: ImportError) -> ImportError:
    """The ImportError to raise when ``package`` is missing: it names the extra to install."""
    return ImportError(
        f"{where} needs {package}, which is not installed: pip install 'stabletrain[{extra}]'. "
        f"({err})"
    )


def loss_of(outputs: Any) -> torch.Tensor | float | None:
    """The loss in a training step's outputs: a scalar tensor, ``outputs["loss"]``, or None."""
    if isinstance(outputs, Mapping):
        outputs = outputs.get("loss")
    if isinstance(outputs, torch.Tensor):
        return outputs.detach() if outputs.numel() == 1 else None
    if isinstance(outputs, int | float) and not isinstance(outputs, bool):
        return float(outputs)
    return None


def model_input(batch: Any) -> Any:
    """The model's input in a batch: the first element of a tuple or list ``(x, y)``, else the
    batch itself (a tensor, or a dict of keyword inputs)."""
    if isinstance(batch, tuple | list) and batch:
        return batch[0]
    return batch


class LogSink(Sink):
    """Rows written through a framework logger's ``log_metrics(metrics, step)``: one call per
    logged step, tags ``stabletrain/{metric}/{block}/{rest}`` as the TensorBoard sink writes
    them (:func:`~stabletrain.monitoring.sinks.tensorboard.scalars`: non-finite counts that
    are 0 only for the whole model)."""

    def __init__(self, log_metrics: Callable[[dict[str, float], int], Any], name: str) -> None:
        self._log = log_metrics
        self._name = name

    def __repr__(self) -> str:
        return f"LogSink({self._name})"

    def write(self, step: int, rows: Sequence[Row]) -> None:
        metrics = {f"{TAG_PREFIX}/{name}": value for name, value in scalars(rows)}
        if metrics:
            self._log(metrics, step)
