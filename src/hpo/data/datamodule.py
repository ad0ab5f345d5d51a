"""A user's LightningDataModule as a data source: its rows, labels and loaders, and the
test split and k folds hpo cuts from them.

Without help, the rows are the union of the datasets behind the DataModule's train and
val loaders (its own split is dissolved into k folds); its ``test_dataloader``, if it has
one, is the held-out test, else ``test_size`` of the rows are cut before anything is fit.
Fold loaders keep the original loaders' batch size, collate function, workers and
pin_memory. A DataModule may hand hpo its data itself through the optional hook::

    def hpo_dataset(self) -> dict:
        return {
            "dataset": train_ds,         # every non-test row, training transforms (required)
            "eval_dataset": eval_ds,     # the same rows in the same order, evaluation transforms
            "labels": labels,            # one per row: stratified folds (optional)
            "groups": groups,            # one per row: grouped folds (optional)
            "quality": ...,              # a dict for data_quality.json, or
                                         # report_fn(test_rows) -> a QualityReport (optional)
        }

(with ``eval_dataset``, validation folds see no training augmentation). Nothing here
imports Ray: the driver plans the folds once (``plan_folds``) and every trial rebuilds the
DataModule with its own hyperparameters and applies the same row indices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from hpo.config.targets import DATA_OWN_KEYS, build_target
from hpo.errors import ConfigError, DataError

log = logging.getLogger(__name__)
HOOK = "hpo_dataset"
LABEL_ATTRS = ("targets", "labels", "y")
LABEL_KEYS = ("label", "labels", "target", "targets", "y")
# DataLoader settings a fold's loaders inherit from the DataModule's own loaders.
LOADER_KEYS = (
    "batch_size",
    "collate_fn",
    "num_workers",
    "pin_memory",
    "timeout",
    "worker_init_fn",
    "persistent_workers",
)


@dataclass
class ModuleData:
    """What a DataModule holds, in the form the folds need."""

    dataset: Dataset  # every non-test row (training transforms)
    eval_dataset: Dataset  # the same rows for validation (evaluation transforms if given)
    labels: np.ndarray | None
    groups: np.ndarray | None
    train_loader: dict[str, Any]  # DataLoader settings of the DataModule's train loader
    eval_loader: dict[str, Any]
    test_loader: DataLoader | None  # the DataModule's own test set, if it has one
    source: str  # "hook" or "loaders"
    quality: Any = None  # the hook's findings (a dict) or quality(test_rows) -> QualityReport


@dataclass
class FoldPlan:
    """The split of a DataModule's rows, planned once on the driver (positions in
    ``ModuleData.dataset``)."""

    rows: int
    task: str  # classification | regression | unknown (labels unreadable)
    classes: list | None
    test_rows: np.ndarray | None  # None: the DataModule's own test_dataloader is the test
    folds: list[tuple[np.ndarray, np.ndarray]]
    strategy: str
    source: str
    logged: list[str] = field(default_factory=list)  # metrics the module logs (preflight)
    notes: list[str] = field(default_factory=list)
    quality: Any = None  # the DataModule's findings: a dict or a QualityReport, if it has them

    @property
    def rest_rows(self) -> np.ndarray:
        """The non-test rows the folds index into."""
        everything = np.arange(self.rows)
        return everything if self.test_rows is None else np.setdiff1d(everything, self.test_rows)

    def fold_rows(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        rest = self.rest_rows
        train, val = self.folds[fold]
        return rest[train], rest[val]


def build_datamodule(data_cfg: Mapping[str, Any]) -> L.LightningDataModule:
    """Instantiate the configured DataModule (its constructor keys from the data node)."""
    return build_target(dict(data_cfg), DATA_OWN_KEYS, "data", L.LightningDataModule)


def _overrides(module: L.LightningDataModule, name: str) -> bool:
    return getattr(type(module), name, None) is not getattr(L.LightningDataModule, name, None)


def _loader_settings(loader: Any, name: str) -> dict[str, Any]:
    if isinstance(loader, (list, tuple)):
        if len(loader) != 1:
            raise DataError(
                f"the DataModule's {name}() returns {len(loader)} loaders; hpo folds one "
                f"dataset: return one loader, or implement `{HOOK}()` (README)."
            )
        loader = loader[0]
    if not isinstance(loader, DataLoader):
        raise DataError(
            f"the DataModule's {name}() returned a {type(loader).__name__}, not a DataLoader."
        )
    settings = {key: getattr(loader, key) for key in LOADER_KEYS}
    if settings["batch_size"] is None:
        raise DataError(
            f"the DataModule's {name}() uses a batch_sampler; hpo builds each fold's loader "
            "from a batch size: give the DataLoader batch_size=..., or implement "
            f"`{HOOK}()` (README)."
        )
    if settings["num_workers"] > 0:
        settings["prefetch_factor"] = loader.prefetch_factor
    else:
        settings["persistent_workers"] = False
    return {"dataset": loader.dataset, **settings}


def _sized(dataset: Any, what: str) -> int:
    try:
        return len(dataset)
    except TypeError:
        raise DataError(
            f"{what} has no length ({type(dataset).__name__}, an IterableDataset?); k-fold "
            "cross-validation needs indexable rows: use a map-style Dataset, or implement "
            f"`{HOOK}()` returning one (README)."
        ) from None


def module_data(datamodule: L.LightningDataModule) -> ModuleData:
    """Set the DataModule up (``prepare_data``, ``setup``) and collect its data."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    train = _loader_settings(datamodule.train_dataloader(), "train_dataloader")
    val = (
        _loader_settings(datamodule.val_dataloader(), "val_dataloader")
        if _overrides(datamodule, "val_dataloader")
        else None
    )
    test_loader = None
    if _overrides(datamodule, "test_dataloader"):
        datamodule.setup("test")
        test_loader = datamodule.test_dataloader()
        if isinstance(test_loader, (list, tuple)):
            test_loader = test_loader[0]
    train_settings = {k: v for k, v in train.items() if k != "dataset"}
    eval_settings = {k: v for k, v in (val or train).items() if k != "dataset"}
    hook = getattr(datamodule, HOOK, None)
    if callable(hook):
        given = hook()
        if not isinstance(given, Mapping) or "dataset" not in given:
            raise DataError(f"the DataModule's {HOOK}() must return a dict with a `dataset` key.")
        dataset = given["dataset"]
        eval_dataset = given.get("eval_dataset") or dataset
        rows = _sized(dataset, f"{HOOK}()['dataset']")
        if _sized(eval_dataset, f"{HOOK}()['eval_dataset']") != rows:
            raise DataError(f"{HOOK}()['eval_dataset'] must hold the same rows as ['dataset'].")
        labels = _as_rows(given.get("labels"), rows, "labels")
        groups = _as_rows(given.get("groups"), rows, "groups")
        quality, source = given.get("quality"), "hook"
    else:
        parts = [train["dataset"]]
        if val is not None and val["dataset"] is not train["dataset"]:
            parts.append(val["dataset"])
        for part, name in zip(parts, ("train_dataloader", "val_dataloader")):
            _sized(part, f"the dataset behind {name}()")
        dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
        eval_dataset, labels, groups, source = dataset, None, None, "loaders"
        quality = None
    if labels is None:
        labels = read_labels(dataset)
    return ModuleData(
        dataset, eval_dataset, labels, groups, train_settings, eval_settings, test_loader, source,
        quality,
    )  # fmt: skip


def _as_rows(values: Any, rows: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)
    if len(array) != rows:
        raise DataError(f"{HOOK}()['{name}'] has {len(array)} entries for {rows} rows.")
    return array


def read_labels(dataset: Any) -> np.ndarray | None:
    """Each row's label, where the dataset says it cheaply (``targets``/``labels``
    attributes, a TensorDataset's second tensor, Subset/ConcatDataset of those), else by
    reading the rows (``(x, y)`` tuples or dicts with a label key); None if unreadable."""
    if isinstance(dataset, Subset):
        parent = read_labels(dataset.dataset)
        return None if parent is None else parent[np.asarray(dataset.indices)]
    if isinstance(dataset, ConcatDataset):
        parts = [read_labels(d) for d in dataset.datasets]
        return None if any(p is None for p in parts) else np.concatenate(parts)
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1].cpu().numpy()
    for attr in LABEL_ATTRS:
        values = getattr(dataset, attr, None)
        if values is not None and not callable(values):
            array = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)
            if array.ndim == 1 and len(array) == len(dataset):
                return array
    labels = []
    for index in range(len(dataset)):
        label = _item_label(dataset[index])
        if label is None:
            return None
        labels.append(label)
    return np.asarray(labels)


def _item_label(item: Any) -> Any:
    if isinstance(item, Mapping):
        item = next((item[k] for k in LABEL_KEYS if k in item), None)
    elif isinstance(item, (tuple, list)) and len(item) >= 2:
        item = item[1]
    else:
        return None
    if isinstance(item, torch.Tensor):
        return item.item() if item.numel() == 1 else None
    return item if np.isscalar(item) else None


def infer_task(labels: np.ndarray | None, declared: str) -> str:
    if declared in ("classification", "regression"):
        return declared
    if labels is None:
        return "unknown"
    if labels.dtype.kind in "iub":
        return "classification"
    return "regression" if labels.dtype.kind == "f" else "classification"


def plan_folds(data: ModuleData, cfg) -> FoldPlan:
    """The test split (unless the DataModule has a test set) and the k folds."""
    # scikit-learn's splitters: the driver's work, kept off a trial's imports.
    from hpo.data.splits import holdout_split, make_folds

    rows = _sized(data.dataset, "the DataModule's dataset")
    task = infer_task(data.labels, str(cfg.data.get("task", "auto")))
    strategy = str(cfg.cv.strategy)
    if strategy == "auto":
        strategy = (
            "group"
            if data.groups is not None
            else ("stratified" if task == "classification" and data.labels is not None else "kfold")
        )
    if strategy == "stratified" and (data.labels is None or task != "classification"):
        raise ConfigError(
            "config key `cv.strategy`: stratified folds need class labels, and hpo cannot read "
            "them from this DataModule's dataset (no `targets`/`labels` attribute, rows not "
            f"`(x, y)`); use cv.strategy=kfold, or return `labels` from `{HOOK}()` (README)."
        )
    if strategy == "group" and data.groups is None:
        raise ConfigError(
            f"config key `cv.strategy`: group folds need `groups` from the DataModule's `{HOOK}()`."
        )
    classes = None
    if task == "classification" and data.labels is not None:
        classes = sorted(np.unique(data.labels).tolist())
    y = _split_labels(data.labels, rows, task, classes)
    split_task = task if data.labels is not None else "regression"  # unstratified
    notes = []
    test_rows = None
    if data.test_loader is None:
        rest, test_rows = holdout_split(
            y, float(cfg.test_size), split_task, int(cfg.seed), data.groups
        )
        notes.append(f"{len(test_rows)} of {rows} rows held out for the test (test_size)")
    else:
        rest = np.arange(rows)
        notes.append("the DataModule's test_dataloader() is the held-out test")
    groups = None if data.groups is None else data.groups[rest]
    try:
        folds = make_folds(
            y[rest],
            strategy,
            int(cfg.cv.folds),
            split_task,
            bool(cfg.cv.shuffle),
            int(cfg.seed),
            groups,
        )
    except ValueError as exc:  # too few rows of a class for the folds
        raise DataError(f"cannot cut {cfg.cv.folds} folds from {len(rest)} rows: {exc}") from exc
    plan = FoldPlan(rows, task, classes, test_rows, folds, strategy, data.source, notes=notes)
    # the hook's checks: its findings, or a function run now that the test split is known
    plan.quality = data.quality(test_rows) if callable(data.quality) else data.quality
    return plan


def _split_labels(labels, rows: int, task: str, classes: list | None) -> np.ndarray:
    if labels is None:
        return np.zeros(rows)
    if task == "classification":
        lookup = {c: i for i, c in enumerate(classes)}
        return np.asarray([lookup[v] for v in labels.tolist()])
    return labels.astype(float)


def fold_loaders(
    data: ModuleData, plan: FoldPlan, fold: int, seed: int
) -> tuple[DataLoader, DataLoader]:
    """One fold's train and validation loaders, with the DataModule's loader settings; the
    train loader shuffles with its own seeded generator (repeatable per fold)."""
    train_rows, val_rows = plan.fold_rows(fold)
    return (
        rows_loader(data.dataset, train_rows, data.train_loader, shuffle=True, seed=seed),
        rows_loader(data.eval_dataset, val_rows, data.eval_loader, shuffle=False),
    )


def rows_loader(
    dataset: Dataset, rows: np.ndarray, settings: dict[str, Any], shuffle: bool, seed: int = 0
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        Subset(dataset, rows.tolist()), shuffle=shuffle, generator=generator, **settings
    )


def heldout_loader(data: ModuleData, plan: FoldPlan) -> DataLoader:
    """The held-out test rows: the DataModule's own test loader, or the rows cut from it."""
    if plan.test_rows is None:
        return data.test_loader
    return rows_loader(data.eval_dataset, plan.test_rows, data.eval_loader, shuffle=False)
