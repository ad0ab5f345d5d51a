"""The driver's side of the Lightning path, before any Ray work: build the user's
DataModule and module once, plan the test split and the folds, and run the module for one
batch (the preflight) to learn which metrics it logs.

Every bad input surfaces here as one HPOError naming the key: a class that cannot be
imported or built, a dataset with no length, unreadable labels under stratified folds, a
``metric`` the module never logs (the ones it does log are listed), a ``latency_ms``
objective whose forward cannot be called on a validation batch. Besides what the module
logs, every trial reports ``latency_ms`` and ``param_count`` (hpo.train.cost).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.data.datamodule import FoldPlan, ModuleData, build_datamodule, fold_loaders, module_data
from hpo.data.datamodule import plan_folds as cut_folds
from hpo.errors import ConfigError, HPOError
from hpo.models.build import build_lightning_module
from hpo.space import SearchSpace
from hpo.train.cost import COST_METRICS, forward_call, forward_failure
from hpo.train.lightning_folds import instantiate_specs, quiet_lightning, scalar_metrics
from hpo.train.trial import apply_params

log = logging.getLogger(__name__)


def representative(dist: Any) -> Any:
    """A value from inside a distribution: the first choice, the low end of an integer
    range, the (geometric) middle of a float range."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, IntDistribution):
        return dist.low
    if isinstance(dist, FloatDistribution):
        if dist.log:
            return math.sqrt(dist.low * dist.high)
        return (dist.low + dist.high) / 2
    raise HPOError(f"unknown distribution {dist!r}")


def preflight_config(cfg: DictConfig, space: SearchSpace) -> dict[str, Any]:
    """The plain config with one representative value per swept key."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return apply_params(plain, {key: representative(d) for key, d in space.items()})


class FirstValBatch(L.Callback):
    """Keeps the first validation batch as ``validation_step`` gets it."""

    def __init__(self) -> None:
        self.batch: Any = None

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if self.batch is None:
            self.batch = batch


def logged_metrics(cfg: dict[str, Any], data: ModuleData, plan: FoldPlan) -> list[str]:
    """Fit the module for one train and one val batch of fold 0 on the CPU (no logger, no
    checkpoint) and return the metric names it logged. With ``latency_ms`` an objective,
    call the forward once on that val batch the way the trials time it."""
    L.seed_everything(int(cfg["seed"]), verbose=False)
    module = build_lightning_module(cfg["model"])
    instantiate_specs(cfg["trainer"].get("callbacks") or [], "callbacks")  # they build
    train, val = fold_loaders(data, plan, 0, int(cfg["seed"]))
    first_val = FirstValBatch()
    trainer = L.Trainer(
        callbacks=[first_val],
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    quiet_lightning()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one-batch run: Lightning's small-data warnings
        try:
            trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        except HPOError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"config key `model._target_`: {cfg['model']['_target_']} failed on one batch "
                f"of the DataModule's data: {type(exc).__name__}: {exc}"
            ) from exc
    if "latency_ms" in {o["metric"] for o in cfg.get("objectives") or []}:
        check_forward(cfg, module, first_val.batch)
    return sorted(scalar_metrics(dict(trainer.callback_metrics)))


def check_forward(cfg: dict[str, Any], module: L.LightningModule, batch: Any) -> None:
    """The forward the trials time runs on a validation batch, else one ConfigError."""
    if batch is None:
        raise ConfigError(
            "config key `metric`: latency_ms is timed on a validation batch, and the "
            "DataModule's val_dataloader gave none in the preflight."
        )
    module.eval()
    try:
        forward_call(module, batch)
    except Exception as exc:
        raise ConfigError(
            f"config key `metric`: latency_ms cannot be measured: "
            f"{forward_failure(module, exc)}. Make forward(x) take the batch's inputs, or "
            "drop latency_ms from metric."
        ) from exc


# Model keys hpo fills from the data when the config says `auto` (the built-in fine-tuning
# modules' head size and task): `model.num_classes=auto`, `model.task=auto`.
FROM_DATA = ("num_classes", "task")


def fill_from_data(model: Any, plan: FoldPlan) -> None:
    """Set the model node's ``auto`` keys of ``FROM_DATA`` from the plan (in place), so the
    saved config.yaml, every trial and the export build the same head."""
    if (
        model.get("num_classes") == "auto"
        and plan.task == "classification"
        and (plan.classes is None)
    ):
        raise ConfigError(
            "config key `model.num_classes`: `auto` needs labels hpo can read from the "
            "DataModule; set the number of classes."
        )
    values = {
        "num_classes": len(plan.classes) if plan.task == "classification" else 1,
        "task": plan.task,
    }
    for key in FROM_DATA:
        if model.get(key) == "auto":
            model[key] = values[key]


# Keys of the model / data node that hold local paths: made absolute on the driver (Ray
# trials run in their own working directories), where they name something that exists.
PATH_KEYS = ("path", "pretrained", "tokenizer", "weights")


def absolute_paths(cfg: Any) -> None:
    """Relative paths under ``PATH_KEYS`` of the model and data nodes, made absolute."""
    for group in ("model", "data"):
        node = cfg[group]
        for key in PATH_KEYS:
            value = node.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                if Path(value).exists():
                    node[key] = str(Path(value).resolve())


def plan_lightning(cfg: DictConfig, space: SearchSpace) -> FoldPlan:
    """Folds, test split and the logged metrics of a DataModule sweep; checks ``metric``."""
    absolute_paths(cfg)
    plain = preflight_config(cfg, space)
    data = module_data(build_datamodule(plain["data"]))
    plan = cut_folds(data, cfg)
    fill_from_data(cfg.model, plan)
    fill_from_data(plain["model"], plan)
    logged = logged_metrics(plain, data, plan)
    plan.logged = logged + [m for m in COST_METRICS if m not in logged]
    if cfg.metric in COST_METRICS and cfg.metric not in logged:
        raise ConfigError(
            f"config key `metric`: the first objective drives early stopping and the "
            f"scheduler, which need a metric the module logs, not {cfg.metric}; list it "
            f"after one, e.g. metric=[{logged[0] if logged else 'val_loss'},{cfg.metric}] "
            "mode=[...]."
        )
    if cfg.metric not in plan.logged:
        raise ConfigError(
            f"config key `metric`: {plain['model']['_target_']} never logs {cfg.metric!r}; it "
            f"logs {', '.join(logged) or 'nothing'} (self.log(...) in its steps; hpo adds "
            f"{', '.join(COST_METRICS)}). Pick one with metric=NAME mode=min|max."
        )
    return plan
