"""Composing the real config: every group loads, bad keys and types fail naming the key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from hpo.cli import main
from hpo.config import compose_config, conf_dir
from hpo.config.compose import load_run_config
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
    extra = []
    if override in ("model=lightning", "data=lightning"):  # a user's classes, swept
        extra = [*LIGHTNING, "model.lr=tag(log, interval(1e-3, 1e-1))"]
    if override == "scheduler=pbt":  # PBT draws its first population at random
        extra = ["searcher=random"]
    if override in FINETUNE_IMAGE:  # the fine-tuning module goes with its data source
        extra = [o for o in FINETUNE_IMAGE[:2] if o != override]
    if override in ("model=finetune_text", "data=text", "search_space=finetune_text"):
        extra = ["model=finetune_text", "data=text", "model.pretrained=/models/bert",
                 "data.path=texts.csv"]  # fmt: skip
    cfg, _ = compose_config([override, *extra])
    assert cfg.search_space  # every composed config carries a search space


FINETUNE_IMAGE = ("model=finetune_image", "data=images", "search_space=finetune_image")
LIGHTNING = [
    "model=lightning",
    "model._target_=lightning_models.LitDigits",
    "data=lightning",
    "data._target_=lightning_models.DigitsDataModule",
]


def test_constructor_keys_of_user_classes_need_no_plus():
    cfg, _ = compose_config(
        [
            *LIGHTNING,
            "model.hidden=16",
            "data.batch_size=choice(32, 64)",
            "model.lr=tag(log, interval(1e-3, 1e-1))",
        ]
    )
    assert cfg.model.hidden == 16
    assert cfg.search_space["data.batch_size"] == "choice(32, 64)"
    assert set(cfg.search_space) == {"data.batch_size", "model.lr"}  # no MLP space here


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("model.hiden=16", ["model.hiden", "hidden"]),  # a typo lists the real keys
        ("data.batchsize=32", ["data.batchsize", "batch_size"]),
        ("model._target_=lightning_models.Nowhere", ["model._target_", "Nowhere"]),
        ("resources.gpus_per_trial=1.5", ["resources.gpus_per_trial"]),
        ("+trainer.kwargs.devices=2", ["trainer.kwargs.devices", "gpus_per_trial"]),
    ],
)
def test_bad_lightning_config_fails_naming_the_key(override, names):
    with pytest.raises(ConfigError) as info:
        compose_config([*LIGHTNING, override, "model.lr=tag(log, interval(1e-3, 1e-1))"])
    for name in names:
        assert name in str(info.value)


def test_a_datamodule_with_the_tabular_mlp_points_to_model_lightning():
    with pytest.raises(ConfigError, match="model=lightning"):
        compose_config(LIGHTNING[2:] + ["optim.lr=tag(log, interval(1e-3, 1e-1))"])


@pytest.mark.parametrize(
    "override",
    [
        "trainer.precision=16-mixed",
        "trainer.accumulate_grad_batches=2",
        "resources.gpus_per_trial=2",
    ],
)
def test_the_tabular_engine_refuses_what_it_would_ignore(override):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert override.split("=")[0] in str(info.value)


def test_config_dir_adds_to_hpos_conf_instead_of_replacing_it(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "digits_net.yaml").write_text(
        "_target_: lightning_models.LitDigits\nname: digits_net\nhidden: 24\n"
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mlp_is_shadowed.yaml").write_text("name: x\nsource: builtin\n")
    cfg, _ = compose_config(
        [
            "model=digits_net",
            "data=lightning",
            "data._target_=lightning_models.DigitsDataModule",
            "model.lr=tag(log, interval(1e-3, 1e-1))",
            "searcher=random",
        ],
        config_dir=tmp_path,
    )
    assert cfg.model.hidden == 24 and cfg.searcher.name == "random"  # hpo's groups still there
    (tmp_path / "searcher").mkdir()
    (tmp_path / "searcher" / "tpe.yaml").write_text("name: tpe\nn_startup_trials: 3\n")
    cfg, _ = compose_config(["searcher=tpe"], config_dir=tmp_path)
    assert cfg.searcher.n_startup_trials == 3  # the user's file comes first


def test_expected_groups_exist():
    assert {"digits", "breast_cancer", "wine", "iris"} <= set(GROUPS["data"])
    assert {"tpe", "random", "grid", "gp", "cmaes"} <= set(GROUPS["searcher"])
    assert {"asha", "hyperband", "fifo"} <= set(GROUPS["scheduler"])
    assert {"lightning", "mlp", "finetune_image", "finetune_text"} <= set(GROUPS["model"])
    assert "local" in GROUPS["cluster"] and "text" in GROUPS["data"]


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


def test_hydra_run_dir_sets_the_run_directory_and_other_hydra_keys_are_refused(tmp_path):
    cfg, _ = compose_config([f"hydra.run.dir={tmp_path / 'here'}"])
    assert cfg.run_dir == str(tmp_path / "here")
    for override in ("hydra.job.chdir=true", "hydra.sweep.dir=x", "+hydra.verbose=true"):
        with pytest.raises(ConfigError) as info:
            compose_config([override])
        assert override.lstrip("+").split("=")[0] in str(info.value)
        assert "hydra.run.dir" in str(info.value)


def test_sweep_help_lists_the_real_config_groups_and_keys(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for group, options in GROUPS.items():
        line = next(x for x in out.splitlines() if x.strip().startswith(group + " "))
        assert all(option in line for option in options)
    assert "test_size" in out and "resources" in out


def test_a_run_config_from_before_target_transform_keeps_the_target_as_is(tmp_path):
    # a run directory written before data.target_transform existed learned the raw target:
    # resuming it must not switch to auto's log part-way
    cfg, _ = compose_config(["data=diabetes"])
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["data"]["target_transform"]
    OmegaConf.save(OmegaConf.create(saved), tmp_path / "config.yaml")
    assert load_run_config(tmp_path).data.target_transform == "none"
    saved["data"]["target_transform"] = "log"
    OmegaConf.save(OmegaConf.create(saved), tmp_path / "config.yaml")
    assert load_run_config(tmp_path).data.target_transform == "log"
