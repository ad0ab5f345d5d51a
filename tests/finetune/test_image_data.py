"""data=images without Ray: the train/test folder layout, leakage and duplicate checks,
training augmentation vs plain evaluation rows, and the predict loader (real face images)."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from examples.finetune_image.data import write_faces_folder
from hpo.data.datamodule import module_data
from hpo.data.images import ImageFolderDataModule
from hpo.errors import DataError


@pytest.fixture(scope="module")
def split_folder(tmp_path_factory):
    """PATH/train and PATH/test from 24 face / non-face images; one training image is
    also in the test folder (leakage), one is in training twice under both classes."""
    root = tmp_path_factory.mktemp("images")
    faces = write_faces_folder(root / "all")
    for split, rows in (("train", range(0, 8)), ("test", range(8, 12))):
        for i in rows:
            for label, offset in (("face", 0), ("nonface", 100)):
                (root / split / label).mkdir(parents=True, exist_ok=True)
                shutil.copy(faces / label / f"{i + offset}.png", root / split / label)
    shutil.copy(root / "train/face/0.png", root / "test/face/leaked.png")
    shutil.copy(root / "train/face/1.png", root / "train/nonface/mislabelled.png")
    Image.open(root / "train/face/2.png").save(root / "train/face/2_again.bmp")
    return root


def test_split_layout_checks_and_transforms(split_folder):
    dm = ImageFolderDataModule(path=str(split_folder), image_size=20, mode="L", crop_scale=0.5)
    data = module_data(dm)
    quality = data.quality
    assert quality["duplicates"]["counts"] == {
        "within_train": 2, "train_in_test": 1, "conflicting_labels": 1,
    }  # fmt: skip
    assert any("leakage" in w for w in quality["warnings"])
    assert len(data.dataset) == 16 - 1 and quality["test_images"] == 9  # 0.png left training
    assert all("face/0.png" not in e for e in data.dataset.examples)
    assert data.test_loader is not None and len(data.test_loader.dataset) == 9

    torch.manual_seed(0)
    plain = [data.eval_dataset[3][0] for _ in range(2)]
    augmented = [data.dataset[3][0] for _ in range(4)]
    assert plain[0].shape == (1, 20, 20) and torch.equal(plain[0], plain[1])
    assert any(not torch.equal(a, plain[0]) for a in augmented)


def test_errors_name_the_key_and_predict_reads_a_flat_folder(split_folder, tmp_path):
    with pytest.raises(DataError, match="data.on_duplicate"):
        module_data(ImageFolderDataModule(path=str(split_folder), on_duplicate="error"))
    flat = tmp_path / "new"
    flat.mkdir()
    shutil.copy(split_folder / "test/face/8.png", flat / "a.png")
    (flat / "b.png").write_bytes(b"truncated")
    dm = ImageFolderDataModule(path=str(tmp_path / "gone"), image_size=20, mode="L")
    loader, examples = dm.hpo_predict_loader(str(flat))  # no training data needed
    assert examples == [str(flat / "a.png")] and next(iter(loader))[0].shape == (1, 1, 20, 20)
    strict = ImageFolderDataModule(path=str(tmp_path), mode="L", on_bad_image="error")
    with pytest.raises(DataError, match="b.png"):
        strict.hpo_predict_loader(str(flat))
