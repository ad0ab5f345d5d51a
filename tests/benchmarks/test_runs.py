"""Runs of the harness: the native baseline and the test-score refit without Ray, then one
tiny comparison on a real local Ray (synthetic and wine), checked for its invariants."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from benchmarks.anytime import AnytimeLog
from benchmarks.compare import run_comparison
from benchmarks.definitions import BENCHMARKS, shrink
from benchmarks.methods import METHODS, RANDOM_BASELINE
from benchmarks.model_task import ModelObjective
from benchmarks.native_optuna import run_native_optuna
from benchmarks.report import write_results
from benchmarks.synthetic import Hartmann6Objective, regret
from hpo.config import compose_config


def assert_epochs_contiguous(frame: pd.DataFrame) -> None:
    """Every trial reports epochs 1, 2, ... once each: none lost, none repeated on resume."""
    for trial_id, trial in frame.groupby("trial_id"):
        assert list(trial["epoch"]) == list(range(1, len(trial) + 1)), trial_id


def test_native_optuna_prunes_and_spends_exactly_the_budget():
    definition = BENCHMARKS["hartmann6"]
    cfg, _ = compose_config(definition.hydra_overrides(0))
    objective = Hartmann6Objective(definition.max_epochs, noise_seed=0)
    log = run_native_optuna(objective, cfg, AnytimeLog(objective.metric, 60, None), 1)
    frame = log.frame()
    assert len(frame) == log.epochs_spent == 60
    assert frame["trial_id"].nunique() > 60 / definition.max_epochs  # HyperbandPruner pruned
    assert frame["finished"].any()  # and some trials reached the top fidelity
    assert_epochs_contiguous(frame)


def test_a_model_task_reports_like_hpo_trials_and_scores_on_the_test_rows():
    cfg, _ = compose_config([*BENCHMARKS["wine"].hydra_overrides(0), "trainer.max_epochs=3"])
    objective = ModelObjective(cfg)
    params = {"optim.lr": 0.01, "model.hidden_dim": 32}
    reports = list(objective.epochs(params))
    assert [r["epoch"] for r in reports] == [1, 2, 3] and reports[-1]["trial_finished"]
    assert all(math.isfinite(r["val_loss"]) for r in reports)
    scores = objective.test_scores(params, epoch=3)
    assert 0.0 <= scores["test_accuracy"] <= 1.0 and scores["test_loss"] > 0
    # held-out rows: stratified 20% of wine's 178
    assert len(objective.prepared.test_idx) == 36


@pytest.mark.slow
def test_a_tiny_comparison_tags_every_result_and_keeps_budgets(ray_local, tmp_path):
    definitions = [shrink(BENCHMARKS["hartmann6"], 0.1), shrink(BENCHMARKS["wine"], 0.2)]
    names = ["asha_tpe", "asha_tpe_stock", "hyperband_tpe", RANDOM_BASELINE, "optuna_native"]
    runs, curves = run_comparison(definitions, [METHODS[n] for n in names], [0], stream=None)

    assert "error" not in runs or runs["error"].isna().all()
    assert sorted(zip(runs["task"], runs["method"])) == sorted(
        (d.name, n) for d in definitions for n in names
    )
    budgets = {d.name: d.epoch_budget for d in definitions}
    for (task, method, _seed), curve in curves.groupby(["task", "method", "seed"]):
        assert list(curve["cum_epochs"]) == list(range(1, budgets[task] + 1)), (task, method)
        assert curve["best_so_far"].is_monotonic_decreasing
        assert_epochs_contiguous(curve)
    assert (runs["epochs_spent"] == runs["task"].map(budgets)).all()
    assert (runs["budget_hit"] == "epochs").all()
    for _, group in runs.groupby(["task", "seed"]):
        assert sorted(group["rank_cv"]) == pytest.approx(sorted(group["rank_cv"]))
        assert group["rank_cv"].sum() == pytest.approx(len(names) * (len(names) + 1) / 2)
    assert (runs.loc[runs["method"] == RANDOM_BASELINE, "ttt_ratio"] <= 1).all()

    synthetic = runs[runs["task"] == "hartmann6"].set_index("method")
    for method, row in synthetic.iterrows():
        assert row["test_score"] == pytest.approx(regret(json.loads(row["params"]))), method
        assert row["test_score"] >= 0
        last = curves[(curves["task"] == "hartmann6") & (curves["method"] == method)].iloc[-1]
        assert last["incumbent_regret"] == pytest.approx(row["test_score"])
    assert synthetic.loc["asha_tpe", "trials"] > synthetic.loc["asha_tpe", "completed"]
    wine = runs[runs["task"] == "wine"]
    assert wine["test_score"].between(0, 1).all() and (wine["test_metric"] == "test_accuracy").all()

    write_results(runs, curves, tmp_path, "# tiny\n")
    assert pd.read_parquet(tmp_path / "runs.parquet").shape[0] == len(runs)
    assert pd.read_parquet(tmp_path / "curves.parquet").shape[0] == len(curves)
    summary = (tmp_path / "summary.md").read_text()
    assert "| task | method | CV score |" in summary and "![anytime curves]" in summary
    assert (tmp_path / "anytime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary.startswith("# tiny") and "| wine | val_loss (min) |" in summary
