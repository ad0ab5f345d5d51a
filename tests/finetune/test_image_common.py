"""The shared fine-tuning pieces on a real (tiny) torch backbone: freeze schedule,
parameter groups, warmup + cosine, head and losses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hpo.errors import ConfigError
from hpo.models.finetune.common import (
    ClassifierHead,
    FreezeSchedule,
    eval_loss,
    param_groups,
    train_loss,
    warmup_cosine,
)


def _backbone():
    torch.manual_seed(0)
    stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    top = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    backbone = nn.Sequential(stem, top, nn.LayerNorm(4))
    return backbone, [stem, top]


def test_freeze_schedule_unfreezes_top_blocks_and_keeps_frozen_norm_stats():
    backbone, blocks = _backbone()
    schedule = FreezeSchedule(blocks, unfreeze_epoch=1, trainable_blocks=1)
    assert schedule.apply(0) == [True, True]
    assert not any(p.requires_grad for p in backbone[:2].parameters())
    assert schedule.apply(1) == [True, False]
    assert blocks[1][0].weight.requires_grad and not blocks[0][0].weight.requires_grad
    backbone.train()
    schedule.keep_frozen_norms_eval()
    stats = blocks[0][1].running_mean.clone()
    backbone(torch.randn(4, 3, 8, 8))
    assert torch.equal(blocks[0][1].running_mean, stats)  # frozen BN did not drift
    assert blocks[1][1].training
    with pytest.raises(ConfigError, match="model.unfreeze_epoch"):
        FreezeSchedule(blocks, unfreeze_epoch=-1)


def test_param_groups_layer_rates_no_decay_on_norms_and_every_parameter_once():
    backbone, blocks = _backbone()
    head = ClassifierHead(4, 3, dropout=0.2)
    groups = param_groups(head, blocks, backbone, 1e-3, 0.05, backbone_lr_mult=0.1, layer_decay=0.5)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == pytest.approx(1e-3)
    assert rates["block1"] == pytest.approx(1e-4) and rates["block0"] == pytest.approx(5e-5)
    for group in groups:
        if group["name"].endswith("no_decay"):
            assert group["weight_decay"] == 0.0 and all(p.ndim == 1 for p in group["params"])
    placed = [id(p) for g in groups for p in g["params"]]
    everything = {id(p) for p in [*head.parameters(), *backbone.parameters()]}
    assert len(placed) == len(set(placed)) and set(placed) == everything
    with pytest.raises(ConfigError, match="model.layer_decay"):
        param_groups(head, blocks, backbone, 1e-3, 0.0, layer_decay=1.5)


def test_warmup_then_cosine_keeps_each_groups_ratio():
    backbone, blocks = _backbone()
    groups = param_groups(ClassifierHead(4, 3), blocks, backbone, 1.0, 0.0, backbone_lr_mult=0.1)
    optimizer = torch.optim.AdamW(groups)
    scheduler = warmup_cosine(optimizer, warmup_steps=3, total_steps=13, min_lr_ratio=0.1)
    seen = []
    for _ in range(14):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    head = [row[0] for row in seen]
    assert head[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(head[3:], head[4:]))  # cosine only decreases
    assert head[13] == pytest.approx(0.1)
    assert all(row[-1] == pytest.approx(row[0] * 0.1) for row in seen)


def test_label_smoothing_only_in_the_training_loss():
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]])
    y = torch.tensor([0, 1])
    assert train_loss(logits, y, "classification", 0.2) > eval_loss(logits, y, "classification")
    soft = torch.tensor([[0.7, 0.3], [0.2, 0.8]])  # mixup's targets
    assert train_loss(logits, soft, "classification", 0.1).ndim == 0
    with pytest.raises(ConfigError, match="model.label_smoothing"):
        train_loss(logits, y, "classification", 0.9)


def test_regression_head_is_fitted_to_the_training_rows_values_only(tmp_path):
    """TargetScaling: the mean and spread come from the rows the Trainer trains on (a
    Subset, as hpo's folds are), are saved with the weights, and the untrained module
    already predicts the training mean."""
    import lightning as L
    from torch.utils.data import DataLoader, Dataset, Subset
    from transformers import ResNetConfig, ResNetModel

    from hpo.models.finetune.image import ImageFinetuner

    class Rows(Dataset):
        def __init__(self):
            torch.manual_seed(1)
            self.x = torch.randn(40, 1, 16, 16)
            self.targets = [1000.0 + 10 * i for i in range(40)]

        def __len__(self):
            return 40

        def __getitem__(self, i):
            return self.x[i], torch.tensor(self.targets[i], dtype=torch.float32)

    config = ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8], depths=[1],
                          layer_type="basic")  # fmt: skip
    ResNetModel(config).save_pretrained(tmp_path / "resnet")
    model = ImageFinetuner(weights=str(tmp_path / "resnet"), num_classes=1, task="regression",
                           lr=1e-9, warmup_epochs=0)  # fmt: skip
    rows = Rows()
    train = Subset(rows, list(range(0, 20)))  # values 1000..1190; the rest are never seen
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, DataLoader(train, batch_size=8))
    seen = torch.tensor(rows.targets[:20])
    assert float(model.target_mean) == pytest.approx(float(seen.mean()))
    assert float(model.target_std) == pytest.approx(float(seen.std()))
    model.eval()
    with torch.no_grad():
        predicted = model(rows.x[:20]).squeeze(-1)
    # lr ~0: the head is still random, yet its predictions sit at the training mean's scale
    assert (predicted - seen.mean()).abs().max() < 5 * seen.std()
    assert {"target_mean", "target_std", "target_fitted"} <= set(model.state_dict())
