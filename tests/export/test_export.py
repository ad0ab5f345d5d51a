"""After real small sweeps (real local Ray, real Lightning modules): the exported model,
`hpo predict`, `hpo report` and the report itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from export_runs import held_out_rows as _test_rows
from export_runs import sweep as _sweep

from hpo.cli import main
from hpo.config import load_run_config
from hpo.data import prepare_data
from hpo.export.metrics import evaluate_predictions
from hpo.export.predictor import load_model
from hpo.export.report_html import fmt

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def iris_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("iris")
    return _sweep(out, "data=iris", "trainer.max_epochs=5", "budget.num_samples=4")


@pytest.fixture(scope="module")
def report(iris_run):
    run_dir, _ = iris_run
    return json.loads((run_dir / "best" / "report.json").read_text())


def test_best_dir_is_complete_and_the_sweep_prints_test_metrics(iris_run, report):
    run_dir, printed = iris_run
    best = run_dir / "best"
    for name in (
        "model.onnx",
        "preprocessing.json",
        "model.json",
        "config.yaml",
        "report.json",
        "report.html",
    ):
        assert (best / name).is_file(), name
    assert report["classes"] == ["setosa", "versicolor", "virginica"]
    assert f"accuracy {report['test']['accuracy']:.4f}" in printed
    assert str(best / "report.html") in printed
    # the best trial's resolved config holds its hyperparameters
    from omegaconf import OmegaConf

    config = OmegaConf.load(best / "config.yaml")
    for key, value in report["best_trial"]["params"].items():
        assert (
            OmegaConf.select(config, key) == pytest.approx(value)
            if isinstance(value, float)
            else OmegaConf.select(config, key) == value
        )


def test_onnx_matches_torch_on_the_test_split(report):
    check = report["onnx_check"]
    assert check["passed"] and check["max_abs_diff"] <= 1e-5
    assert check["rows"] == report["test"]["rows"] == 30
    assert report["preprocessing_check"]["passed"]
    # the refit replays the trial exactly and says how its epochs were chosen
    model = report["model"]
    assert model["strategy"] == "refit" and "median" in model["how"]
    assert model["replay"]["cv_mean"] == pytest.approx(model["replay"]["sweep_cv_mean"], rel=1e-5)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_reproduces_the_reports_test_metrics(iris_run, report, tmp_path, suffix):
    run_dir, _ = iris_run
    rows, target = _test_rows(run_dir)
    frame = rows.assign(note="ignored", target=target)  # extra column, target present
    source = tmp_path / f"rows{suffix}"
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source)
    out = tmp_path / f"predictions{suffix}"
    assert main(["predict", str(run_dir / "best"), str(source), "--output", str(out)]) == 0
    predictions = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert set(predictions["prediction"]) <= set(report["classes"])  # labels, not indices
    manifest = json.loads((run_dir / "best" / "model.json").read_text())
    assert evaluate_predictions(manifest, target, predictions) == report["test"]


def test_a_missing_column_fails_cleanly(iris_run, tmp_path, capsys):
    run_dir, _ = iris_run
    rows, _ = _test_rows(run_dir)
    source = tmp_path / "rows.csv"
    rows.drop(columns=["petal width (cm)"]).to_csv(source, index=False)
    code = main(
        ["predict", str(run_dir / "best"), str(source), "--output", str(tmp_path / "o.csv")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "`petal width (cm)`" in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_report_html_embeds_its_plots_and_names_the_best_hyperparameters(iris_run, report):
    run_dir, _ = iris_run
    html = (run_dir / "best" / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 7
    assert 'src="http' not in html and "<script" not in html  # self-contained
    for key, value in report["best_trial"]["params"].items():
        assert key in html and fmt(value) in html
    assert len(list((run_dir / "best" / "plots").glob("*.png"))) >= 7
    for section in ("Warnings", "Metrics", "Per class", "Inference", "The sweep"):
        assert section in html


def test_report_json_holds_every_section(report):
    for metric in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "per_class",
        "confusion_matrix",
    ):
        assert metric in report["test"]
    assert np.sum(report["test"]["confusion_matrix"]) == report["test"]["rows"]
    cv = report["cross_validation"]
    assert len(cv["per_fold"]) == 3 and cv["mean"] == pytest.approx(np.mean(cv["per_fold"]))
    over = report["overfitting"]
    assert set(over["table"]["accuracy"]) == {"train", "cv", "test"}
    assert over["optimism"] == pytest.approx(over["test"] - over["cv"])  # val_loss: min
    sweep = report["sweep"]
    assert (
        sweep["trials"] == 4 == sweep["completed"] + sweep["stopped_by_scheduler"] + sweep["failed"]
    )
    assert sweep["wall_s"] > 0 and sweep["searcher"]["name"] == "tpe"
    inference = report["inference"]
    for path in ("end_to_end", "onnx_model", "torch_baseline"):
        latency = inference["one_row_latency"][path]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"]
        assert inference["rows_per_s_batch_1024"][path] > 0
    assert (
        inference["model_size_bytes"]
        == (Path(report["run_dir"]) / "best/model.onnx").stat().st_size
    )
    assert inference["loads_without_unpickling"] and inference["peak_memory_bytes"] > 0
    columns = [f["column"] for f in report["permutation_importance"]["features"]]
    assert sorted(columns) == sorted(
        ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    )
    assert isinstance(report["warnings"], list)


def test_hpo_report_rebuilds_the_same_report(iris_run, report):
    run_dir, _ = iris_run
    best = run_dir / "best"
    (best / "report.json").unlink()
    (best / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert json.loads((best / "report.json").read_text()) == report
    assert (best / "report.html").is_file()


FRESH = """
import json, pickle, sys, _pickle
def refuse(*a, **k):
    raise RuntimeError("unpickling")
for module in (pickle, _pickle):
    module.load = module.loads = module.Unpickler = refuse
import pandas as pd
from hpo.export import load_model
model = load_model(sys.argv[1])
out = model.predict(pd.read_parquet(sys.argv[2]))
out.to_parquet(sys.argv[3])
print(json.dumps(sorted(m for m in ("torch", "sklearn", "joblib", "lightning", "ray")
                        if m in sys.modules)))
"""


def test_the_artifact_loads_in_a_fresh_process_without_unpickling(iris_run, tmp_path):
    run_dir, _ = iris_run
    moved = tmp_path / "shipped"  # away from the run directory and the project
    shutil.copytree(run_dir / "best", moved)
    rows, _ = _test_rows(run_dir)
    rows.to_parquet(tmp_path / "rows.parquet")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH,
            str(moved),
            str(tmp_path / "rows.parquet"),
            str(tmp_path / "out.parquet"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    expected = load_model(run_dir / "best").predict(rows)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), expected)


def test_regression_ensemble_export(ray_local, tmp_path):
    """A positive, right-skewed target (serum triglycerides, a real table): auto learns its
    log, the ONNX graph undoes it, predictions are never negative, and every metric is in
    mg/dL, the same as scikit-learn's on the exported model's predictions."""
    from data_tables import write_triglycerides_csv
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    csv = write_triglycerides_csv(tmp_path / "triglycerides.csv")
    run_dir, printed = _sweep(
        tmp_path / "runs",
        "data=csv",
        f"data.path={csv}",
        "data.target=triglycerides",
        "trainer.max_epochs=3",
        "budget.num_samples=2",
        "scheduler=fifo",
        "++export.strategy=ensemble",
    )
    report = json.loads((run_dir / "best" / "report.json").read_text())
    assert report["task"] == "regression" and report["model"]["strategy"] == "ensemble"
    assert report["onnx_check"]["passed"] and report["preprocessing_check"]["passed"]
    assert f"rmse {report['test']['rmse']:.4f}" in printed
    model = load_model(run_dir / "best")
    assert model.manifest["inputs"] == ["features_0", "features_1", "features_2"]
    # the transform: chosen by auto, recorded in model.json, preprocessing.json, the report
    assert model.manifest["target_transform"]["name"] == "log"
    assert model.preprocessing["target_transform"] == model.manifest["target_transform"]
    assert report["target_transform"]["setting"] == "auto"
    assert "Target transform <b>log</b>" in (run_dir / "best" / "report.html").read_text()
    rows, target = _test_rows(run_dir)
    predicted = model.predict(rows)
    assert evaluate_predictions(model.manifest, target, predicted) == report["test"]
    values = predicted["prediction"].to_numpy()
    assert report["test"]["rmse"] == pytest.approx(root_mean_squared_error(target, values))
    assert report["test"]["mae"] == pytest.approx(mean_absolute_error(target, values))
    assert 0.3 * target.std() < report["test"]["rmse"] < 2 * target.std()  # mg/dL
    # baselines learn the same log target and are scored in mg/dL too
    for baseline in report["baselines"]["rows"][1:]:
        assert 0.3 * target.std() < baseline["test"]["rmse"] < 2 * target.std()
    # predictions stay within the non-test rows' target range, even far outside the data
    prepared = prepare_data(load_run_config(run_dir))
    y_rest = prepared.y[prepared.train_idx]
    # ONNX's outputs are torch's, relative to the target's scale in its own units
    assert report["onnx_check"]["scale"] == pytest.approx(float(np.std(y_rest)))
    low, high = model.manifest["prediction_range"]
    assert (low, high) == pytest.approx((y_rest.min(), y_rest.max()))
    assert low > 0 and values.min() > 0
    extreme = pd.concat([rows * 50, rows * -50], ignore_index=True)
    values = model.predict(extreme)["prediction"]
    assert values.min() >= low - 1e-3 and values.max() <= high + 1e-3
    assert np.isclose(values, low, rtol=1e-4).any() or np.isclose(values, high, rtol=1e-4).any()


def test_a_users_module_is_exported(ray_local, user_model_cfg):
    from hpo.export.pipeline import export_best
    from hpo.sweep import run_sweep

    cfg = user_model_cfg(
        "user_models.TinyLinear",
        {"optim.lr": "tag(log, interval(1e-2, 3e-1))"},
        "data=wine",
        "trainer.max_epochs=3",
        "budget.num_samples=2",
        "scheduler=fifo",
        width=8,
    )
    result = run_sweep(cfg, stream=None)
    exported = export_best(result.run_dir, prepared=result.prepared, sweep_wall_s=result.wall_s)
    report = exported.report
    assert report["onnx_check"]["passed"] and report["test"]["accuracy"] > 0.5
    assert load_model(exported.best_dir).manifest["model_target"] == "user_models.TinyLinear"


def test_predict_on_rows_of_one_class_scores_the_classes_present(iris_run, tmp_path, capsys):
    run_dir, _ = iris_run
    rows, target = _test_rows(run_dir)
    model = load_model(run_dir / "best")
    predicted = model.predict_cleaned(rows)["prediction"]
    right = (predicted == target).to_numpy()
    label = target[right].value_counts().index[0]  # a class the model gets right
    picked = right & (target == label).to_numpy()
    source = tmp_path / "one_class.csv"
    rows[picked].assign(target=target[picked]).head(5).to_csv(source, index=False)
    out = tmp_path / "o.csv"
    assert main(["predict", str(run_dir / "best"), str(source), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy 1.0000" in printed and "f1_macro 1.0000" in printed
    absent = [c for c in model.classes if c != label]
    assert f"no row of the input is {', '.join(repr(c) for c in absent)}" in printed
