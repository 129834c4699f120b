"""``StableTrainCallback``: the training-health monitor inside Hugging Face's ``Trainer``.

>>> from stabletrain.integrations.transformers import watch  # doctest: +SKIP
>>> trainer = transformers.Trainer(model=model, args=args, train_dataset=data)  # doctest: +SKIP
>>> callback = watch(trainer, preset="standard")  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP

:func:`watch` adds the callback and hands it what a ``TrainerCallback`` is not given: the
``TensorBoardCallback``'s ``SummaryWriter`` (the monitor's rows then go into the Trainer's own
event file) and accelerate's ``GradScaler``. ``trainer.add_callback(StableTrainCallback())``
works too, without those two.

What it does, event by event:

- ``on_train_begin``: a :class:`~stabletrain.monitoring.TrainingMonitor` on the model (unwrapped
  from DDP) with the Trainer's optimizer, logging on the Trainer's ``logging_steps`` unless
  ``schedule`` says otherwise, started; only the main process writes.
- ``on_step_end`` (after the optimizer step, with ``state.global_step``): one monitor step per
  optimizer step, so gradient accumulation is counted right. On a step the Trainer logs, the
  monitor step waits for ``on_log``, which follows in the same step, to take the Trainer's
  ``loss`` (the mean over the logging interval): the loss rules run on the loss the Trainer
  reports.
- ``on_train_end``: the monitor is closed and the main process prints its findings.

Gradient norms are measured at the end of backward, so they are the norms before
``max_grad_norm`` clips them: the Trainer's logged ``grad_norm``.

Raises ImportError naming the extra (``pip install 'stabletrain[hf]'``) when transformers is not
installed; ``import stabletrain`` never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from torch import nn

from stabletrain.integrations._common import missing_extra
from stabletrain.monitoring import (
    JSONLSink,
    Preset,
    Schedule,
    TensorBoardSink,
    Thresholds,
    TrainingMonitor,
    every,
)
from stabletrain.monitoring.sinks.base import Sink

try:
    from transformers import TrainerCallback
except ImportError as _err:
    where = "stabletrain.integrations.transformers"
    raise missing_extra("transformers", "hf", where, _err) from _err

__all__ = ["StableTrainCallback", "watch"]


class StableTrainCallback(TrainerCallback):
    """Watch a Hugging Face ``Trainer`` run with :class:`~stabletrain.monitoring.TrainingMonitor`.

    Args:
        preset: the monitor's cost preset (``"minimal"``, ``"standard"``, ``"full"``).
        schedule: which optimizer steps to log; None: the Trainer's ``logging_steps``.
        thresholds: the monitor's :class:`~stabletrain.monitoring.Thresholds`.
        jsonl: also write the rows to this JSONL file (``stabletrain report`` renders it).
        sinks: more sinks for the monitor.
        writer: a ``SummaryWriter`` to write the rows through (:func:`watch` passes the
            Trainer's).
        scaler: the ``GradScaler`` of fp16 training (:func:`watch` passes accelerate's).
        summary: print the findings at the end of training (main process).

    Attributes:
        monitor: the running (or last) monitor, None before training starts.

    Example:
        >>> StableTrainCallback(preset="minimal").monitor is None
        True
    """

    def __init__(
        self,
        *,
        preset: Preset = "standard",
        schedule: Schedule | int | None = None,
        thresholds: Thresholds | None = None,
        jsonl: str | os.PathLike[str] | None = None,
        sinks: Sequence[Sink] = (),
        writer: Any = None,
        scaler: Any = None,
        summary: bool = True,
    ) -> None:
        self.preset: Preset = preset
        self.schedule = schedule
        self.thresholds = thresholds
        self.jsonl = jsonl
        self.extra_sinks = list(sinks)
        self.writer = writer
        self.scaler = scaler
        self.summary = bool(summary)
        self.monitor: TrainingMonitor | None = None
        self._deferred: int | None = None  # a logged step waiting for on_log's loss
        # checked now, not at on_train_begin: a wrong option fails before any training
        TrainingMonitor(
            nn.Linear(1, 1),
            preset=preset,
            schedule=1 if schedule is None else schedule,
            sinks=self.extra_sinks,
            thresholds=thresholds,
            scaler=scaler,
        )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if not isinstance(model, nn.Module):
            raise TypeError(
                "StableTrainCallback: the Trainer passed no model to on_train_begin; add the "
                "callback to a transformers.Trainer (trainer.add_callback or watch(trainer))."
            )
        schedule = self.schedule if self.schedule is not None else every(_logging_steps(args))
        self.monitor = TrainingMonitor(
            model,
            kwargs.get("optimizer"),
            preset=self.preset,
            schedule=schedule,
            sinks=self._sinks(state),
            thresholds=self.thresholds,
            scaler=self.scaler,
            summary=self.summary and bool(state.is_world_process_zero),
        )
        self.monitor.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()
        if self.monitor is None:
            return
        if control.should_log:
            self._deferred = int(state.global_step)
        else:
            self.monitor.step(None, step=int(state.global_step))

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        loss = (logs or {}).get("loss")
        if self.monitor is None or self._deferred is None or not isinstance(loss, int | float):
            return
        step, self._deferred = self._deferred, None
        self.monitor.step(float(loss), step=step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()
        if self.monitor is not None:
            self.monitor.close()

    def _flush(self) -> None:
        """Record a logged step whose ``on_log`` brought no loss."""
        if self._deferred is not None and self.monitor is not None:
            step, self._deferred = self._deferred, None
            self.monitor.step(None, step=step)

    def _sinks(self, state: Any) -> list[Sink]:
        if not state.is_world_process_zero:
            return []
        sinks: list[Sink] = list(self.extra_sinks)
        if self.jsonl is not None:
            sinks.append(JSONLSink(self.jsonl))
        if self.writer is not None:
            sinks.append(TensorBoardSink.from_writer(self.writer))
        return sinks


def _logging_steps(args: Any) -> int:
    steps = getattr(args, "logging_steps", 500)
    if isinstance(steps, float) and steps < 1:  # a fraction of the run: let the Trainer say
        return 1
    return max(int(steps), 1)


def watch(trainer: Any, **options: Any) -> StableTrainCallback:
    """Add a :class:`StableTrainCallback` to ``trainer``, writing through the Trainer's
    TensorBoard writer (if ``report_to`` includes tensorboard) and unscaling with its
    ``GradScaler`` (fp16); ``options`` go to the callback. Returns the callback.

    Raises:
        TypeError: ``trainer`` is not a ``transformers.Trainer``.
    """
    handler = getattr(trainer, "callback_handler", None)
    if handler is None:
        raise TypeError(
            f"watch: trainer must be a transformers.Trainer, got {type(trainer).__name__}."
        )
    callback = StableTrainCallback(
        writer=options.pop("writer", None) or _TensorBoardWriter(handler),
        scaler=options.pop("scaler", None) or getattr(trainer.accelerator, "scaler", None),
        **options,
    )
    trainer.add_callback(callback)
    return callback


class _TensorBoardWriter:
    """The ``TensorBoardCallback``'s ``SummaryWriter``, which it creates only when training
    begins: looked up at the first write. Without one, writes go nowhere."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def _writer(self) -> Any:
        for callback in self._handler.callbacks:
            writer = getattr(callback, "tb_writer", None)
            if writer is not None:
                return writer
        return None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        writer = self._writer()
        if writer is not None:
            getattr(writer, name)(*args, **kwargs)

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        self._call("add_scalar", *args, **kwargs)

    def add_histogram_raw(self, *args: Any, **kwargs: Any) -> None:
        self._call("add_histogram_raw", *args, **kwargs)

    def add_text(self, *args: Any, **kwargs: Any) -> None:
        """The findings, as text next to the Trainer's own scalars."""
        self._call("add_text", *args, **kwargs)

    def flush(self) -> None:
        self._call("flush")
