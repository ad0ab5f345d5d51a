"""Compose the Hydra config from conf/ and the command line, then validate it.

Sweep expressions on the command line (``optim.lr=tag(log, interval(...))``) are split
off before composing and go into the search space; plain overrides are Hydra's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo.config.objectives import normalize_objectives
from hpo.config.schema import (
    LIGHTNING_TRAINER_KEYS,
    DataConfig,
    HPOConfig,
    MLPConfig,
    register_schemas,
)
from hpo.config.targets import (
    BUILTIN_MODEL,
    DATA_OWN_KEYS,
    MODEL_OWN_KEYS,
    check_constructor_keys,
    is_lightning_data,
    takes_key,
)
from hpo.errors import ConfigError
from hpo.rundir import CONFIG as RUN_CONFIG
from hpo.space import build_search_space, split_overrides

PRIMARY = "hpo_config"  # hpo's config.yaml in the ConfigStore, under a user's --config-dir
SEARCHERS = ("tpe", "random", "grid", "gp", "cmaes", "nsga2")
SCHEDULERS = ("asha", "hyperband", "bohb", "median", "pbt", "fifo")
STOPPED_AS = ("pruned", "imputed")
CV_STRATEGIES = ("auto", "stratified", "kfold", "group")


def conf_dir() -> Path:
    """conf/ of a source checkout if there is one, else the copy shipped in the package."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "conf", here.parents[1] / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(
        "cannot find hpo's conf/ directory (config.yaml); reinstall the package with "
        "`pip install .` or run from a source checkout."
    )


def compose_config(
    overrides: list[str] | tuple[str, ...] = (), config_dir: str | Path | None = None
) -> tuple[DictConfig, dict[str, str]]:
    """Compose the config with plain overrides, returning it with the CLI sweep expressions.

    Args:
        overrides: command-line overrides in Hydra's grammar.
        config_dir: a conf/ directory to use instead of hpo's own.

    Returns:
        ``(cfg, sweeps)``: the validated config (its ``search_space`` node already holds
        the CLI sweeps) and the sweep expressions by key as given.
    """
    plain, sweeps = split_overrides(overrides)
    plain = _hydra_overrides(plain)
    # `search_space.optim.lr=...` names a key of the space whose own name has dots; Hydra
    # would read it as a nested path, so these overrides are applied to the node here.
    space_edits = {}
    for text in [t for t in plain if t.split("=", 1)[0].lstrip("~+").startswith("search_space.")]:
        plain.remove(text)
        key, _, value = text.partition("=")
        space_key = key.lstrip("~+").removeprefix("search_space.")
        space_edits[space_key] = None if key.startswith("~") or value in ("null", "") else value
    plain = _user_keys_without_plus(plain, config_dir)
    cfg = _compose(plain, config_dir)
    OmegaConf.set_struct(cfg, False)
    node = cfg.get("search_space")  # none for a model without conf/search_space/<model>.yaml
    space_node = dict(OmegaConf.to_container(node, resolve=True)) if node else {}
    space_node.update(space_edits)
    for key, expression in sweeps.items():
        key = key.removeprefix("search_space.")
        # `+model.key=choice(...)` adds a key to a user model; a constructor key of a user
        # class (Lightning path) needs no `+`.
        plus, key = key.startswith("+"), key.lstrip("+")
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and (
            plus or _constructor_key(cfg, key)
        ):
            OmegaConf.update(cfg, key, None, force_add=True)
        space_node[key] = expression
    cfg.search_space = {k: v for k, v in space_node.items() if v is not None}
    for key in cfg.search_space:  # a space file's keys of a user class's constructor, too
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and _constructor_key(
            cfg, key
        ):
            OmegaConf.update(cfg, key, None, force_add=True)
    return validate_config(cfg), sweeps


# Hydra's own settings that mean something for hpo; any other `hydra.*` is refused, never
# silently ignored (hpo composes the config with Hydra's compose API and runs no Hydra job).
HYDRA_RUN_DIR = "hydra.run.dir"
HYDRA_HONOURED = (HYDRA_RUN_DIR,)


def _hydra_overrides(plain: list[str]) -> list[str]:
    """``hydra.run.dir=DIR`` sets the run directory (hpo's ``run_dir``); any other
    ``hydra.*`` override fails naming it."""
    kept = []
    for text in plain:
        key, _, value = text.partition("=")
        bare = key.lstrip("+~")
        if not bare.startswith("hydra.") and bare != "hydra":
            kept.append(text)
        elif bare == HYDRA_RUN_DIR:
            kept.append(f"run_dir={value}")
        else:
            raise ConfigError(
                f"`{bare}`: hpo composes its config with Hydra but runs no Hydra job, so this "
                f"setting would be ignored; hpo honours only {', '.join(HYDRA_HONOURED)} (the run "
                "directory, the same as run_dir=DIR). Add config groups with --config-dir DIR."
            )
    return kept


def _compose(overrides: list[str], config_dir: str | Path | None) -> DictConfig:
    """Hydra's compose. A ``--config-dir`` goes on the search path *ahead* of hpo's conf/:
    its group files add to (or shadow) hpo's, and its own config.yaml, if any, is the
    primary config; without one, hpo's config.yaml is (through the ConfigStore)."""
    register_schemas()
    GlobalHydra.instance().clear()
    primary, directory = "config", conf_dir()
    if config_dir:
        user = Path(config_dir).expanduser().resolve()
        if not user.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such directory.")
        if not (user / "config.yaml").is_file():
            primary = PRIMARY
            ConfigStore.instance().store(
                name=PRIMARY, node=OmegaConf.load(directory / "config.yaml")
            )
        overrides = [*overrides, f"hydra.searchpath=[file://{directory}]"]
        directory = user
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            return compose(config_name=primary, overrides=overrides)
    except Exception as exc:  # hydra's errors: unknown group option, bad key, bad yaml
        message = " ".join(str(exc).split())
        raise ConfigError(f"cannot compose the config: {message}") from exc
    finally:
        GlobalHydra.instance().clear()


def _constructor_key(cfg: DictConfig, dotted: str) -> bool:
    """``model.K`` / ``data.K`` where that node builds a user's class: on the Lightning
    path any such key (validate_config then checks it against the constructor, naming the
    keys it takes); a tabular-contract module's only when its constructor takes ``K``."""
    group, _, key = dotted.partition(".")
    if not key or "." in key:
        return False
    node, lightning = cfg.get(group), is_lightning_data(cfg.get("data"))
    if group == "model" and node and node.get("_target_") != BUILTIN_MODEL:
        return key not in MODEL_OWN_KEYS and (lightning or takes_key(node.get("_target_"), key))
    if group == "data" and lightning:
        return key not in DATA_OWN_KEYS


def _user_keys_without_plus(plain: list[str], config_dir) -> list[str]:
    """``model.K=V`` for a constructor key the user's model file does not list becomes
    ``+model.K=V`` (Hydra's struct mode would refuse it): a user's class is configured by
    its constructor, not by a schema. Decided on a first compose of the group choices and
    ``_target_`` overrides alone."""
    candidates = [
        t for t in plain if t.split("=", 1)[0].startswith(("model.", "data.")) and "=" in t
    ]
    if not candidates:
        return plain
    skeleton = [t for t in plain if t not in candidates or t.split("=", 1)[0].endswith("._target_")]
    try:
        cfg = _compose(skeleton, config_dir)
    except ConfigError:
        return plain  # the full compose reports it
    OmegaConf.set_struct(cfg, False)
    rewritten = []
    for text in plain:
        key = text.split("=", 1)[0]
        missing = (
            text in candidates
            and OmegaConf.select(cfg, key, default="__missing__") == "__missing__"
        )
        rewritten.append(f"+{text}" if missing and _constructor_key(cfg, key) else text)
    return rewritten


def validate_config(cfg: DictConfig | dict[str, Any]) -> DictConfig:
    """Check types against the schema and values against their allowed sets.

    Returns the config resolved (no interpolations left) and typed.
    """
    try:
        raw = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
        # Merge before resolving, so a bad value is reported at its own key, not at a key
        # that interpolates it.
        typed = OmegaConf.merge(OmegaConf.structured(HPOConfig), raw)
        typed = OmegaConf.merge(
            OmegaConf.structured(HPOConfig), OmegaConf.to_container(typed, resolve=True)
        )
    except OmegaConfBaseException as exc:
        raise _key_error(exc) from exc
    typed = _typed_data(typed)
    normalize_objectives(typed)
    _check_values(typed)
    return typed


def _typed_data(cfg: DictConfig) -> DictConfig:
    """A table source merged into DataConfig (types and defaults checked); a DataModule's
    node stays as written (its keys are its constructor's)."""
    if is_lightning_data(cfg.data):
        return cfg
    try:
        data = OmegaConf.merge(OmegaConf.structured(DataConfig), cfg.data)
    except OmegaConfBaseException as exc:
        raise _key_error(exc, "data.") from exc
    cfg.data = OmegaConf.to_container(data)
    return cfg


def _key_error(exc: OmegaConfBaseException, prefix: str = "") -> ConfigError:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    return ConfigError(
        f"config key `{prefix}{key}`: {_first_line(exc)}. Check its spelling and type "
        "(`hpo sweep --cfg job` prints the composed config)."
    )


def _check_values(cfg: DictConfig) -> None:
    def require(cond: bool, key: str, message: str) -> None:
        if not cond:
            raise ConfigError(f"config key `{key}`: {message}")

    require(cfg.mode in ("min", "max"), "mode", f"must be min or max, got {cfg.mode!r}.")
    require(0.0 < cfg.test_size < 1.0, "test_size", f"must lie in (0, 1), got {cfg.test_size}.")
    require(cfg.cv.folds >= 2, "cv.folds", f"needs at least 2 folds, got {cfg.cv.folds}.")
    require(
        cfg.cv.strategy in CV_STRATEGIES,
        "cv.strategy",
        f"must be one of {', '.join(CV_STRATEGIES)}, got {cfg.cv.strategy!r}.",
    )
    require(
        cfg.searcher.name in SEARCHERS,
        "searcher.name",
        f"must be one of {', '.join(SEARCHERS)}, got {cfg.searcher.name!r} "
        "(pick one with searcher=NAME).",
    )
    require(
        cfg.searcher.stopped_as in STOPPED_AS,
        "searcher.stopped_as",
        f"must be one of {', '.join(STOPPED_AS)}, got {cfg.searcher.stopped_as!r}.",
    )
    require(cfg.searcher.population_size >= 2, "searcher.population_size", "must be at least 2.")
    require(
        0.0 <= cfg.searcher.crossover_prob <= 1.0,
        "searcher.crossover_prob",
        f"must lie in [0, 1], got {cfg.searcher.crossover_prob}.",
    )
    require(cfg.scheduler.brackets >= 1, "scheduler.brackets", "must be at least 1.")
    require(
        cfg.scheduler.name != "bohb" or cfg.searcher.name == "tpe",
        "searcher.name",
        f"scheduler=bohb is TPE with Hyperband brackets, got searcher={cfg.searcher.name}; "
        "use searcher=tpe, or scheduler=hyperband for another searcher.",
    )
    require(
        0.0 < cfg.scheduler.racing_alpha < 0.5,
        "scheduler.racing_alpha",
        f"must lie in (0, 0.5), got {cfg.scheduler.racing_alpha}.",
    )
    require(
        cfg.scheduler.name != "pbt" or cfg.searcher.name == "random",
        "searcher.name",
        f"scheduler=pbt draws its first population at random (Ray runs PBT without a "
        f"search algorithm), so searcher={cfg.searcher.name} would be ignored; add "
        "searcher=random.",
    )
    require(cfg.scheduler.min_samples >= 1, "scheduler.min_samples", "must be at least 1.")
    require(
        cfg.scheduler.perturbation_interval >= 1,
        "scheduler.perturbation_interval",
        "must be at least 1.",
    )
    require(
        0.0 < cfg.scheduler.quantile_fraction <= 0.5,
        "scheduler.quantile_fraction",
        f"must lie in (0, 0.5], got {cfg.scheduler.quantile_fraction}.",
    )
    require(
        cfg.scheduler.name in SCHEDULERS,
        "scheduler.name",
        f"must be one of {', '.join(SCHEDULERS)}, got {cfg.scheduler.name!r}.",
    )
    require(cfg.budget.num_samples >= 1, "budget.num_samples", "must be at least 1.")
    mct = cfg.budget.max_concurrent_trials
    require(mct is None or mct >= 1, "budget.max_concurrent_trials", "must be null or >= 1.")
    require(cfg.trainer.max_epochs >= 1, "trainer.max_epochs", "must be at least 1.")
    require(cfg.trainer.patience >= 1, "trainer.patience", "must be at least 1.")
    require(cfg.trainer.batch_size >= 1, "trainer.batch_size", "must be at least 1.")
    require(cfg.trainer.checkpoint_every >= 1, "trainer.checkpoint_every", "must be at least 1.")
    require(
        cfg.trainer.checkpoint_interval_s >= 0, "trainer.checkpoint_interval_s", "must be >= 0."
    )
    require(cfg.trainer.result_buffer_s >= 0, "trainer.result_buffer_s", "must be >= 0.")
    require(cfg.scheduler.grace_period >= 1, "scheduler.grace_period", "must be at least 1.")
    require(cfg.scheduler.reduction_factor >= 2, "scheduler.reduction_factor", "must be >= 2.")
    require(cfg.scheduler.max_t >= 1, "scheduler.max_t", "must be at least 1.")
    require(cfg.resources.cpus_per_trial > 0, "resources.cpus_per_trial", "must be > 0.")
    require(cfg.resources.gpus_per_trial >= 0, "resources.gpus_per_trial", "must be >= 0.")
    require(cfg.optim.lr > 0, "optim.lr", f"must be > 0, got {cfg.optim.lr}.")
    require(
        0.0 <= cfg.budget.max_failure_rate <= 1.0, "budget.max_failure_rate", "must be in [0, 1]."
    )
    target = cfg.model.get("_target_")
    require(
        bool(target) and target != "???",
        "model._target_",
        "names the LightningModule class to train (model._target_=mypkg.LitNet).",
    )
    if is_lightning_data(cfg.data):
        _check_lightning_path(cfg, target)
    else:
        _check_table_path(cfg)
    if target == BUILTIN_MODEL:
        try:
            OmegaConf.merge(OmegaConf.structured(MLPConfig), cfg.model)
        except OmegaConfBaseException as exc:
            key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
            raise ConfigError(f"config key `model.{key}`: {_first_line(exc)}") from exc
    # Every key of the search space must be a key of the config it will set.
    space, fixed = build_search_space(cfg.search_space)
    for key in list(space) + list(fixed):
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise ConfigError(
                f"search space key `{key}` is not a config key; sweep an existing key such as "
                "optim.lr or model.hidden_dim (add new model keys to the model config first)."
            )
    for key, value in fixed.items():
        OmegaConf.update(cfg, key, value, merge=False)
        del cfg.search_space[key]


def _check_lightning_path(cfg: DictConfig, target: str) -> None:
    """A DataModule trains a user's LightningModule with a real lightning.Trainer."""
    if target == BUILTIN_MODEL:
        raise ConfigError(
            "config key `model`: the built-in tabular MLP trains on tables (data=csv, digits, "
            "...); with data=lightning use model=lightning model._target_=mypkg.LitNet."
        )
    check_constructor_keys(cfg.model, MODEL_OWN_KEYS, "model")
    check_constructor_keys(cfg.data, DATA_OWN_KEYS, "data")
    task = cfg.data.get("task", "auto")
    if task not in ("auto", "classification", "regression"):
        raise ConfigError(
            f"config key `data.task`: must be auto, classification or regression, got {task!r}."
        )
    gpus = float(cfg.resources.gpus_per_trial)
    if gpus > 1 and not gpus.is_integer():
        raise ConfigError(
            f"config key `resources.gpus_per_trial`: {gpus} GPUs per trial; above 1 it must be "
            "a whole number (each fold trains on one GPU, that many folds at a time)."
        )
    devices = cfg.trainer.kwargs.get("devices") if cfg.trainer.kwargs else None
    if devices not in (None, 1, "1", "auto"):
        raise ConfigError(
            "config key `trainer.kwargs.devices`: each fold trains on one device; give a trial "
            "more GPUs with resources.gpus_per_trial=N and N folds train at once."
        )
    for key in ("max_epochs", "callbacks", "logger", "default_root_dir", "enable_checkpointing"):
        if key in (cfg.trainer.kwargs or {}):
            raise ConfigError(
                f"config key `trainer.kwargs.{key}`: set trainer.{key} instead"
                if key in ("max_epochs", "callbacks", "logger")
                else f"config key `trainer.kwargs.{key}`: hpo sets it for every fold; drop it."
            )


def _check_table_path(cfg: DictConfig) -> None:
    """The tabular engine trains without a Trainer: Trainer-only keys would be ignored."""
    for key in LIGHTNING_TRAINER_KEYS:
        value = cfg.trainer.get(key)
        if value not in (None, [], {}):
            raise ConfigError(
                f"config key `trainer.{key}`: a lightning.Trainer argument, used on the "
                "Lightning path (data=lightning with your DataModule); the tabular engine "
                f"trains without a Trainer. Drop it (trainer.{key}=null)."
            )
    if float(cfg.resources.gpus_per_trial) > 1:
        raise ConfigError(
            f"config key `resources.gpus_per_trial`: the tabular engine trains a trial's folds "
            f"as one batched model on one GPU, so {cfg.resources.gpus_per_trial} GPUs would sit "
            "idle; use at most 1 (fractions share a GPU between trials)."
        )


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config that a sweep wrote into its run directory."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist; pass the run directory that `hpo sweep` printed."
        )
    saved = OmegaConf.load(path)
    data = saved.get("data")
    tabular = data is not None and data.get("source") in ("builtin", "csv", "parquet")
    if tabular and "target_transform" not in data:
        # written before data.target_transform existed: those runs learned the target as is
        # (the schema's default, auto, could switch a resumed sweep to the log part-way)
        data.target_transform = "none"
    return validate_config(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
