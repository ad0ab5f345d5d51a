"""One real multi-objective sweep, `hpo sweep` to the export: NSGA-II on accuracy and
latency under ASHA. The study has both directions, every trial both values, the
exported point is the one the chosen rule picks from a non-dominated front."""

from __future__ import annotations

import contextlib
import io
import json
import math

import optuna
import pandas as pd
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from hpo.cli import main
from hpo.sweep.optuna_bridge import JOURNAL_FILE, StudySearcher, load_run_study

SWEEP = [
    "data=iris",
    "cv.folds=2",
    "trainer.max_epochs=3",
    "budget.num_samples=4",
    "budget.max_concurrent_trials=2",
    "scheduler.grace_period=1",
    "scheduler.reduction_factor=2",
    "searcher=nsga2",
    "searcher.population_size=2",
    "metric=[val_accuracy,latency_ms]",
    "mode=[max,min]",
    "search_space.model.hidden_dim=choice(4, 256)",
    "search_space.model.activation=null",
    "export.pareto_pick=weights",
    "export.pareto_weights=[1,1]",
    "export.baselines=false",
    "export.calibration=none",
    "export.permutation_repeats=1",
]


def points(trials: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Each trial's (accuracy, latency) at its best-accuracy epoch."""
    out = {}
    for trial, rows in trials.groupby("trial_id"):
        row = rows.loc[rows["val_accuracy"].idxmax()]
        out[trial] = (float(row["val_accuracy"]), float(row["latency_ms"]))
    return out


@pytest.mark.slow
def test_nsga2_sweep_exports_the_weighted_pareto_point(ray_local, tmp_path):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["sweep", *SWEEP, f"output_dir={tmp_path}"])
    assert code == 0, printed.getvalue()
    (run_dir,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]

    study = load_run_study(run_dir / JOURNAL_FILE)
    assert len(study.directions) == 2 and len(study.trials) == 4
    # imputed (nsga2.yaml): the stopped trials are COMPLETE too, with both values
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)

    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert trials[["latency_ms", "param_count"]].notna().all().all()
    seen = points(trials)
    front = {
        t: p
        for t, p in seen.items()
        if not any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in seen.values())
    }
    table = pd.read_csv(run_dir / "best" / "pareto.csv")
    assert set(table["trial_id"]) == set(front)

    def scaled(value, values, flip):
        span = max(values) - min(values) or 1.0
        return (max(values) - value) / span if flip else (value - min(values)) / span

    acc, lat = [a for a, _ in front.values()], [b for _, b in front.values()]
    score = {t: scaled(a, acc, True) + scaled(b, lat, False) for t, (a, b) in front.items()}
    best = json.loads((run_dir / "best_trial.json").read_text())
    assert math.isclose(score[best["trial_id"]], min(score.values()), abs_tol=1e-9)
    assert table.loc[table["chosen"], "trial_id"].tolist() == [best["trial_id"]]
    report = json.loads((run_dir / "best" / "report.json").read_text())
    assert report["pareto"]["trial_id"] == best["trial_id"] == report["best_trial"]["trial_id"]
    assert "Pareto front" in (run_dir / "best" / "report.html").read_text()
    assert (run_dir / "best" / "plots" / "pareto_front.png").stat().st_size > 0
    assert f"chosen: {best['trial_id']}" in printed.getvalue()
    assert "export.pareto_pick=weights" in printed.getvalue()


def test_tpe_over_two_directions_samples_past_stopped_trials(tmp_path):
    """Multi-objective TPE with PRUNED trials in its history (Optuna ranks pruned trials
    by intermediate values through the single-objective ``study.direction``: the bridge
    keeps multi-objective curves in a user attribute instead). No Ray: the searcher alone."""
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=2)
    searcher = StudySearcher(
        {"model.hidden_dim": IntDistribution(4, 256)}, "val_accuracy", "max", sampler,
        tmp_path / JOURNAL_FILE, objectives=[("val_accuracy", "max"), ("latency_ms", "min")],
    )  # fmt: skip
    for i in range(6):
        hidden = searcher.suggest(f"t{i}")["model.hidden_dim"]
        result = {"val_accuracy": hidden / 300, "latency_ms": hidden / 100.0, "epoch": 1}
        searcher.on_trial_complete(f"t{i}", {**result, "trial_finished": i % 2 == 0})
    states = [t.state for t in searcher.study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED] * 3
    assert all(len(t.values) == 2 for t in searcher.study.trials if t.values)


LIGHTNING_SWEEP = [
    "model=lightning",
    "model._target_=lightning_models.LitDigits",
    "data=lightning",
    "data._target_=lightning_models.DigitsDataModule",
    "model.lr=0.01",
    "model.hidden=choice(4, 128)",
    "metric=[val_acc,latency_ms,param_count]",
    "mode=[max,min,min]",
    "cv.folds=2",
    "trainer.max_epochs=2",
    "budget.num_samples=4",
    "budget.max_concurrent_trials=2",
    "scheduler=fifo",
    "searcher=nsga2",
    "searcher.population_size=2",
    "cluster.num_cpus=2",
    "export.baselines=false",
]


@pytest.mark.slow
def test_lightning_sweep_has_latency_and_size_as_objectives(ray_local, tmp_path):
    """A user's LightningModule on the Lightning path: every trial reports latency_ms and
    the module's real parameter count, and the export writes the front over them."""
    from lightning_models import LitDigits

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["sweep", *LIGHTNING_SWEEP, f"run_dir={tmp_path / 'run'}"])
    assert code == 0, printed.getvalue()
    run_dir = tmp_path / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    reported = trials[trials["epoch"] > 0]
    assert reported["trial_id"].nunique() == 4
    assert (reported["latency_ms"] > 0).all()
    hidden = [c for c in reported.columns if c.endswith("model.hidden")][0]
    for size, rows in reported.groupby(hidden):
        real = sum(p.numel() for p in LitDigits(hidden=int(size)).parameters())
        assert (rows["param_count"] == real).all(), (size, rows["param_count"].unique())
    study = load_run_study(run_dir / JOURNAL_FILE)
    assert len(study.directions) == 3
    assert all(len(t.values) == 3 for t in study.trials if t.state == TrialState.COMPLETE)
    table = pd.read_csv(run_dir / "best" / "pareto.csv")
    assert {"val_acc", "latency_ms", "param_count"} <= set(table.columns) and len(table) >= 1
    best = json.loads((run_dir / "best_trial.json").read_text())
    assert table.loc[table["chosen"], "trial_id"].tolist() == [best["trial_id"]]
    assert (run_dir / "best" / "plots" / "pareto_front.png").stat().st_size > 0
