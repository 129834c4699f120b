"""Reports of a diagnosis or of a monitored run: JSON, Markdown, and self-contained HTML with plots.

- :func:`write_report` writes ``report.html`` / ``report.md`` / ``report.json`` for a
  :class:`~stabletrain.diagnostics.Diagnosis` or the rows of a TrainingMonitor log;
  :func:`render_run` does it from a JSONL log file.
- :func:`diagnosis_markdown`, :func:`run_markdown`, :func:`diagnosis_html`, :func:`run_html`
  return the text.
- :mod:`.plots` draws the figures (matplotlib, Agg, no pyplot).

The HTML needs the ``report`` extra (matplotlib, jinja2): ``pip install 'stabletrain[report]'``.
"""

from stabletrain.diagnostics.report.html import diagnosis_html, run_html
from stabletrain.diagnostics.report.markdown import (
    diagnosis_markdown,
    escape_markdown,
    run_markdown,
)
from stabletrain.diagnostics.report.plots import (
    Plot,
    activation_heatmap,
    backward_std_plot,
    diagnosis_plots,
    findings_timeline,
    forward_std_plot,
    grad_norm_plot,
    loss_plot,
    run_plots,
    update_ratio_plot,
)
from stabletrain.diagnostics.report.run import RunLog, load_run
from stabletrain.diagnostics.report.write import (
    FORMATS,
    RUN_REPORT_SCHEMA,
    RUN_REPORT_VERSION,
    Format,
    render_run,
    run_dict,
    write_report,
)

__all__ = [
    "FORMATS",
    "RUN_REPORT_SCHEMA",
    "RUN_REPORT_VERSION",
    "Format",
    "Plot",
    "RunLog",
    "activation_heatmap",
    "backward_std_plot",
    "diagnosis_html",
    "diagnosis_markdown",
    "diagnosis_plots",
    "escape_markdown",
    "findings_timeline",
    "forward_std_plot",
    "grad_norm_plot",
    "load_run",
    "loss_plot",
    "render_run",
    "run_dict",
    "run_html",
    "run_markdown",
    "run_plots",
    "update_ratio_plot",
    "write_report",
]
