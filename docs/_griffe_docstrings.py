"""A Griffe extension for the API reference: docstrings are written for ``help()`` and doctest
(``>>>`` examples, ``:func:`` roles, reST tables); this renders them as Markdown.

- a run of ``>>>`` lines and their output becomes a ``pycon`` code block (unfenced, Markdown
  would read ``[a][b]`` in an output as a link);
- ``:func:`~stabletrain.init.gain``` and its kin become cross-references, which
  ``mkdocs build --strict`` checks: a reference to an object that does not exist fails the build;
- a reST simple table (``====  ====`` rules) becomes a preformatted block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|meth|mod|data|attr|exc|obj):`(~?)([\w.]+)`")
_RULE = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _roles(text: str, module: griffe.Module) -> str:
    """Cross-references for ``:func:`` and kin; modules and private objects stay code."""

    def link(match: re.Match[str]) -> str:
        role, short, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if short else target
        if role == "mod" or "." not in target or any(p.startswith("_") for p in target.split(".")):
            return f"`{shown}`"  # no page of its own, a bare name, or private: nothing to check
        if not target.startswith("stabletrain."):  # a name of the docstring's module
            head, _, rest = target.partition(".")
            member = module.members.get(head)
            alias = isinstance(member, griffe.Alias)
            base = member.target_path if alias else f"{module.path}.{head}"
            target = f"{base}.{rest}"
        return f"[`{shown}`][{target}]"

    return _ROLE.sub(link, text)


def _fence(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i][len(indent) :])
                i += 1
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue
        if _RULE.match(line):  # a reST table: from its first rule to the rule after the header
            block = []
            rules = 0
            while i < len(lines) and lines[i].strip():
                rules += bool(_RULE.match(lines[i]))
                block.append(lines[i][len(indent) :])
                i += 1
            out += [f"{indent}```text", *(indent + b for b in block), f"{indent}```"]
            continue
        out.append(line)
        i += 1
    return out


def to_markdown(text: str, module: griffe.Module) -> str:
    """A docstring's text with its doctests fenced, its roles linked, its tables preformatted."""
    fenced = "\n".join(_fence(text.splitlines()))
    parts = re.split(r"(```.*?```)", fenced, flags=re.DOTALL)  # leave code blocks as they are
    return "".join(p if p.startswith("```") else _roles(p, module) for p in parts)


class DocstringsAsMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package with :func:`to_markdown`."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            module = obj if isinstance(obj, griffe.Module) else obj.module
            obj.docstring.value = to_markdown(obj.docstring.value, module)
        for member in obj.members.values():
            if not isinstance(member, griffe.Alias):
                self._rewrite(member)
