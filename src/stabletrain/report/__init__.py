"""Reports: a diagnosis, a monitored run and the lab rendered as JSON, Markdown and HTML.

The one package that renders what the others produce; it reads their public types and they
call it, so nothing here depends on another package's internals.

- :func:`write_report` writes ``report.html`` / ``report.md`` / ``report.json`` for a
  :class:`~stabletrain.diagnostics.Diagnosis` or the rows of a TrainingMonitor log;
  :func:`render_run` does it from a JSONL log file.
- :func:`diagnosis_markdown`, :func:`run_markdown`, :func:`diagnosis_html`, :func:`run_html`
  return the text.
- :mod:`.plots` draws the figures (matplotlib, Agg, no pyplot); :mod:`.figures` draws the
  lab's figures, and ``html.load_template`` gives the page templates (``templates/``), the
  lab's HTML report among them.

The HTML needs the ``report`` extra (matplotlib, jinja2): ``pip install 'stabletrain[report]'``.

Example:
    >>> import tempfile
    >>> from stabletrain.diagnostics import Diagnosis
    >>> from stabletrain.report import write_report
    >>> write_report(Diagnosis(model="MLP"), tempfile.mkdtemp(), ["md"])["md"].name
    'report.md'
"""

from stabletrain.report.html import diagnosis_html, run_html
from stabletrain.report.markdown import (
    diagnosis_markdown,
    escape_markdown,
    run_markdown,
)
from stabletrain.report.plots import (
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
from stabletrain.report.run import RunLog, load_run
from stabletrain.report.write import (
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
