"""The Ray Tune entry point of one trial. The only module under train/ that imports Ray."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import ray
import torch
from ray import tune

from hpo.data.prepare import TrialData
from hpo.train.loop import FoldTrainer

FINISHED_KEY = "trial_finished"  # True on the last report of a trial that ended by itself
CHECKPOINT_FILE = "trial_state.pt"


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
    every = int(cfg["trainer"]["checkpoint_every"])
    # Where the trial runs; Ray nodes on one machine share an IP, so the node id tells them apart.
    placement = {"node_id": ray.get_runtime_context().get_node_id(), "device": str(trainer.device)}
    while not trainer.finished:
        summary = trainer.run_epoch()
        report = {
            **summary.metrics,
            "epoch": summary.epoch,
            "folds_active": summary.folds_active,
            "fold_best_epochs": summary.fold_best_epochs,
            **{f"fold_{name}": values for name, values in summary.fold_metrics.items()},
            FINISHED_KEY: summary.finished,
            **placement,
        }
        if summary.finished or summary.epoch % every == 0:
            with tempfile.TemporaryDirectory() as directory:
                torch.save(trainer.state_dict(), os.path.join(directory, CHECKPOINT_FILE))
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))
        else:
            tune.report(report)
