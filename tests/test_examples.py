"""The scripts of ``examples/`` run, for a few steps on the CPU, and watch their runs."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

from stabletrain.monitoring import read_jsonl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STEPS = 5

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning"),
]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_short_and_linked_from_the_readme() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    for script in sorted(EXAMPLES.glob("*.py")):
        assert len(script.read_text().splitlines()) < 100, script.name
        assert f"examples/{script.name}" in readme, script.name


def test_the_plain_pytorch_example_counts_optimizer_steps_and_writes_a_report(
    tmp_path: Path,
) -> None:
    pytest.importorskip("sklearn")
    load("plain_pytorch").main(STEPS, tmp_path)
    rows = read_jsonl(tmp_path / "run.jsonl")
    assert [r.step for r in rows if r.metric == "loss"] == [5]  # every(5), 5 optimizer steps
    assert (tmp_path / "report" / "report.md").exists()


# Each takes 3-5 s on a free CPU: every example runs in CI.
def test_the_lightning_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    pytest.importorskip("sklearn")
    callback = load("lightning_mlp").main(STEPS, tmp_path)
    assert callback.monitor.steps == STEPS
    assert callback.init_report is not None


def test_the_hugging_face_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    callback = load("hf_trainer").main(STEPS, tmp_path)
    assert callback.monitor.steps == STEPS
    assert [r.step for r in read_jsonl(tmp_path / "run.jsonl") if r.metric == "loss"] == [5]


def test_the_char_gpt_example_starts_near_ln_vocab_and_learns(tmp_path: Path) -> None:
    example = load("char_gpt")
    start, final = example.main(25, tmp_path)  # one logged step: every(25)
    vocab = len(example.CHARS)
    assert start == pytest.approx(math.log(vocab), rel=0.05)  # the tied head, fitted
    assert final < 0.8 * start
    assert [r.step for r in read_jsonl(tmp_path / "run.jsonl") if r.metric == "loss"]
