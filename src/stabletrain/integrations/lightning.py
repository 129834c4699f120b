"""``StableTrainCallback``: the training-health monitor inside Lightning's ``Trainer``.

>>> from stabletrain.integrations.lightning import StableTrainCallback  # doctest: +SKIP
>>> trainer = L.Trainer(callbacks=[StableTrainCallback(preset="standard")])  # doctest: +SKIP

What it does, hook by hook:

- ``setup`` (fit): with ``auto_init=True``, :func:`stabletrain.auto_init` on the LightningModule
  with the first batch of the train dataloader, before the strategy moves and wraps the model
  (DDP) and before the optimizers exist. The batch is drawn and the init is sampled from a
  fixed seed, so every rank computes the same weights without a broadcast, and the global
  random state is left as it was.
- ``on_train_start``: a :class:`~stabletrain.monitoring.TrainingMonitor` on the LightningModule
  (the optimizer, if there is one, and the precision plugin's ``GradScaler``), started. Its rows
  go through the Trainer's own loggers: a ``TensorBoardLogger``'s ``SummaryWriter`` (one event
  file for the run), any other logger's ``log_metrics``; plus ``jsonl`` and ``sinks``. Only
  global rank 0 writes.
- ``on_train_batch_end``: ``monitor.step(loss, step=trainer.global_step)``, the loss read from
  the step's outputs. ``global_step`` counts optimizer steps, so under
  ``accumulate_grad_batches=k`` the monitor records one step per k batches (with the mean loss
  of the k), and manual optimization is counted the same way.
- ``on_train_end`` (or an exception): the monitor is closed and rank 0 prints its findings.

Gradient norms are measured at the end of backward (after DDP's all-reduce), so they are those
before ``gradient_clip_val`` clips them, and equal the norm Lightning's clipping computes.

Raises ImportError naming the extra (``pip install 'stabletrain[lightning]'``) when Lightning
is not installed; ``import stabletrain`` never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from stabletrain.integrations._common import LogSink, loss_of, missing_extra, model_input
from stabletrain.monitoring import (
    JSONLSink,
    Preset,
    Schedule,
    SkipCounter,
    TensorBoardSink,
    Thresholds,
    TrainingMonitor,
    every,
)
from stabletrain.monitoring.ranks import WriteRanks
from stabletrain.monitoring.sinks.base import Sink

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError as _err:
    raise missing_extra(
        "lightning", "lightning", "stabletrain.integrations.lightning", _err
    ) from _err

__all__ = ["StableTrainCallback"]

_EVERY_10 = every(10)


class StableTrainCallback(Callback):
    """Watch a Lightning training run with :class:`~stabletrain.monitoring.TrainingMonitor`.

    Args:
        preset: the monitor's cost preset (``"minimal"``, ``"standard"``, ``"full"``).
        schedule: which optimizer steps to log (``every(10)``, or an int).
        auto_init: initialize the LightningModule with :func:`stabletrain.auto_init` on the
            first training batch when fit starts (see the module docstring).
        guard: an object counting skipped steps (``skipped_steps``) that the user's training
            step drives, e.g. a :class:`~stabletrain.StepGuard` in manual optimization;
            reported by the monitor.
        thresholds: the monitor's :class:`~stabletrain.monitoring.Thresholds`.
        jsonl: also write the rows to this JSONL file (``stabletrain report`` renders it).
        sinks: more sinks for the monitor.
        loggers: write through the Trainer's loggers (default True).
        summary: print the findings at the end of training (rank 0).
        write_ranks: ``"zero"`` (default): only global rank 0 writes; ``"each"``: every rank
            writes its own JSONL file (``rows.rank1.jsonl``) and sinks.
        example_input: the model input of a batch for ``auto_init`` (default: its first
            element if it is a tuple or list, else the batch).
        seed: the seed of the batch drawn and of the init sampled by ``auto_init``.

    Attributes:
        monitor: the running (or last) monitor, None before training starts.
        init_report: what ``auto_init`` did, None without it.

    Example:
        >>> cb = StableTrainCallback(preset="minimal", schedule=1)
        >>> cb.monitor is None
        True
    """

    def __init__(
        self,
        *,
        preset: Preset = "standard",
        schedule: Schedule | int = _EVERY_10,
        auto_init: bool = False,
        guard: SkipCounter | None = None,
        thresholds: Thresholds | None = None,
        jsonl: str | os.PathLike[str] | None = None,
        sinks: Sequence[Sink] = (),
        loggers: bool = True,
        summary: bool = True,
        write_ranks: WriteRanks = "zero",
        example_input: Callable[[Any], Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        where = "StableTrainCallback"
        if not isinstance(auto_init, bool):
            raise TypeError(f"{where}: auto_init must be a bool, got {auto_init!r}.")
        if example_input is not None and not callable(example_input):
            raise TypeError(
                f"{where}: example_input must be a function batch -> model input, got "
                f"{type(example_input).__name__}."
            )
        self.preset: Preset = preset
        self.schedule = schedule
        self.auto_init = auto_init
        self.guard = guard
        self.thresholds = thresholds
        self.jsonl = jsonl
        self.extra_sinks = list(sinks)
        self.loggers = bool(loggers)
        self.summary = bool(summary)
        self.write_ranks: WriteRanks = write_ranks
        self.example_input = example_input or model_input
        self.seed = int(seed)
        self.monitor: TrainingMonitor | None = None
        self.init_report: Any = None
        # checked now, not at on_train_start: a wrong option fails before any training
        TrainingMonitor(
            torch.nn.Linear(1, 1),
            preset=preset,
            schedule=schedule,
            sinks=self.extra_sinks,
            thresholds=thresholds,
            guard=guard,
            write_ranks=write_ranks,
        )

    # ------------------------------------------------------------------ hooks

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit" or not self.auto_init:
            return
        from stabletrain.init import auto_init

        devices: list[int] = []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)  # the same batch on every rank (a shuffled loader)
            batch = self._first_batch(trainer)
        example = self.example_input(batch)
        generator = torch.Generator().manual_seed(self.seed)
        self.init_report = auto_init(pl_module, example, generator=generator)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        optimizers = list(trainer.optimizers)
        self.monitor = TrainingMonitor(
            pl_module,
            optimizers[0] if len(optimizers) == 1 else None,
            preset=self.preset,
            schedule=self.schedule,
            sinks=self._sinks(trainer),
            thresholds=self.thresholds,
            guard=self.guard,
            scaler=getattr(trainer.precision_plugin, "scaler", None),
            write_ranks=self.write_ranks,
            summary=self.summary,
        )
        self.monitor.start()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.monitor is not None:
            self.monitor.step(loss_of(outputs), step=int(trainer.global_step))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close()

    # ------------------------------------------------------------------ helpers

    def _sinks(self, trainer: Any) -> list[Sink]:
        if not (trainer.is_global_zero or self.write_ranks == "each"):
            return []
        sinks: list[Sink] = list(self.extra_sinks)
        if self.jsonl is not None:
            sinks.append(JSONLSink(self.jsonl))
        if self.loggers and trainer.is_global_zero:
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    sinks.append(TensorBoardSink.from_writer(logger.experiment))
                else:
                    sinks.append(LogSink(logger.log_metrics, type(logger).__name__))
        return sinks

    def _first_batch(self, trainer: Any) -> Any:
        source = trainer.fit_loop._data_source  # where fit() keeps the train dataloaders
        loader = source.dataloader()
        if isinstance(loader, dict):
            loader = next(iter(loader.values()))
        elif isinstance(loader, list | tuple):
            loader = loader[0]
        try:
            return next(iter(loader))
        except StopIteration:
            raise ValueError(
                "StableTrainCallback(auto_init=True): the train dataloader is empty; give it "
                "at least one batch, or initialize the model yourself."
            ) from None
