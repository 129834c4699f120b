"""load_all: every experiment module is imported; a broken one does not take the lab down."""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator

import pytest

from stabletrain.lab import registry
from stabletrain.lab.claims import CLAIM_IDS


def test_every_claim_module_registers_itself() -> None:
    experiments = registry.load_all()
    assert set(experiments) & set(CLAIM_IDS), "no claim experiment was registered"
    assert registry.LOAD_ERRORS == {}


def test_a_module_that_fails_to_import_is_recorded_and_the_others_still_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = list(pkgutil.iter_modules(registry._package.__path__))
    broken = pkgutil.ModuleInfo(real[0].module_finder, "no_such_experiment_module", False)

    def modules(path: object) -> Iterator[pkgutil.ModuleInfo]:
        yield broken
        yield from real

    monkeypatch.setattr(registry.pkgutil, "iter_modules", modules)
    try:
        experiments = registry.load_all()
        assert "no_such_experiment_module" in registry.LOAD_ERRORS
        assert "ModuleNotFoundError" in registry.LOAD_ERRORS["no_such_experiment_module"]
        assert experiments  # the real modules still registered
    finally:
        registry.LOAD_ERRORS.pop("no_such_experiment_module", None)
