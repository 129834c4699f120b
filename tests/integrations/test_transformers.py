"""The Hugging Face Trainer callback: the Trainer's own step, loss and pre-clip gradient norm."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import transformers

from stabletrain.integrations.transformers import StableTrainCallback, watch
from stabletrain.monitoring import MemorySink
from tests._hf import gpt2

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning"),
]
RTOL = 1e-5


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Random token sequences, labels = inputs (language modelling)."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.ids = torch.randint(1, 100, (n, 16), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def make_trainer(tmp_path: Path, **kwargs: Any) -> transformers.Trainer:
    torch.manual_seed(0)
    options: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "max_grad_norm": 1.0,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    options.update(kwargs)
    args = transformers.TrainingArguments(**options)
    return transformers.Trainer(model=gpt2(32, 2), args=args, train_dataset=Tokens(64))


def logged(trainer: transformers.Trainer, key: str) -> list[tuple[int, float]]:
    return [(e["step"], e[key]) for e in trainer.state.log_history if key in e]


def test_the_grad_norms_and_losses_are_those_the_trainer_logs(tmp_path: Path) -> None:
    sink = MemorySink()
    trainer = make_trainer(tmp_path)
    cb = StableTrainCallback(sinks=[sink], summary=False)
    trainer.add_callback(cb)
    trainer.train()
    want = logged(trainer, "grad_norm")
    assert [s for s, _ in want] == [1, 2, 3, 4, 5, 6]
    assert max(v for _, v in want) > 1.0  # some steps were clipped
    got = sink.series("grad_norm", None)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=RTOL)
    losses = logged(trainer, "loss")
    assert [s for s, _ in sink.series("loss", None)] == [s for s, _ in losses]
    assert [v for _, v in sink.series("loss", None)] == pytest.approx([v for _, v in losses])
    assert cb.monitor is not None
    assert cb.monitor.steps == trainer.state.global_step == 6


def test_gradient_accumulation_gives_one_monitor_step_per_optimizer_step(tmp_path: Path) -> None:
    sink = MemorySink()
    trainer = make_trainer(tmp_path, gradient_accumulation_steps=2, logging_steps=2)
    cb = StableTrainCallback(sinks=[sink], schedule=1, summary=False)
    trainer.add_callback(cb)
    trainer.train()
    assert cb.monitor is not None
    assert cb.monitor.steps == trainer.state.global_step == 6
    assert [s for s, _ in sink.series("grad_norm", None)] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in sink.series("loss", None)] == [2, 4, 6]  # the Trainer's log steps
    want = dict(logged(trainer, "grad_norm"))
    got = dict(sink.series("grad_norm", None))
    assert [got[s] for s in want] == pytest.approx(list(want.values()), rel=RTOL)
    assert [f.message for f in cb.monitor.findings() if "barely learns" in f.message] == []


def test_the_loss_rules_run_on_the_trainers_loss(tmp_path: Path) -> None:
    from stabletrain.monitoring import Thresholds

    trainer = make_trainer(tmp_path, learning_rate=0.0, max_grad_norm=0.0)
    cb = StableTrainCallback(thresholds=Thresholds(loss_window=4), summary=False)
    trainer.add_callback(cb)
    trainer.train()
    assert cb.monitor is not None
    assert "loss_plateau" in {f.rule for f in cb.monitor.findings()}


def test_watch_writes_into_the_trainers_tensorboard_file(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(tmp_path, report_to=["tensorboard"])
    watch(trainer, summary=False)
    trainer.train()
    events = list((tmp_path / "out").rglob("events.out.tfevents*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("grad_norm/(model)")] == [1, 2, 3, 4, 5, 6]
    assert "train/grad_norm" in acc.Tags()["scalars"]  # the Trainer's own, same file


def test_the_module_names_the_extra_when_transformers_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "stabletrain.integrations.transformers")
    with pytest.raises(ImportError, match=r"pip install 'stabletrain\[hf\]'"):
        importlib.import_module("stabletrain.integrations.transformers")
