"""Rich renderables as plain text, for the ``__str__`` of reports."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType


def render_text(renderable: RenderableType, *, width: int = 160) -> str:
    """``renderable`` as it prints on a ``width``-column terminal, without colour codes."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, force_terminal=False).print(renderable)
    return buffer.getvalue()
