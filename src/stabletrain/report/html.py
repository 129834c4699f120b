"""Reports as one self-contained HTML page: summary, findings with fixes, figures, tables.

The page comes from the Jinja2 template ``templates/report.html.j2`` with autoescaping on, so
every layer name, message and note is HTML-escaped; its figures (:mod:`.plots`) are embedded as
``data:`` URIs and its CSS is inline, and a Content-Security-Policy forbids loading anything
else: the file can be mailed, archived or opened offline. It needs no JavaScript.

Needs jinja2 and matplotlib: ``pip install 'stabletrain[report]'``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stabletrain.monitoring.sinks.base import Row
from stabletrain.report._diagnosis_page import diagnosis_page
from stabletrain.report._format import Page
from stabletrain.report._run_page import run_page
from stabletrain.report.plots import Plot, diagnosis_plots, run_plots
from stabletrain.report.run import RunLog, as_run

if TYPE_CHECKING:
    from stabletrain.diagnostics import Diagnosis

__all__ = ["TEMPLATE", "diagnosis_html", "load_template", "run_html"]

TEMPLATE = "report.html.j2"
"""The template's file name, in this package's ``templates`` folder."""


@functools.cache
def load_template(name: str = TEMPLATE) -> Any:
    """The Jinja2 template ``name`` of this package's ``templates`` folder, autoescaped.

    Raises ImportError naming the extra to install when jinja2 is missing.
    """
    try:
        import jinja2
    except ImportError as err:  # pragma: no cover - jinja2 is in the report extra
        raise ImportError(
            "stabletrain's HTML reports need jinja2, which is not installed: pip install "
            f"'stabletrain[report]' (or pip install jinja2). ({err})"
        ) from err
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stabletrain.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(name)


def page_html(page: Page, plots: Sequence[Plot]) -> str:
    """A page and its figures as HTML."""
    return str(load_template().render(page=page, plots=list(plots)))


def diagnosis_html(d: Diagnosis) -> str:
    """A :class:`~stabletrain.diagnostics.Diagnosis` as a self-contained HTML page.

    Shows the gains, the findings with their fixes, the forward and backward std per layer
    against theory, the activation histograms, the per-layer table and the init report; with a
    ``before`` diagnosis (a fix was applied), before and after side by side and overlaid.

    Example:
        >>> from stabletrain.diagnostics import Diagnosis, LayerStats
        >>> layer = LayerStats(name="<b>&", kind="Linear", depth=0, out_std=1.0)
        >>> page = diagnosis_html(Diagnosis(model="MLP", layers=(layer,)))
        >>> "&lt;b&gt;&amp;" in page, "<b>&" in page
        (True, False)
    """
    return page_html(diagnosis_page(d), diagnosis_plots(d))


def run_html(rows: Sequence[Row] | RunLog) -> str:
    """A TrainingMonitor log (its rows, or a :class:`RunLog`) as a self-contained HTML page.

    Shows the loss, per-layer gradient norms and update ratios over the steps, the findings
    the monitor's rules give over the run (a timeline and a table with fixes), and the layers
    at the last logged step.

    Example:
        >>> from stabletrain.monitoring import Row
        >>> page = run_html([Row(1, "fc", "grad_norm", 0.5), Row(2, "fc", "grad_norm", 0.4)])
        >>> page.startswith("<!DOCTYPE html>"), page.count("data:image/png;base64,")
        (True, 1)
    """
    run = as_run(rows)
    return page_html(run_page(run), run_plots(run))
