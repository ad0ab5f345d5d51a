"""Compose the Hydra config from conf/ and the command line, then validate it.

Sweep expressions on the command line (``optim.lr=tag(log, interval(...))``) are split
off before composing and go into the search space; plain overrides are Hydra's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hpo.config.schema import HPOConfig, MLPConfig, register_schemas
from hpo.errors import ConfigError
from hpo.space import build_search_space, split_overrides

BUILTIN_MODEL = "hpo.models.mlp.TabularMLP"
SEARCHERS = ("tpe", "random", "grid", "gp", "cmaes")
SCHEDULERS = ("asha", "hyperband", "fifo")
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
    # `search_space.optim.lr=...` names a key of the space whose own name has dots; Hydra
    # would read it as a nested path, so these overrides are applied to the node here.
    space_edits = {}
    for text in [t for t in plain if t.split("=", 1)[0].lstrip("~+").startswith("search_space.")]:
        plain.remove(text)
        key, _, value = text.partition("=")
        space_key = key.lstrip("~+").removeprefix("search_space.")
        space_edits[space_key] = None if key.startswith("~") or value in ("null", "") else value
    directory = Path(config_dir).resolve() if config_dir else conf_dir()
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            cfg = compose(config_name="config", overrides=plain)
    except Exception as exc:  # hydra's errors: unknown group option, bad key, bad yaml
        message = " ".join(str(exc).split())
        raise ConfigError(f"cannot compose the config: {message}") from exc
    finally:
        GlobalHydra.instance().clear()
    OmegaConf.set_struct(cfg, False)
    space_node = dict(OmegaConf.to_container(cfg.get("search_space") or {}, resolve=True))
    space_node.update(space_edits)
    for key, expression in sweeps.items():
        key = key.removeprefix("search_space.")
        if key.startswith("+"):  # `+model.key=choice(...)` adds a key to a user model
            key = key.lstrip("+")
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                OmegaConf.update(cfg, key, None, force_add=True)
        space_node[key] = expression
    cfg.search_space = {k: v for k, v in space_node.items() if v is not None}
    return validate_config(cfg), sweeps


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
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
        raise ConfigError(
            f"config key `{key}`: {_first_line(exc)}. Check its spelling and type "
            "(`hpo sweep --cfg job` prints the composed config)."
        ) from exc
    _check_values(typed)
    return typed


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
    require(bool(target), "model._target_", "names the LightningModule class to train.")
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


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved config that a sweep wrote into its run directory."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist; pass the run directory that `hpo sweep` printed."
        )
    return validate_config(OmegaConf.load(path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
