"""Where the monitor's rows go: JSON lines, TensorBoard, the console, memory.

Every sink receives all the rows of a logged step at once (:class:`Row`: step, layer, metric,
value); write your own by subclassing :class:`Sink` and implementing ``write``.
"""

from stabletrain.monitoring.sinks.base import (
    METRICS,
    SCHEMA_VERSION,
    Histogram,
    Row,
    Sink,
    layer_label,
)
from stabletrain.monitoring.sinks.console import ConsoleSink
from stabletrain.monitoring.sinks.jsonl import JSONLSink, read_findings, read_jsonl, read_meta
from stabletrain.monitoring.sinks.memory import MemorySink
from stabletrain.monitoring.sinks.tensorboard import TensorBoardSink

__all__ = [
    "METRICS",
    "SCHEMA_VERSION",
    "ConsoleSink",
    "Histogram",
    "JSONLSink",
    "MemorySink",
    "Row",
    "Sink",
    "TensorBoardSink",
    "layer_label",
    "read_findings",
    "read_jsonl",
    "read_meta",
]
