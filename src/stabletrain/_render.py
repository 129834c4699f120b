"""Text for people: Rich renderables as plain text (reports' ``__str__``), Markdown escaping."""

from __future__ import annotations

import io
import re
import shutil

from rich.console import Console, RenderableType

_SPECIAL = re.compile(r"([\\`*|<>\[\]])")


def terminal_width() -> int:
    """The terminal's width in columns: ``COLUMNS`` if set, the terminal's own, else 80 (a pipe)."""
    return shutil.get_terminal_size(fallback=(80, 24)).columns


def render_text(renderable: RenderableType, *, width: int | None = None) -> str:
    """``renderable`` as it prints on a ``width``-column terminal (default: this terminal's,
    :func:`terminal_width`), without colour codes."""
    buffer = io.StringIO()
    columns = terminal_width() if width is None else width
    Console(file=buffer, width=columns, force_terminal=False).print(renderable)
    return buffer.getvalue()


def escape_markdown(text: str) -> str:
    r"""``text`` safe in a Markdown paragraph or table cell: one line, specials escaped.

    >>> print(escape_markdown("a|b <c>\nd"))
    a\|b \<c\> d
    """
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
