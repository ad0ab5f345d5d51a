"""On a CUDA machine: the fine-tuning module trains under AMP (bf16-mixed, 16-mixed) with
channels_last, loss finite and images/s printed; skipped without CUDA (no GPU in CI)."""

from __future__ import annotations

import time

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_amp_channels_last_fine_tuning_on_cuda(tmp_path, precision):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset
    from transformers import ResNetConfig, ResNetModel

    from hpo.models.finetune.image import ImageFinetuner

    config = ResNetConfig(embedding_size=32, hidden_sizes=[32, 64, 128], depths=[1, 1, 1])
    ResNetModel(config).save_pretrained(tmp_path / "resnet")
    model = ImageFinetuner(weights=str(tmp_path / "resnet"), num_classes=4, channels_last=True)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, 3, 64, 64, generator=generator)
    y = torch.randint(0, 4, (512,), generator=generator)
    loader = DataLoader(TensorDataset(x, y), batch_size=128)
    trainer = L.Trainer(
        accelerator="gpu", devices=1, precision=precision, max_epochs=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=loader)
    seconds = time.perf_counter() - started
    loss = float(trainer.callback_metrics["train_loss"])
    assert torch.isfinite(torch.tensor(loss))
    assert model.head[1].weight.is_cuda
    print(f"{precision} channels_last: {2 * len(x) / seconds:.0f} images/s (2 epochs, 64x64)")
