"""The Pareto front and the export's pick, on a real trials table: rows a real FoldTrainer
reported for five architectures on iris (no Ray), checked against a brute-force front."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from hpo.config import validate_config
from hpo.data import prepare_data
from hpo.export.pareto import pareto_front
from hpo.sweep.results import choose_best
from hpo.train import FoldTrainer

OBJECTIVES = ["metric=[val_accuracy,param_count]", "mode=[max,min]", "searcher=nsga2"]
ARCHITECTURES = [(4, 1), (16, 1), (64, 2), (8, 2), (128, 3), (32, 1)]
SPACE = ["model.hidden_dim", "model.num_layers"]


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    """(config, trials table) of real training: one trial per architecture, every epoch."""
    from hpo.config import compose_config

    out = tmp_path_factory.mktemp("pareto")
    cfg, _ = compose_config(
        ["data=iris", "cv.folds=2", "trainer.max_epochs=3", "optim.lr=0.02",
         f"output_dir={out}", *OBJECTIVES]
    )  # fmt: skip
    prepared = prepare_data(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a trial with resources.cpus_per_trial=1 runs
    rows = []
    for index, (hidden, layers) in enumerate(ARCHITECTURES):
        model = {**plain["model"], "hidden_dim": hidden, "num_layers": layers}
        trainer = FoldTrainer(prepared.trial_data, model, plain["optim"], plain["trainer"], seed=0)
        while not trainer.finished:
            summary = trainer.run_epoch()
            rows.append(
                {"trial_id": f"t{index}", "trial_index": index, "status": "completed",
                 "epoch": summary.epoch, "model.hidden_dim": hidden, "model.num_layers": layers,
                 **summary.metrics}
            )  # fmt: skip
    torch.set_num_threads(threads)
    return cfg, pd.DataFrame(rows)


def with_pick(cfg, **export):
    plain = OmegaConf.to_container(cfg)
    plain["export"] = {**plain.get("export", {}), **export}
    return validate_config(plain)


def brute_front(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """trial -> (accuracy, params) at its best-accuracy epoch, kept if nothing dominates it."""
    points = {}
    for trial, rows in frame[frame["status"] != "failed"].groupby("trial_id"):
        row = rows.loc[rows["val_accuracy"].idxmax()]
        points[trial] = (row["val_accuracy"], row["param_count"])

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    return {t: p for t, p in points.items() if not any(dominates(q, p) for q in points.values())}


def test_trials_report_cost_objectives(trials):
    _, frame = trials
    assert (frame["latency_ms"] > 0).all() and frame["latency_ms"].notna().all()
    params = frame.groupby("trial_id")["param_count"].first()
    assert params["t4"] > params["t2"] > params["t1"] > params["t0"]  # wider, deeper: more


def test_front_is_the_non_dominated_set(trials):
    cfg, frame = trials
    points, front, choice = pareto_front(frame, cfg)
    expected = brute_front(frame)
    assert set(front["trial_id"]) == set(expected) and len(points) == len(ARCHITECTURES)
    assert choice["front_size"] == len(expected) and front["chosen"].sum() == 1


def test_each_rule_picks_its_point(trials):
    cfg, frame = trials
    front = brute_front(frame)
    acc = [a for a, _ in front.values()]
    par = [p for _, p in front.values()]

    def scaled(value, values, flip):
        span = max(values) - min(values) or 1.0
        return (max(values) - value) / span if flip else (value - min(values)) / span

    first = choose_best(frame, with_pick(cfg, pareto_pick="first_objective"), SPACE)
    assert first["pareto"]["values"]["val_accuracy"] == max(acc)
    smallest = choose_best(
        frame, with_pick(cfg, pareto_pick="weights", pareto_weights=[0, 1]), SPACE
    )
    assert smallest["pareto"]["values"]["param_count"] == min(par)
    knee = choose_best(frame, with_pick(cfg), SPACE)  # the default rule
    distance = {
        t: math.hypot(scaled(a, acc, True), scaled(p, par, False)) for t, (a, p) in front.items()
    }
    assert distance[knee["trial_id"]] == pytest.approx(min(distance.values()))
    assert knee["pareto"]["rule"] == "knee" and "export.pareto_pick=knee" in knee["pareto"]["why"]
    # best_trial.json's usual content, for the chosen trial at its best-accuracy epoch
    rows = frame[frame["trial_id"] == knee["trial_id"]]
    assert knee["cv_mean"] == rows["val_accuracy"].max() and knee["metric"] == "val_accuracy"


def test_a_failed_trial_is_never_on_the_front(trials):
    cfg, frame = trials
    top = frame.loc[frame["val_accuracy"].idxmax(), "trial_id"]
    failed = frame.assign(status=frame["status"].where(frame["trial_id"] != top, "failed"))
    _, front, _ = pareto_front(failed, cfg)
    assert top not in set(front["trial_id"])
    assert set(front["trial_id"]) == set(brute_front(failed))
