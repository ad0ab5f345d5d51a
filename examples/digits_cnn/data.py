"""Digits as an ImageFolder of PNG files, and a LightningDataModule that reads it.

scikit-learn ships the UCI optical digits (1,797 real 8x8 grayscale scans, 10 classes).
``prepare_data`` writes them once as ``data_dir/{train,test}/<class>/<index>.png`` so the
example reads images from disk like any ordinary image project; ``<index>`` is the row in
``sklearn.datasets.load_digits()``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, Subset

# Pixel mean and std of all 1,797 digits scaled to [0, 1]. Constants, not fitted per run: the
# normalization must not depend on which rows a run trains on.
MEAN = 0.3053
STD = 0.3760
TEST_FRACTION = 0.2
# Fixed on purpose: the on-disk test split is shared by every run, whatever its `seed`.
TEST_SPLIT_SEED = 0
IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def write_digits_image_folder(data_dir: str | os.PathLike) -> Path:
    """Write scikit-learn's digits as a PNG ImageFolder, unless ``data_dir`` already exists.

    The images go to a temporary sibling folder that is then renamed into place, so a reader
    never sees a half-written folder and two processes preparing at once do not clash. An
    existing ``data_dir`` is never overwritten.

    Args:
        data_dir: Folder to create, holding ``train/<class>/<i>.png`` and ``test/<class>/<i>.png``
            with a stratified 20% test split (seed ``TEST_SPLIT_SEED``).

    Returns:
        The path of ``data_dir``.
    """
    root = Path(data_dir)
    if root.exists():
        return root
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.arange(len(digits.target))
    train_rows, test_rows = train_test_split(
        rows, test_size=TEST_FRACTION, stratify=digits.target, random_state=TEST_SPLIT_SEED
    )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        for split, split_rows in (("train", train_rows), ("test", test_rows)):
            for i in split_rows:
                class_dir = tmp / split / str(digits.target[i])
                class_dir.mkdir(parents=True, exist_ok=True)
                # The scans hold integers 0..16; spread them over 0..255 for an 8-bit PNG.
                pixels = np.rint(digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
                Image.fromarray(pixels).save(class_dir / f"{i}.png")
        tmp.chmod(0o755)  # mkdtemp makes it private; the data folder need not be
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.is_dir():
                raise
            # Another process renamed its copy into place first: keep that one.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


class ImageFolderDataset(Dataset):
    """A minimal stand-in for ``torchvision.datasets.ImageFolder`` (PIL only).

    Class folders are sorted by name and numbered from 0; files are sorted by name within each.

    Attributes:
        classes: Class folder names, sorted.
        class_to_idx: Class name to label.
        samples: ``(path, label)`` pairs.
        targets: The label of each sample, as a list of ints (for stratified splits).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        mode: str = "L",
    ) -> None:
        """Index ``root/<class>/<file>``.

        Args:
            root: Folder with one subfolder per class.
            transform: Applied to each PIL image; without one, items are PIL images.
            mode: PIL mode every image is converted to ("L" grayscale, "RGB" colour).
        """
        self.root = Path(root)
        self.transform = transform
        self.mode = mode
        if not self.root.is_dir():
            raise FileNotFoundError(f"no image folder at {self.root}")
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"no class folders under {self.root}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples = [
            (path, self.class_to_idx[name])
            for name in self.classes
            for path in sorted((self.root / name).iterdir())
            if path.suffix.lower() in IMG_EXTENSIONS
        ]
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Image.Image, int]:
        path, label = self.samples[index]
        with Image.open(path) as img:
            img = img.convert(self.mode)
        return (self.transform(img) if self.transform else img), label


class LabeledSubset(Subset):
    """A ``Subset`` that keeps ``.targets`` and ``.classes`` of the dataset it selects from."""

    @property
    def targets(self) -> list[int]:
        return [self.dataset.targets[i] for i in self.indices]

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes


class ToNormalizedTensor:
    """Resize a grayscale PIL image, optionally shift it at random, and normalize it.

    Args:
        image_size: Output height and width in pixels.
        max_shift: Largest random shift in pixels along each axis (0 disables it). The image is
            zero-padded before the shift, which is the digits' black background.
    """

    def __init__(self, image_size: int, max_shift: int = 0) -> None:
        self.image_size = image_size
        self.max_shift = max_shift

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)
        if self.max_shift:
            x = random_shift(x, self.max_shift)
        return (x - MEAN) / STD


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift a ``[C, H, W]`` image by up to ``max_shift`` pixels per axis, filling with zeros."""
    m = max_shift
    dy, dx = torch.randint(-m, m + 1, (2,)).tolist()
    padded = F.pad(x, (m, m, m, m))
    h, w = x.shape[-2:]
    return padded[:, m + dy : m + dy + h, m + dx : m + dx + w]


class DigitsImageDataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over the digits PNG folder.

    The val split is ``val_fraction`` of the train folder, stratified and seeded with ``seed``;
    the test split is the test folder, fixed on disk. Only the train subset is augmented
    (random shift); val, test and predict images are only resized and normalized.
    ``predict_dataloader`` yields the test folder as ``(images, labels)`` batches, exactly like
    ``test_dataloader``, so predictions can be scored; ``LitDigitsCNN.predict_step`` uses only
    the images.

    Args:
        data_dir: Where the PNG folder is (written by ``prepare_data`` if missing).
        batch_size: Batch size of every loader.
        num_workers: DataLoader worker processes.
        val_fraction: Share of the train folder held out for validation, in (0, 1).
        image_size: Side in pixels the 8x8 scans are upscaled to.
        seed: Seeds the val split and the train shuffling.
        max_shift: Largest random shift of train images in pixels (0: no augmentation).
    """

    def __init__(
        self,
        data_dir: str = "data/digits_images",
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.2,
        image_size: int = 16,
        seed: int = 0,
        max_shift: int = 1,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.num_classes = 10
        self.train_set: LabeledSubset | None = None
        self.val_set: LabeledSubset | None = None
        self.test_set: ImageFolderDataset | None = None

    def prepare_data(self) -> None:
        """Write the PNG folder once (called on one process only, as Lightning intends)."""
        write_digits_image_folder(self.data_dir)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs from the folder."""
        size, shift = self.hparams.image_size, self.hparams.max_shift
        if stage in (None, "fit", "validate") and self.train_set is None:
            folder = self.data_dir / "train"
            plain = ImageFolderDataset(folder, transform=ToNormalizedTensor(size))
            augmented = ImageFolderDataset(folder, transform=ToNormalizedTensor(size, shift))
            train_idx, val_idx = train_test_split(
                np.arange(len(plain)),
                test_size=self.hparams.val_fraction,
                stratify=plain.targets,
                random_state=self.hparams.seed,
            )
            self.train_set = LabeledSubset(augmented, train_idx.tolist())
            self.val_set = LabeledSubset(plain, val_idx.tolist())
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = ImageFolderDataset(
                self.data_dir / "test", transform=ToNormalizedTensor(size)
            )

    def _loader(self, dataset: Sequence, shuffle: bool = False) -> DataLoader:
        generator = torch.Generator().manual_seed(self.hparams.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)
