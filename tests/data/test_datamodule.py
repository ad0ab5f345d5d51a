"""A user's DataModule as a data source: rows, labels, the test split and the folds."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import ConcatDataset, Subset, TensorDataset

from hpo.data.datamodule import (
    build_datamodule,
    fold_loaders,
    heldout_loader,
    module_data,
    plan_folds,
    read_labels,
)


def cfg_for(target: str, **keys):
    return OmegaConf.create({
        "data": {"_target_": target, "name": "x", "source": "lightning", "task": "auto", **keys},
        "cv": {"folds": 4, "strategy": "auto", "shuffle": True}, "test_size": 0.2, "seed": 3,
    })  # fmt: skip


def load(target: str, **keys):
    cfg = cfg_for(target, **keys)
    data = module_data(build_datamodule(cfg.data))
    return cfg, data, plan_folds(data, cfg)


def test_the_train_and_val_loaders_rows_are_folded_and_the_test_set_kept_apart():
    cfg, data, plan = load("lightning_models.DigitsDataModule", batch_size=48)
    assert plan.rows == 1797 - 300 and plan.test_rows is None  # its own test_dataloader
    assert data.source == "loaders" and plan.task == "classification"
    assert plan.classes == list(range(10)) and plan.strategy == "stratified"
    validated = np.concatenate([val for _, val in (plan.fold_rows(k) for k in range(4))])
    assert sorted(validated) == list(range(plan.rows))  # every row validated exactly once
    for k in range(4):
        train, val = plan.fold_rows(k)
        assert not set(train) & set(val)
        counts = np.bincount(data.labels[val], minlength=10) / len(val)
        assert np.abs(counts - np.bincount(data.labels, minlength=10) / plan.rows).max() < 0.02
    train_loader, val_loader = fold_loaders(data, plan, 0, seed=0)
    assert train_loader.batch_size == 48 and val_loader.batch_size == 256  # the DataModule's
    assert len(heldout_loader(data, plan).dataset) == 300


def test_without_a_test_dataloader_test_size_is_cut_before_the_folds():
    cfg, data, plan = load("lightning_models.NoTestDigits")
    assert plan.rows == 1797 and len(plan.test_rows) == int(np.ceil(0.2 * 1797))
    rest = set(plan.rest_rows)
    assert not rest & set(plan.test_rows)
    for k in range(4):
        train, val = plan.fold_rows(k)
        assert set(train) | set(val) == rest  # no fold row is a test row
    test = heldout_loader(data, plan)
    assert list(test.dataset.indices) == plan.test_rows.tolist()


def test_the_hook_hands_hpo_its_rows_and_labels():
    cfg, data, plan = load("lightning_models.HookedDigits")
    assert data.source == "hook" and plan.rows == 1797 and plan.strategy == "stratified"


def test_labels_are_read_from_common_dataset_shapes():
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 2, 2])
    tensors = TensorDataset(x, y)
    assert read_labels(tensors).tolist() == y.tolist()
    assert read_labels(Subset(tensors, [5, 0])).tolist() == [2, 0]
    assert read_labels(ConcatDataset([tensors, tensors])).tolist() == y.tolist() * 2
    assert read_labels([(row, int(label)) for row, label in zip(x, y)]).tolist() == y.tolist()
    assert (
        read_labels([{"x": row, "label": label} for row, label in zip(x, y)]).tolist() == y.tolist()
    )
    assert read_labels([row for row in x]) is None
