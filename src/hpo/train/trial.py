"""The Ray Tune entry points of one trial, one per engine (``TRIAL_FUNCTIONS``, chosen by
``engine_name``). The only module under train/ that imports Ray.

A Ray worker imports this module before its first trial: the tabular engine's path needs
torch, numpy and Ray Tune only; the Lightning path's modules (Lightning, the DataModule
helpers) are imported by its trial function (tests/train/test_trial_imports.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import ray
import torch
from ray import tune

from hpo.config.targets import is_lightning_data
from hpo.data.arrays import TrialData
from hpo.errors import TrialError
from hpo.train.loop import FoldTrainer

if TYPE_CHECKING:
    from hpo.data.datamodule import FoldPlan, ModuleData

FINISHED_KEY = "trial_finished"  # True on the last report of a trial that ended by itself
FAILED_KEY = "trial_failed"  # the reason, on the last report of a trial whose code failed
TRACEBACK_KEY = "trial_traceback"  # its traceback (the driver logs it to RUN_DIR/ray_tune.log)
CHECKPOINT_FILE = "trial_state.pt"


@contextlib.contextmanager
def failures_end_the_trial(metric: str) -> Iterator[None]:
    """A trial whose own code fails (an exception, a NaN or diverged loss: TrialError)
    ends cleanly with one last report naming the reason (``FAILED_KEY``, its traceback
    under ``TRACEBACK_KEY``; the metric NaN, so the searcher tells it FAIL and no
    scheduler ranks it). Tune then records it as ended, not as errored: such a failure
    would only repeat, so it is not retried (``budget.max_retries`` is for workers that
    die). Tune's stop (``SystemExit`` inside ``tune.report``) passes through."""
    try:
        yield
    except Exception as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        tune.report(
            {metric: float("nan"), FAILED_KEY: reason, TRACEBACK_KEY: traceback.format_exc()}
        )


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the plain config with dotted-key hyperparameters set."""
    import copy

    cfg = copy.deepcopy(base)
    for dotted, value in params.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return cfg


def trial_device(gpus_per_trial: float) -> str:
    """The GPU Ray assigned to this trial (Ray sets CUDA_VISIBLE_DEVICES), else CPU."""
    if gpus_per_trial > 0 and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def run_trial(config: dict[str, Any], trial_data: TrialData, base_cfg: dict[str, Any]) -> None:
    """Train the k fold-models of one configuration, reporting after every epoch."""
    with failures_end_the_trial(base_cfg["metric"]):
        _train_folds(config, trial_data, base_cfg)


def _train_folds(config: dict[str, Any], trial_data: TrialData, base_cfg: dict[str, Any]):
    cfg = apply_params(base_cfg, config)
    resources = cfg["resources"]
    torch.set_num_threads(max(1, int(resources["cpus_per_trial"])))
    trainer = FoldTrainer(
        trial_data,
        model_cfg=cfg["model"],
        optim=cfg["optim"],
        trainer_cfg=cfg["trainer"],
        seed=int(cfg["seed"]),
        device=trial_device(float(resources["gpus_per_trial"])),
    )
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, CHECKPOINT_FILE), weights_only=True)
        trainer.load_state_dict(state)
    # Where the trial runs; Ray nodes on one machine share an IP, so the node id tells them apart.
    placement = {"node_id": ray.get_runtime_context().get_node_id(), "device": str(trainer.device)}

    def save(directory: str) -> None:
        torch.save(trainer.state_dict(), os.path.join(directory, CHECKPOINT_FILE))

    report_epochs(trainer, *checkpoint_policy(cfg), placement, save)


def checkpoint_policy(cfg: dict[str, Any]) -> tuple[int, float]:
    """``trainer.checkpoint_every`` (epochs) and ``trainer.checkpoint_interval_s`` (the
    least seconds between two checkpoints; 0 under PBT, which clones a trial's latest
    checkpoint at every perturbation and so needs it current)."""
    trainer = cfg["trainer"]
    interval = float(trainer["checkpoint_interval_s"])  # (validate_config fills it in)
    if cfg["scheduler"]["name"] == "pbt":
        interval = 0.0
    return int(trainer["checkpoint_every"]), interval


def report_epochs(engine, every: int, interval_s: float, placement: dict[str, Any], save) -> None:
    """Train ``engine`` epoch by epoch, reporting each epoch's fold summary to Tune, with a
    checkpoint (``save(directory)``) at the end and at every ``every``-th epoch that comes
    at least ``interval_s`` seconds after the trial's previous checkpoint (or its start).
    Both engines' summaries have one shape (fold means and stds, per-fold lists).

    Why the seconds: with ``num_to_keep=1`` Ray Tune snapshots the whole experiment after
    every trial checkpoint, and on small tables an epoch takes a tenth of a second, so a
    checkpoint per epoch cost a fifth of a trial's time plus the driver's snapshots
    (benchmarks/throughput.py). A killed driver or worker loses at most ``interval_s``
    seconds (and ``every`` epochs) of each running trial."""
    saved_at = time.monotonic()
    while not engine.finished:
        summary = engine.run_epoch()
        report = {
            **summary.metrics,
            "epoch": summary.epoch,
            "folds_active": summary.folds_active,
            "fold_best_epochs": summary.fold_best_epochs,
            **{f"fold_{name}": values for name, values in summary.fold_metrics.items()},
            FINISHED_KEY: summary.finished,
            **placement,
        }
        due = summary.epoch % every == 0 and time.monotonic() - saved_at >= interval_s
        if summary.finished or due:
            with tempfile.TemporaryDirectory() as directory:
                save(directory)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))
            saved_at = time.monotonic()
        else:
            tune.report(report)


# The DataModule's data, kept between the trials a reused actor runs (one entry: the last
# data config; a trial that sweeps data keys builds its own).
_module_data: dict[str, ModuleData] = {}


def trial_module_data(data_cfg: dict[str, Any], plan: FoldPlan) -> ModuleData:
    from hpo.data.datamodule import build_datamodule, module_data

    key = json.dumps(data_cfg, sort_keys=True, default=str)
    if key not in _module_data:
        _module_data.clear()
        _module_data[key] = module_data(build_datamodule(data_cfg))
    data = _module_data[key]
    if len(data.dataset) != plan.rows:
        raise TrialError(
            f"the DataModule built with this trial's data keys holds {len(data.dataset)} rows, "
            f"not the {plan.rows} the folds were cut from: a swept data key must not change "
            "which rows the DataModule holds (sweep batch size, workers, augmentation)."
        )
    return data


def run_lightning_trial(config: dict[str, Any], plan: FoldPlan, base_cfg: dict[str, Any]) -> None:
    """Train the k folds of a user's LightningModule with real Trainers, in lockstep,
    reporting the fold mean of every logged metric after every epoch."""
    with failures_end_the_trial(base_cfg["metric"]):
        _train_lightning_folds(config, plan, base_cfg)


def _train_lightning_folds(config: dict[str, Any], plan: FoldPlan, base_cfg: dict[str, Any]):
    from hpo.train.lightning_folds import LightningFolds

    cfg = apply_params(base_cfg, config)
    resources = cfg["resources"]
    torch.set_num_threads(max(1, int(resources["cpus_per_trial"])))
    data = trial_module_data(cfg["data"], plan)
    checkpoint = tune.get_checkpoint()
    with ExitStack() as stack:
        restore = stack.enter_context(checkpoint.as_directory()) if checkpoint else None
        folds = LightningFolds(
            cfg, data, plan, tune.get_context().get_trial_dir(), restore,
            gpus=float(resources["gpus_per_trial"]),
        )  # fmt: skip
    placement = {"node_id": ray.get_runtime_context().get_node_id(), "device": folds.device}
    try:
        report_epochs(folds, *checkpoint_policy(cfg), placement, folds.save)
    finally:  # ASHA stopped the trial (Tune ends it inside tune.report), or it failed
        folds.close()


TRIAL_FUNCTIONS = {"tabular": run_trial, "lightning": run_lightning_trial}


def engine_name(cfg: Any) -> str:
    """``lightning`` for a DataModule source (a real Trainer per fold), else ``tabular``
    (the fold-batched engine over in-memory feature arrays)."""
    return "lightning" if is_lightning_data(cfg["data"]) else "tabular"
