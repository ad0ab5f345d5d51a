"""Composing the real config: every group loads, bad keys and types fail naming the key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from hpo.cli import main
from hpo.config import compose_config, conf_dir
from hpo.errors import ConfigError, SearchSpaceError

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in conf_dir().iterdir()
    if group.is_dir()
}


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group, options in GROUPS.items() for option in options],
)
def test_every_config_group_option_composes_and_validates(override):
    cfg, _ = compose_config([override])
    assert cfg.search_space  # every composed config carries a search space


def test_expected_groups_exist():
    assert {"digits", "breast_cancer", "wine", "iris"} <= set(GROUPS["data"])
    assert {"tpe", "random", "grid", "gp", "cmaes"} <= set(GROUPS["searcher"])
    assert {"asha", "hyperband", "fifo"} <= set(GROUPS["scheduler"])
    assert GROUPS["model"] == ["mlp"] and "local" in GROUPS["cluster"]


def test_cli_sweep_expression_enters_the_search_space():
    cfg, sweeps = compose_config(
        ["optim.lr=tag(log, interval(1e-4, 3e-2))", "model.num_layers=range(1,4)"]
    )
    assert sweeps["optim.lr"] == "tag(log, interval(1e-4, 3e-2))"
    assert cfg.search_space["optim.lr"] == "tag(log, interval(1e-4, 3e-2))"
    assert cfg.search_space["model.num_layers"] == "range(1,4)"
    assert cfg.optim.lr == 1e-3  # the fixed value stays; the sweep decides per trial


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs"),
        ("model.hidden_dim=wide", "model.hidden_dim"),
        ("mode=up", "mode"),
        ("cv.folds=1", "cv.folds"),
        ("test_size=1.5", "test_size"),
        ("resources.cpus_per_trial=0", "resources.cpus_per_trial"),
        ("+model.unknown_key=1", "unknown_key"),
    ],
)
def test_wrong_type_or_value_names_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert key in str(info.value)


def test_unknown_key_and_group_option_fail_with_hydra_hint():
    with pytest.raises(ConfigError, match="foo"):
        compose_config(["foo=1"])
    with pytest.raises(ConfigError, match="searcher/nope"):
        compose_config(["searcher=nope"])


def test_search_space_key_must_be_a_config_key():
    with pytest.raises(ConfigError, match="model.width"):
        compose_config(["model.width=choice(1,2)"])


def test_bad_sweep_expression_fails_before_anything_runs():
    with pytest.raises(SearchSpaceError, match="optim.lr"):
        compose_config(["optim.lr=tag(log, interval(0, 1))"])


def test_cli_cfg_job_prints_composed_config(capsys):
    assert main(["sweep", "--cfg", "job", "data=wine", "model.hidden_dim=choice(8,16)"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.data.name == "wine"
    assert printed.search_space["model.hidden_dim"] == "choice(8,16)"


def test_cli_reports_config_error_in_one_line(capsys):
    assert main(["sweep", "trainer.max_epochs=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hpo: error:") and "trainer.max_epochs" in err
    assert "Traceback" not in err


def test_search_space_keys_with_dots_can_be_dropped_or_set():
    cfg, _ = compose_config(["search_space.optim.weight_decay=null"])
    assert "optim.weight_decay" not in cfg.search_space
    cfg, _ = compose_config(["~search_space.model.dropout"])
    assert "model.dropout" not in cfg.search_space
    assert "optim.lr" in cfg.search_space
    cfg, _ = compose_config(["search_space.optim.lr=interval(0.01, 0.1)"])
    assert cfg.search_space["optim.lr"] == "interval(0.01, 0.1)"
