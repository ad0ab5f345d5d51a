"""The Lightning engine: k real ``lightning.Trainer`` fits of a user's module, one per
fold, advanced in lockstep, epoch by epoch.

Design. Each fold's ``Trainer.fit`` runs unchanged in a thread of its own; a callback
(``EpochBarrier``, a Lightning ``Checkpoint`` so that it runs after the module's own
``on_train_epoch_end``, after EarlyStopping and after any ModelCheckpoint) pauses the fold
at the end of every epoch and hands back its logged metrics. The coordinator
(``LightningFolds``) lets the folds run their epoch one at a time (one device: no two folds
compete for it, and each fold's global RNG stream is swapped in and out so that a fold
trains exactly as it would alone), or several at once on separate GPUs. When every active
fold has paused at epoch e, the coordinator has each fold's metrics of epoch e: the trial
reports their mean, std and per-fold values, and ASHA decides. Continuing is one message to
each fold; stopping sets ``trainer.should_stop`` and fit ends the way Lightning ends it.
Nothing of Lightning's loops is touched: the fold is an ordinary fit that waits in a hook.

The alternatives cost more: calling ``fit`` once per epoch re-runs ``configure_optimizers``
and the fit hooks; fold workers as Ray tasks or actors pay a process, a copy of the data and
the imports per fold and need resources of their own inside the trial's.

Checkpoints are Lightning's own (``trainer.save_checkpoint`` in the paused fold); a restored
fold continues with ``fit(ckpt_path=...)`` from its last epoch. No Ray here.

The cost objectives (``latency_ms``, ``param_count``: hpo.train.cost) are measured once per
trial, by one fold (fold 0, or the first one still training after a resume) in its own
thread at the end of its first epoch that validated, on the first validation batch it saw;
every report then carries them beside the fold means (one value, no std: the folds share
one architecture).
"""

from __future__ import annotations

import logging
import math
import queue
import random
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping

from hpo.config.schema import LIGHTNING_TRAINER_KEYS
from hpo.data.datamodule import FoldPlan, ModuleData, fold_loaders
from hpo.errors import ConfigError, TrialError
from hpo.models.build import build_lightning_module
from hpo.train.cost import COST_METRICS, lightning_cost
from hpo.train.divergence import DEFAULT_FACTOR, FirstEpochRule
from hpo.train.loop import EpochSummary

log = logging.getLogger(__name__)
STATE_FILE = "lockstep.pt"
_PASSED_THROUGH = [k for k in LIGHTNING_TRAINER_KEYS if k not in ("callbacks", "logger", "kwargs")]


def quiet_lightning() -> None:
    """k Trainers per trial would each announce their devices and tips: keep Lightning's
    warnings only, and drop two messages that say nothing here (a refit has no val loop on
    purpose; a deprecation inside Lightning itself)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`. Skipping val loop.*")


def instantiate_specs(spec: Any, what: str) -> list[Any]:
    """Callbacks or loggers from config (``{_target_: ...}`` or a list of them), built anew."""
    from hydra.utils import instantiate

    items = spec if isinstance(spec, (list, tuple)) else [spec]
    built = []
    for item in items:
        try:
            built.append(instantiate(item))
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise ConfigError(
                f"config key `trainer.{what}`: cannot build {item!r}: {type(cause).__name__}: "
                f"{cause}."
            ) from exc
    return built


def loggers(spec: Any) -> Any:
    """``trainer.logger``: None/false (none: hpo records the metrics), true (Lightning's
    default), or logger specs."""
    if spec in (None, False, True):
        return bool(spec)
    return instantiate_specs(spec, "logger")


def trainer_kwargs(trainer_cfg: dict[str, Any], root: str, accelerator: str, devices: Any) -> dict:
    """The lightning.Trainer arguments of one fold: the ``trainer`` node's Lightning keys,
    hpo's quiet defaults (no progress bar or model summary: k folds in a Ray worker), and
    the fold's device."""
    kwargs: dict[str, Any] = {
        "max_epochs": int(trainer_cfg["max_epochs"]),
        "default_root_dir": root,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,  # hpo's preflight already ran the module once
        "logger": loggers(trainer_cfg.get("logger")),
    }
    for key in _PASSED_THROUGH:
        if trainer_cfg.get(key) is not None:
            kwargs[key] = trainer_cfg[key]
    if trainer_cfg.get("gradient_clip_val"):
        kwargs["gradient_clip_val"] = float(trainer_cfg["gradient_clip_val"])
    kwargs.update(dict(trainer_cfg.get("kwargs") or {}))
    kwargs.setdefault("accelerator", accelerator)
    kwargs["devices"] = devices
    return kwargs


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """What the module logged, as floats; per-step values (``*_step``) are left out: the
    last batch's value says little about the epoch."""
    out = {}
    for name, value in metrics.items():
        if name.endswith("_step"):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)):
            out[name] = float(value)
    return out


class EpochBarrier(Checkpoint):
    """Pauses its fold at the end of every epoch until the coordinator says go on.

    A ``Checkpoint`` subclass on purpose: Lightning calls those last, after the module's
    ``on_train_epoch_end`` (metrics logged there are in) and after EarlyStopping decided
    (``trainer.should_stop``), and adds no default ModelCheckpoint beside it (checkpoints
    are written on request, for the trial's own checkpoint)."""

    def __init__(self, run: _FoldRun) -> None:
        self.run = run

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.run.pause(trainer)

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        run = self.run
        if run.measures_cost and run.cost is None and run.cost_batch is None:
            run.cost_batch = batch  # on the device already: what validation_step gets

    def state_dict(self) -> dict[str, Any]:
        return {}


class _FoldRun:
    """One fold's ``Trainer.fit`` in its own thread, paused at every epoch end."""

    def __init__(self, index: int, trainer_factory, module, loaders, ckpt_path) -> None:
        self.index = index
        self.commands: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        self.barrier = EpochBarrier(self)
        self.trainer: L.Trainer = trainer_factory(self.barrier)
        self.module = module
        self.loaders = loaders
        self.ckpt_path = ckpt_path
        self.measures_cost = False  # set by the coordinator while the fold is paused
        self.times_forward = True  # False: latency_ms is no objective, count parameters only
        self.cost: dict[str, float] | None = None
        self.cost_failure: str | None = None
        self.cost_batch: Any = None
        self.thread = threading.Thread(target=self._main, name=f"hpo-fold-{index}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        if self.commands.get() == "stop":
            self.events.put(("done",))
            return
        try:
            train, val = self.loaders
            self.trainer.fit(
                self.module,
                train_dataloaders=train,
                val_dataloaders=val,
                ckpt_path=self.ckpt_path,
                weights_only=True if self.ckpt_path else None,  # hpo's own checkpoint: plain
            )
            self.events.put(("done",))
        except BaseException as exc:  # noqa: B036 - handed to the coordinator, which raises
            self.events.put(("error", exc))

    def pause(self, trainer: L.Trainer) -> None:
        """In the fold's thread, at its epoch end: report, then obey commands."""
        metrics = scalar_metrics(dict(trainer.callback_metrics))
        if self.cost is None and self.cost_batch is not None:
            self.cost, self.cost_failure = lightning_cost(
                trainer.lightning_module, self.cost_batch, self.times_forward
            )
            self.cost_batch = None
        self.events.put(("epoch", trainer.current_epoch + 1, metrics, bool(trainer.should_stop)))
        while True:
            command = self.commands.get()
            if isinstance(command, tuple) and command[0] == "save":
                try:
                    trainer.save_checkpoint(command[1])
                    self.events.put(("saved",))
                except BaseException as exc:  # noqa: B036
                    self.events.put(("error", exc))
                continue
            if command == "stop":
                trainer.should_stop = True
            return

    def send(self, command: Any) -> None:
        self.commands.put(command)

    def next_event(self) -> tuple:
        event = self.events.get()
        if event[0] == "error":
            exc = event[1]
            if isinstance(exc, TrialError):
                raise exc
            raise TrialError(f"fold {self.index}: {type(exc).__name__}: {exc}") from exc
        return event


@dataclass
class FoldRecord:
    """One fold's progress and early-stopping record (kept by the coordinator)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = math.nan
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped: bool = False  # early-stopped or fit ended: it trains no more
    early_stopped: bool = False  # by EarlyStopping: it reports its best epoch from now on
    rng: dict[str, Any] = field(default_factory=dict)
    shuffle: torch.Tensor | None = None  # the train loader's generator (its next epoch's order)
    first_loss: float = math.nan  # the divergence rule's reference (hpo.train.divergence)


def capture_rng() -> dict[str, Any]:
    """The global RNG streams a fold draws from (torch, CUDA, numpy, random), as tensors
    and lists (checkpoint-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [torch.as_tensor(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "random": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate((3, tuple(int(v) for v in state["random"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class LightningFolds:
    """The k folds of one trial, each a real ``lightning.Trainer`` fit, in lockstep.

    Args:
        cfg: the trial's plain config (its hyperparameters set).
        data: the DataModule's rows and loader settings (hpo.data.datamodule).
        plan: the test split and folds planned on the driver.
        root: a directory for the folds' Lightning files (``fold_<k>/``).
        restore_dir: a checkpoint directory written by ``save`` to continue from.
        gpus: the trial's GPUs (``resources.gpus_per_trial``); two or more run that many
            folds at once, each on its own GPU.
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        data: ModuleData,
        plan: FoldPlan,
        root: str | Path,
        restore_dir: str | Path | None = None,
        gpus: float = 0.0,
    ) -> None:
        self.metric, self.mode = str(cfg["metric"]), str(cfg["mode"])
        objectives = cfg.get("objectives") or [{"metric": self.metric}]
        self.objective_names = {str(o["metric"]) for o in objectives}
        self.cost: dict[str, float] | None = None
        self.trainer_cfg = dict(cfg["trainer"])
        self.max_epochs = int(self.trainer_cfg["max_epochs"])
        self.min_delta = float(self.trainer_cfg.get("min_delta") or 0.0)
        self.root = Path(root)
        factor = self.trainer_cfg.get("divergence_factor", DEFAULT_FACTOR)
        self.divergence = FirstEpochRule(factor, self.metric, self.mode)
        seed = int(cfg["seed"])
        quiet_lightning()
        if gpus > 0 and not torch.cuda.is_available():
            raise TrialError(
                f"resources.gpus_per_trial={gpus} but torch sees no CUDA device here (a CPU "
                "build of torch, or no GPU on this node); install a CUDA build or set it to 0."
            )
        cuda = gpus > 0
        if gpus >= 2 and torch.cuda.device_count() < int(gpus):  # never silently fewer
            raise TrialError(
                f"resources.gpus_per_trial={gpus} but this trial sees "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
        self.slots = int(gpus) if gpus >= 2 else 1
        self.device = "cuda" if cuda else "cpu"
        saved = self._read_state(restore_dir) if restore_dir else None
        self.epoch = int(saved["epoch"]) if saved else 0
        self.records: list[FoldRecord] = []
        self.runs: list[_FoldRun | None] = []
        self._scratch = Path(tempfile.mkdtemp(prefix="hpo-folds-"))
        for fold in range(len(plan.folds)):
            record = FoldRecord(**saved["folds"][fold]) if saved else FoldRecord()
            self.records.append(record)
            if record.stopped:
                self.runs.append(None)
                continue
            L.seed_everything(seed + fold, workers=True, verbose=False)
            module = build_lightning_module(cfg["model"])
            if not saved:
                record.rng = capture_rng()
            ckpt = None
            if saved:
                ckpt = str(self._scratch / f"fold_{fold}.ckpt")
                shutil.copyfile(Path(restore_dir) / f"fold_{fold}.ckpt", ckpt)
            loaders = fold_loaders(data, plan, fold, seed + fold)
            if record.shuffle is not None:
                loaders[0].generator.set_state(record.shuffle)
            self.runs.append(_FoldRun(fold, self._factory(fold, cfg), module, loaders, ckpt))

    def _factory(self, fold: int, cfg: dict[str, Any]):
        if self.device == "cuda":
            accelerator, devices = "gpu", [fold % self.slots] if self.slots > 1 else 1
        else:
            accelerator, devices = "cpu", 1
        kwargs = trainer_kwargs(
            self.trainer_cfg, str(self.root / f"fold_{fold}"), accelerator, devices
        )
        patience = int(self.trainer_cfg["patience"])

        def make(barrier: EpochBarrier) -> L.Trainer:
            callbacks = instantiate_specs(self.trainer_cfg.get("callbacks") or [], "callbacks")
            stopper = EarlyStopping(
                monitor=self.metric,
                mode=self.mode,
                patience=patience,
                min_delta=self.min_delta,
                check_finite=False,  # a non-finite metric fails the trial (below), not a stop
            )
            return L.Trainer(**kwargs, callbacks=[*callbacks, stopper, barrier])

        return make

    @property
    def finished(self) -> bool:
        return self.epoch >= self.max_epochs or all(r.stopped for r in self.records)

    def run_epoch(self) -> EpochSummary:
        """Every active fold trains one more epoch; returns the lockstep report."""
        self.epoch += 1
        active = [i for i, r in enumerate(self.records) if not r.stopped]
        if self.cost is None and not any(self.runs[f].measures_cost for f in active):
            self.runs[active[0]].times_forward = "latency_ms" in self.objective_names
            self.runs[active[0]].measures_cost = True  # every fold is paused here
        for start in range(0, len(active), self.slots):
            chunk = active[start : start + self.slots]
            for fold in chunk:
                if self.slots == 1:
                    restore_rng(self.records[fold].rng)
                self.runs[fold].send("go")
            for fold in chunk:
                run = self.runs[fold]
                self._collect(fold)
                if self.slots == 1:
                    self.records[fold].rng = capture_rng()
                self.records[fold].shuffle = run.loaders[0].generator.get_state()
        return self._report()

    def _collect(self, fold: int) -> None:
        record, run = self.records[fold], self.runs[fold]
        event = run.next_event()
        if event[0] == "done":  # fit ended without another epoch (the module stopped it)
            record.stopped = record.early_stopped = True
            self.runs[fold] = None
            return
        _, epoch, metrics, early_stop = event
        if self.cost is None and run.cost is not None:
            self._take_cost(run)
        if epoch != self.epoch:
            raise TrialError(
                f"fold {fold} finished epoch {epoch} while the others are at {self.epoch}."
            )
        score = metrics.get(self.metric)
        if score is None or not math.isfinite(score):
            raise TrialError(
                f"fold {fold}: `{self.metric}` is {score} at epoch {epoch}; the model diverged "
                "(lower the learning rate or set trainer.gradient_clip_val)"
                if score is not None
                else f"fold {fold}: the module logged no `{self.metric}` (it logs "
                f"{', '.join(sorted(metrics)) or 'nothing'})."
            )
        record.first_loss = self.divergence.check(fold, epoch, metrics, record.first_loss)
        record.history.append({"epoch": epoch, **metrics})
        better = (
            math.isnan(record.best_score)
            or (self.mode == "min" and score < record.best_score - self.min_delta)
            or (self.mode == "max" and score > record.best_score + self.min_delta)
        )
        if better:
            record.best_score, record.best_epoch, record.best_metrics = score, epoch, dict(metrics)
        if early_stop or epoch >= self.max_epochs:
            record.stopped, record.early_stopped = True, early_stop
            run.send("go")  # fit ends by itself now (should_stop or max_epochs)
            self._finish(fold)

    def _take_cost(self, run: _FoldRun) -> None:
        if run.cost_failure and "latency_ms" in self.objective_names:
            raise TrialError(f"latency_ms is an objective, but {run.cost_failure}")
        self.cost = run.cost

    def _finish(self, fold: int) -> None:
        run = self.runs[fold]
        if run is None:
            return
        event = run.next_event()
        while event[0] != "done":  # a fold told to stop may still pass one epoch end
            run.send("stop")
            event = run.next_event()
        run.thread.join()
        self.runs[fold] = None

    def _report(self) -> EpochSummary:
        names = sorted({n for r in self.records for n in (r.history[-1] if r.history else {})})
        names = [n for n in names if n != "epoch"]
        per_fold: dict[str, list[float]] = {n: [] for n in names}
        for record in self.records:
            # A stopped fold contributes its best epoch (early stopping's weights), an
            # active one its current epoch: as on the tabular engine.
            row = record.best_metrics if record.early_stopped else record.history[-1]
            for name in names:
                per_fold[name].append(float(row.get(name, math.nan)))
        metrics: dict[str, float] = {}
        for name, values in per_fold.items():
            mean = float(np.mean(values))
            metrics[name] = mean
            metrics[f"{name}_std"] = float(np.std(values))
        for name in COST_METRICS:  # a metric the module logs itself under that name wins
            metrics.setdefault(name, (self.cost or {}).get(name, math.nan))
        return EpochSummary(
            epoch=self.epoch,
            metrics=metrics,
            fold_metrics=per_fold,
            fold_best_epochs=[r.best_epoch for r in self.records],
            folds_active=sum(not r.stopped for r in self.records),
            finished=self.finished,
        )

    def save(self, directory: str | Path) -> None:
        """Each running fold's Lightning checkpoint (``fold_<k>.ckpt``, written by its own
        paused Trainer) and the coordinator's records (``lockstep.pt``)."""
        directory = Path(directory)
        for fold, run in enumerate(self.runs):
            if run is not None:
                run.send(("save", str(directory / f"fold_{fold}.ckpt")))
                run.next_event()
        folds = [
            {
                "history": r.history,
                "best_score": r.best_score,
                "best_epoch": r.best_epoch,
                "best_metrics": r.best_metrics,
                "stopped": r.stopped,
                "early_stopped": r.early_stopped,
                "rng": r.rng,
                "shuffle": r.shuffle,
                "first_loss": r.first_loss,
            }
            for r in self.records
        ]
        torch.save({"epoch": self.epoch, "folds": folds}, directory / STATE_FILE)

    @staticmethod
    def _read_state(directory: str | Path) -> dict[str, Any]:
        return torch.load(Path(directory) / STATE_FILE, weights_only=True)

    def histories(self) -> list[list[dict[str, float]]]:
        return [list(r.history) for r in self.records]

    def close(self) -> None:
        """Stop every fold still running (ASHA stopped the trial, or it failed) and wait
        for its fit to end; nothing is left running."""
        for fold, run in enumerate(self.runs):
            if run is None:
                continue
            run.send("stop")
            try:
                while run.next_event()[0] != "done":
                    run.send("stop")
            except TrialError as exc:
                log.debug("fold %d ended with %s while stopping", fold, exc)
            run.thread.join()
            self.runs[fold] = None
        shutil.rmtree(self._scratch, ignore_errors=True)
