"""A lab run on a base install names the extra that a missing optional module comes with."""

from __future__ import annotations

import pytest

from stabletrain.lab import Result, experiment
from stabletrain.lab._extras import describe_import_error
from stabletrain.lab.experiment import REGISTRY
from stabletrain.lab.runner import run
from tests._claims import known_claims


@pytest.mark.parametrize(
    ("module", "extra"),
    [("scipy", "lab"), ("scipy.stats", "lab"), ("sklearn", "lab"), ("matplotlib", "report")],
)
def test_a_missing_optional_module_names_its_extra(module: str, extra: str) -> None:
    err = ModuleNotFoundError(f"No module named {module!r}", name=module)
    text = describe_import_error(err)
    assert text is not None
    assert f"pip install 'stabletrain[{extra}]'" in text
    assert module.partition(".")[0] in text


@pytest.mark.parametrize(
    "err", [ModuleNotFoundError("No module named 'foo'", name="foo"), ValueError("scipy")]
)
def test_other_errors_are_left_to_the_generic_message(err: Exception) -> None:
    assert describe_import_error(err) is None


def test_an_experiment_whose_import_is_missing_reports_the_extra() -> None:
    with known_claims("Z9"):

        @experiment("Z9")
        def z9(ctx: object) -> Result:
            raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

        try:
            (result,) = run(["Z9"], quick=True, seed=0, experiments={"Z9": REGISTRY["Z9"]})
        finally:
            REGISTRY.pop("Z9", None)
    assert "pip install 'stabletrain[lab]'" in result.error
