"""Each example project sweeps end to end with the README's command (shrunk): ASHA runs,
best/ is exported with its report, and `hpo predict` works on the exported model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from hpo.cli import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SHRINK = ["budget.num_samples=3", "trainer.max_epochs=2", "scheduler.grace_period=1",
          "cluster.num_cpus=2", "budget.max_concurrent_trials=2"]  # fmt: skip


@pytest.fixture
def repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # the README runs the examples from the repository root
    return ROOT


def sweep_example(tmp_path, name: str, *extra: str) -> Path:
    run_dir = tmp_path / "run"
    conf = ROOT / "examples" / name / "conf"
    code = main(["sweep", "--config-dir", str(conf), f"experiment={name}", *SHRINK,
                 f"run_dir={run_dir}", *extra])  # fmt: skip
    assert code == 0
    return run_dir


def check_export(tmp_path, run_dir: Path, rows: int, chance: float) -> None:
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert trials["trial_id"].nunique() == 3 and (trials["status"] != "failed").all()
    report = json.loads((run_dir / "best" / "report.json").read_text())
    assert report["test"]["rows"] == rows
    assert report["test"]["accuracy"] > 2 * chance
    out = tmp_path / "preds.parquet"
    assert main(["predict", str(run_dir / "best"), "--output", str(out)]) == 0
    assert len(pd.read_parquet(out)) == rows


def test_digits_cnn_example_sweeps_exports_and_predicts(tmp_path, repo_root):
    data_dir = tmp_path / "digits_images"
    run_dir = sweep_example(tmp_path, "digits_cnn", "cv.folds=2", f"data.data_dir={data_dir}")
    assert sum(1 for _ in data_dir.glob("*/*/*.png")) == 1797  # written once, shared by trials
    check_export(tmp_path, run_dir, rows=360, chance=0.1)


def test_text_classifier_example_sweeps_exports_and_predicts(tmp_path, repo_root):
    run_dir = sweep_example(tmp_path, "text_classifier", "cv.folds=2",
                            "trainer.limit_train_batches=20")  # fmt: skip
    check_export(tmp_path, run_dir, rows=2779, chance=1 / 8)


def test_examples_are_plain_lightning_code():
    for path in (ROOT / "examples").rglob("*.py"):
        if path.parent.name.startswith("finetune_"):  # they fine-tune hpo's own modules
            continue
        assert "import hpo" not in path.read_text() and "from hpo" not in path.read_text(), path
    assert os.path.isfile(ROOT / "examples" / "README.md")
