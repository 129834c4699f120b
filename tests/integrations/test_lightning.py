"""The Lightning callback: optimizer steps, pre-clip norms, the Trainer's logger, auto_init."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from stabletrain.integrations.lightning import StableTrainCallback
from stabletrain.monitoring import MemorySink, read_jsonl
from tests.integrations._lightning_models import Regressor, loader, trainer

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:DeprecationWarning"),
]
RTOL = 1e-5


def test_accumulated_batches_are_one_monitor_step_per_optimizer_step() -> None:
    torch.manual_seed(0)
    sink = MemorySink()
    cb = StableTrainCallback(schedule=1, sinks=[sink], summary=False)
    t = trainer(max_epochs=2, accumulate_grad_batches=4, callbacks=[cb])
    t.fit(Regressor(), loader(16))
    assert cb.monitor is not None
    assert t.global_step == cb.monitor.steps == 8
    assert [s for s, _ in sink.series("loss", None)] == list(range(1, 9))
    assert [f.message for f in cb.monitor.findings() if "barely learns" in f.message] == []


def test_the_logged_norms_are_those_before_lightnings_gradient_clipping() -> None:
    torch.manual_seed(0)
    sink = MemorySink()
    cb = StableTrainCallback(schedule=1, sinks=[sink], summary=False)
    model = Regressor()
    t = trainer(max_steps=6, gradient_clip_val=1.0, callbacks=[cb])
    t.fit(model, loader(6, scale=50.0))
    logged = [v for _, v in sink.series("grad_norm", None)]
    assert min(model.norms) > 1.0  # every step was clipped
    assert logged == pytest.approx(model.norms, rel=RTOL)
    ratios = [v for _, v in sink.series("clip_ratio", None)]
    assert ratios == pytest.approx([1.0 / n for n in model.norms], rel=1e-4)


def test_manual_optimization_is_counted_by_optimizer_steps() -> None:
    torch.manual_seed(0)
    cb = StableTrainCallback(schedule=1, summary=False)
    t = trainer(max_steps=5, callbacks=[cb])
    t.fit(Regressor(manual=True), loader(8))
    assert cb.monitor is not None
    assert t.global_step == cb.monitor.steps == 5


def test_rows_go_to_the_trainers_tensorboard_file_and_no_other(tmp_path: Path) -> None:
    torch.manual_seed(0)
    logger = TensorBoardLogger(tmp_path)
    cb = StableTrainCallback(schedule=1, summary=False, jsonl=tmp_path / "rows.jsonl")
    trainer(max_steps=3, callbacks=[cb], logger=logger).fit(Regressor(), loader(3))
    events = list(tmp_path.rglob("events.out.tfevents*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "grad_norm/(model)" in acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("grad_norm/(model)")] == [1, 2, 3]
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert {r.step for r in rows if r.metric == "grad_norm"} == {1, 2, 3}


def test_a_logger_without_a_summary_writer_gets_the_rows_through_log_metrics(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    cb = StableTrainCallback(schedule=1, summary=False)
    logger = CSVLogger(tmp_path)
    trainer(max_steps=2, callbacks=[cb], logger=logger).fit(Regressor(), loader(2))
    (metrics,) = list(tmp_path.rglob("metrics.csv"))
    header = metrics.read_text().splitlines()[0].split(",")
    assert "stabletrain/grad_norm/(model)" in header


def test_auto_init_gives_the_same_weights_for_the_same_seed_and_keeps_the_rng() -> None:
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = Regressor()
        before = model.net[0].weight.detach().clone()
        cb = StableTrainCallback(auto_init=True, summary=False)
        state = torch.get_rng_state()
        t = trainer(max_steps=1, callbacks=[cb])
        t.fit_loop._data_source.instance = loader(4, shuffle=True)  # what fit() sets first
        cb.setup(t, model, "fit")
        assert torch.equal(torch.get_rng_state(), state)
        assert cb.init_report is not None
        assert not torch.equal(model.net[0].weight, before)
        weights.append(model.net[0].weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_the_module_names_the_extra_when_lightning_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "stabletrain.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install 'stabletrain\[lightning\]'"):
        importlib.import_module("stabletrain.integrations.lightning")


def test_importing_stabletrain_does_not_import_lightning() -> None:
    import subprocess

    from tests._subprocess import python_env

    code = "import sys, stabletrain, stabletrain.integrations; print('lightning' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=python_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_a_bad_option_fails_when_the_callback_is_made() -> None:
    with pytest.raises(ValueError, match="preset"):
        StableTrainCallback(preset="cheap")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="auto_init"):
        StableTrainCallback(auto_init="yes")  # type: ignore[arg-type]
