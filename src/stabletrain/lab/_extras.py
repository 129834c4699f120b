"""What a lab run needs beyond the base install, named when it is missing."""

from __future__ import annotations

# a missing module -> the extra that installs it
EXTRA_OF = {"scipy": "lab", "sklearn": "lab", "matplotlib": "report"}


def describe_import_error(err: BaseException) -> str | None:
    """``"needs scipy: pip install 'stabletrain[lab]'"`` where ``err`` is a missing optional
    dependency of the lab, else None.

    Example:
        >>> describe_import_error(ModuleNotFoundError("No module named 'scipy'", name="scipy"))
        "needs scipy, which the base install lacks: pip install 'stabletrain[lab]'"
    """
    if not isinstance(err, ModuleNotFoundError) or err.name is None:
        return None
    top = err.name.partition(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return f"needs {top}, which the base install lacks: pip install 'stabletrain[{extra}]'"
