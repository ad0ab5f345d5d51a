"""hpo's schedulers without a sweep: their decisions against Ray's own ASHA bracket, and
their state surviving a save and load (as it does across `hpo resume`)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket  # the reference, in tests only

from hpo.config import compose_config
from hpo.errors import ConfigError
from hpo.sweep.asha import Rungs, SuccessiveHalving
from hpo.sweep.factories import make_scheduler
from hpo.sweep.median import MedianStopping


def trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id)


@pytest.mark.parametrize("s", [0, 1, 2])
def test_rungs_decide_as_rays_asha_bracket(s):
    ours, rays = Rungs(1, 27, 3, s), _Bracket(1, 27, 3, s)
    rng = random.Random(s)
    decisions = []
    for step in range(300):
        trial_id, epoch = f"t{rng.randrange(40)}", rng.randrange(1, 28)
        reward = rng.random()
        mine = ours.judge(trial_id, epoch, reward)
        assert mine == rays.on_result(trial(trial_id), epoch, reward), step
        decisions.append(mine)
    assert TrialScheduler.STOP in decisions and TrialScheduler.CONTINUE in decisions


def feed(scheduler, results):
    return [
        scheduler.on_trial_result(None, trial(t), {"epoch": e, "val_loss": v})
        for t, e, v in results
    ]


def test_successive_halving_state_round_trips_and_decides_the_same():
    rng = random.Random(0)
    results = [(f"t{rng.randrange(12)}", rng.randrange(1, 10), rng.random()) for _ in range(80)]
    first = SuccessiveHalving(
        "val_loss", "min", max_t=9, grace_period=1, reduction_factor=2, brackets=3
    )
    feed(first, results[:40])
    restored = SuccessiveHalving(
        "val_loss", "min", max_t=9, grace_period=1, reduction_factor=2, brackets=3
    )
    restored.load_state_dict(first.state_dict())
    assert feed(restored, results[40:]) == feed(first, results[40:])
    assert restored.state_dict() == first.state_dict()


def test_median_stopping_stops_the_worse_trial_and_round_trips():
    median = MedianStopping("val_loss", "min", grace_period=1, min_samples=2)
    feed(median, [("a", 1, 0.5), ("a", 2, 0.4), ("b", 1, 0.6), ("b", 2, 0.5)])
    restored = MedianStopping("val_loss", "min", grace_period=1, min_samples=2)
    restored.load_state_dict(median.state_dict())
    # c's best (0.9) is worse than the median running mean of a and b at epoch 1 (0.55)
    assert feed(restored, [("c", 1, 0.9)]) == [TrialScheduler.STOP]
    assert feed(restored, [("d", 1, 0.3)]) == [TrialScheduler.CONTINUE]
    assert restored.stopped == {"c": 1}


def test_bohb_is_tpe_with_hyperband_brackets_and_refuses_another_searcher():
    cfg, _ = compose_config(["scheduler=bohb"])
    assert cfg.searcher.name == "tpe"
    scheduler = make_scheduler(cfg)
    assert isinstance(scheduler, SuccessiveHalving) and len(scheduler.brackets) == 3
    with pytest.raises(ConfigError, match="searcher.name"):
        compose_config(["scheduler=bohb", "searcher=gp"])


def test_pbt_refuses_a_space_it_cannot_explore():
    from hpo.space import build_search_space
    from hpo.sweep.runner import check_before_ray

    cfg, _ = compose_config(
        [
            "data=iris",
            "scheduler=pbt",
            "searcher=random",
            "search_space.optim.lr=null",
            "search_space.optim.weight_decay=null",
            "search_space.model.dropout=null",
        ]
    )
    space, _ = build_search_space(cfg.search_space)
    with pytest.raises(ConfigError, match="pbt explores continuous keys"):
        check_before_ray(cfg, space, "classification")


def test_replay_of_the_recorded_rows_rebuilds_the_rungs_of_the_live_sweep():
    rng = random.Random(1)
    rows = []
    for index in range(10):
        for epoch in range(1, rng.randrange(2, 10)):
            rows.append(
                {
                    "event": "result",
                    "trial_id": f"t{index}",
                    "trial_index": index,
                    "epoch": epoch,
                    "val_loss": rng.random(),
                }
            )
    live = SuccessiveHalving(
        "val_loss", "min", max_t=9, grace_period=1, reduction_factor=2, brackets=2
    )
    for index in range(10):
        live.on_trial_add(None, trial(f"t{index}"))
    feed(live, [(r["trial_id"], r["epoch"], r["val_loss"]) for r in rows])
    rebuilt = SuccessiveHalving(
        "val_loss", "min", max_t=9, grace_period=1, reduction_factor=2, brackets=2
    )
    rebuilt.replay(rows + rows[-5:])  # rows seen twice (a re-run epoch) count once
    assert rebuilt.state_dict()["rungs"] == live.state_dict()["rungs"]
    assert rebuilt.trial_bracket == live.trial_bracket
