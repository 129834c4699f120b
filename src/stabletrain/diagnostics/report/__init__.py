"""Deprecated: the reports moved to :mod:`stabletrain.report`; import from there.

``stabletrain.diagnostics.report`` renders diagnoses, monitored runs and the lab, so it became
the top-level package ``stabletrain.report``. The old names still resolve, to the very objects
of the new package, each with a :class:`DeprecationWarning`: the package's names
(``from stabletrain.diagnostics.report import write_report``) and its modules
(``from stabletrain.diagnostics.report.plots import Plot``). ``stabletrain.diagnostics`` itself
keeps exporting ``write_report``, ``render_run`` and the other report functions, without a
warning.

Example:
    >>> import warnings
    >>> import stabletrain.report
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     from stabletrain.diagnostics.report import write_report
    >>> write_report is stabletrain.report.write_report
    True
    >>> str(caught[0].message)
    'stabletrain.diagnostics.report moved to stabletrain.report; import from there'
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

import stabletrain.report as _moved

MESSAGE = "stabletrain.diagnostics.report moved to stabletrain.report; import from there"
"""The text of the warning an old import gives."""

MODULES = ("figures", "html", "markdown", "plots", "run", "write")
"""The public modules of :mod:`stabletrain.report`, importable under the old name too."""

__all__ = list(_moved.__all__)


def _warn() -> None:
    """The deprecation warning, pointed at the line with the old import: the first caller
    outside this module (``warnings`` itself passes over the import machinery's frames)."""
    frame: FrameType | None = sys._getframe(0)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back
        level += 1
    warnings.warn(MESSAGE, DeprecationWarning, stacklevel=level)


def __getattr__(name: str) -> Any:
    if name in _moved.__all__:
        _warn()
        return getattr(_moved, name)
    if name in MODULES:
        _warn()
        return importlib.import_module(f"{_moved.__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_moved.__all__, *MODULES})


class _OldModuleNames(MetaPathFinder, Loader):
    """Resolves ``stabletrain.diagnostics.report.<module>`` to ``stabletrain.report.<module>``
    (the same module object, not a second copy), with the warning."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in MODULES:
            return None
        return ModuleSpec(fullname, self)

    def __init__(self) -> None:
        self._specs: dict[str, ModuleSpec | None] = {}

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        _warn()
        module = importlib.import_module(f"{_moved.__name__}.{spec.name.rpartition('.')[2]}")
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module is the new package's, already imported); the import
        system gave it the old name's spec: it gets its own back."""
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)


if not any(isinstance(finder, _OldModuleNames) for finder in sys.meta_path):
    sys.meta_path.insert(0, _OldModuleNames())
