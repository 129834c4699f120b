"""Adapters that run :class:`~stabletrain.monitoring.TrainingMonitor` inside training frameworks.

- :mod:`stabletrain.integrations.lightning`: ``StableTrainCallback`` for Lightning's ``Trainer``
  (``pip install 'stabletrain[lightning]'``);
- :mod:`stabletrain.integrations.transformers`: ``StableTrainCallback`` for Hugging Face's
  ``Trainer`` (``pip install 'stabletrain[hf]'``).

Each is imported on its own; ``import stabletrain`` (and this package) imports neither framework.
Both wrap the same monitor: gradient norms measured at the end of backward (before the
framework clips), one row per optimizer step numbered by the framework's ``global_step``, rows
written through the framework's own logger (its TensorBoard writer where it has one), from
global rank 0 only, and the findings printed at the end of training.
"""

__all__: list[str] = []
