"""Several objectives: metric=[a,b] mode=[max,min] composes, round-trips through a saved
config, and bad forms fail before Ray naming the key. No Ray here."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from hpo.config import compose_config, validate_config
from hpo.config.objectives import objectives
from hpo.errors import ConfigError
from hpo.space import build_search_space
from hpo.sweep.runner import check_before_ray

TWO = ["metric=[val_accuracy,latency_ms]", "mode=[max,min]"]


def test_lists_become_objectives_and_the_first_stays_metric():
    cfg, _ = compose_config([*TWO, "searcher=nsga2"])
    assert objectives(cfg) == [("val_accuracy", "max"), ("latency_ms", "min")]
    assert (cfg.metric, cfg.mode) == ("val_accuracy", "max")  # what the schedulers follow
    again = validate_config(OmegaConf.to_container(cfg))  # the run's config.yaml, reloaded
    assert objectives(again) == objectives(cfg)


def test_one_objective_keeps_the_plain_form():
    cfg, _ = compose_config(["metric=[val_accuracy]", "mode=[max]"])
    assert (cfg.metric, cfg.mode, list(cfg.objectives)) == ("val_accuracy", "max", [])
    plain, _ = compose_config([])
    assert objectives(plain) == [("val_loss", "min")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["metric=[val_accuracy,latency_ms]", "mode=max"], "config key `mode`: metric lists 2"),
        (["metric=[val_accuracy,latency_ms]", "mode=[max,min,min]"], "3 directions for 2"),
        (["metric=[val_accuracy,latency_ms]", "mode=[max,lowest]"], "must be min or max"),
        (["metric=[val_accuracy,val_accuracy]", "mode=[max,max]"], "listed twice"),
        ([*TWO, "searcher=cmaes"], "config key `searcher.name`: cmaes optimizes one"),
        ([*TWO, "searcher.bridge=stock"], "config key `searcher.bridge`"),
        ([*TWO, "scheduler=pbt", "searcher=random"], "config key `scheduler.name`: pbt"),
        (["searcher=nsga2", "searcher.population_size=1"], "searcher.population_size"),
    ],
)
def test_bad_objectives_fail_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose_config(overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["metric=[val_accuracy,val_latency]", "mode=[max,min]"], "'val_latency' is not reported"),
        ([*TWO, "export.pareto_pick=nearest"], "config key `export.pareto_pick`"),
        ([*TWO, "export.pareto_pick=weights"], "needs one weight per objective"),
        ([*TWO, "export.pareto_weights=[1,2,3]"], "needs 2 non-negative weights"),
    ],
)
def test_unknown_objective_or_pick_fails_before_ray(overrides, message):
    cfg, _ = compose_config([*overrides, "searcher=nsga2"])
    space, _ = build_search_space(cfg.search_space)
    with pytest.raises(ConfigError, match=message):
        check_before_ray(cfg, space, "classification")
