"""``data=images``: an ImageFolder (``PATH/<class>/<image>``, or ``PATH/train/<class>/...``
with ``PATH/test/<class>/...`` as the held-out test) as a LightningDataModule, read with
PIL (no torchvision) and transformed with torch ops.

Quality checks (hpo.data.image_checks) run once, when the folder is indexed (``setup``):
every image is decoded (an unreadable or corrupt file is listed, then skipped or an
error: ``on_bad_image``), hashed by its decoded pixels (exact duplicates within the
training pool, and training images that are also in the test folder, which is leakage:
``on_duplicate``), and the class counts are compared (imbalance). The findings go to
``data_quality.json`` through the ``hpo_dataset`` hook (hpo.data.datamodule), which also
hands hpo the rows with training transforms and the same rows with evaluation transforms, so that validation
folds are never augmented.

Normalisation and input size come from the backbone's own image-processor config
(``preprocessor_config.json`` in the weights directory, ``processor``), unless set.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from hpo.data.image_checks import (
    DECODE_ERRORS,
    FolderIndex,
    class_names,
    decode,
    find_duplicates,
    image_files,
    image_quality,
    index_folder,
    index_targets,
    keep_rows,
)
from hpo.data.text import read_table, text_column
from hpo.errors import ConfigError, DataError

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROCESSOR_FILE = "preprocessor_config.json"


@dataclass
class Preprocessing:
    """What turns a file into the model's input: the exported model's manifest holds it,
    so that ONNX users apply the same steps (RGB/L, resize to ``size`` bilinear with
    antialias, pixels / 255, ``(x - mean) / std``, NCHW float32)."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mode: str = "RGB"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "size": list(self.size),
            "resize": "bilinear, antialias",
            "scale": 1 / 255,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": "NCHW float32",
        }


def processor_settings(processor: str | None) -> dict[str, Any]:
    """``image_mean``, ``image_std`` and ``size`` of a transformers image-processor config
    (``preprocessor_config.json`` in ``processor``, a directory); {} when there is none."""
    if not processor:
        return {}
    path = Path(processor)
    path = path / PROCESSOR_FILE if path.is_dir() else path.with_name(PROCESSOR_FILE)
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"config key `data.processor`: {path} is not JSON ({exc}).") from exc
    size = raw.get("crop_size") or raw.get("size")
    if isinstance(size, dict):
        side = size.get("shortest_edge")
        size = (size.get("height", side), size.get("width", side))
    elif isinstance(size, int):
        size = (size, size)
    return {"mean": raw.get("image_mean"), "std": raw.get("image_std"), "size": size}


def backbone_mode(processor: str | None) -> str:
    """``L`` for a backbone whose config.json (beside its processor config) takes one
    channel, else ``RGB``."""
    if processor:
        path = Path(processor)
        config = (path if path.is_dir() else path.parent) / "config.json"
        try:
            if json.loads(config.read_text()).get("num_channels") == 1:
                return "L"
        except (OSError, ValueError):
            pass
    return "RGB"


def resolve_preprocessing(
    image_size: int | None, mean, std, processor: str | None, mode: str
) -> Preprocessing:
    """Explicit keys first, then the backbone's processor config, then ImageNet's."""
    found = processor_settings(processor)
    channels = 1 if mode == "L" else 3
    size = (image_size, image_size) if image_size else tuple(found.get("size") or (224, 224))
    mean = tuple(mean or found.get("mean") or IMAGENET_MEAN)
    std = tuple(std or found.get("std") or IMAGENET_STD)
    if len(mean) != channels or len(std) != channels:
        mean, std = (float(np.mean(mean)),) * channels, (float(np.mean(std)),) * channels
    return Preprocessing((int(size[0]), int(size[1])), mean, std, mode)


def resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``[C, H, W]`` to float ``[C, *size]`` in [0, 1], bilinear with antialias."""
    x = pixels.float().unsqueeze(0) / 255.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.squeeze(0).clamp(0.0, 1.0)


def random_resized_crop(pixels: torch.Tensor, min_scale: float) -> torch.Tensor:
    """A random crop of ``[min_scale, 1]`` of the area, aspect ratio in [3/4, 4/3]
    (torchvision's RandomResizedCrop, in torch ops); resized by the caller."""
    height, width = pixels.shape[-2:]
    area = height * width
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(min_scale, 1.0))
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,)))
            left = int(torch.randint(0, width - w + 1, (1,)))
            return pixels[:, top : top + h, left : left + w]
    return pixels


class ImageRows(Dataset):
    """The indexed images as ``(tensor, label)`` rows, with training augmentation
    (random resized crop, horizontal flip, brightness/contrast jitter) or without.

    Attributes:
        targets: Each row's label (for stratified folds).
        examples: Each row's file path (the report's misclassified thumbnails, predict).
    """

    def __init__(
        self,
        index: FolderIndex,
        prep: Preprocessing,
        mode: str,
        augment: bool,
        crop_scale: float = 0.6,
        hflip: bool = True,
        jitter: float = 0.0,
        regression: bool = False,
    ) -> None:
        self.index, self.prep, self.mode, self.regression = index, prep, mode, regression
        self.augment, self.crop_scale, self.hflip, self.jitter = augment, crop_scale, hflip, jitter
        self.targets = list(index.labels)
        self.examples = [str(p) for p in index.files]
        self.mean = torch.tensor(prep.mean).view(-1, 1, 1)
        self.std = torch.tensor(prep.std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.index.files)

    def pixels(self, i: int) -> torch.Tensor:
        cached = self.index.pixels[i]
        return cached if cached is not None else decode(self.index.files[i], self.mode)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        pixels = self.pixels(i)
        if self.augment and self.crop_scale < 1.0:
            pixels = random_resized_crop(pixels, self.crop_scale)
        x = resize(pixels, self.prep.size)
        if self.augment:
            if self.hflip and bool(torch.rand(()) < 0.5):
                x = x.flip(-1)
            if self.jitter > 0:
                gain = 1.0 + float(torch.empty(1).uniform_(-self.jitter, self.jitter))
                contrast = 1.0 + float(torch.empty(1).uniform_(-self.jitter, self.jitter))
                x = ((x - x.mean()) * contrast + x.mean() * gain).clamp(0.0, 1.0)
        label = self.index.labels[i]
        if self.regression:  # a float32 target (default collate would make float64)
            label = torch.tensor(float(label), dtype=torch.float32)
        return (x - self.mean) / self.std, label


class ImageFolderDataModule(L.LightningDataModule):
    """An ImageFolder for hpo's folds (``data=images``; README "Fine-tuning (images)").

    Args:
        path: The folder: ``PATH/<class>/<image>`` (hpo cuts ``test_size`` for the test),
            or ``PATH/train/<class>/...`` and ``PATH/test/<class>/...`` (the test folder
            is the held-out test).
        batch_size: Batch size of every loader (tunable).
        num_workers: DataLoader worker processes.
        image_size: Input side in pixels; null: the backbone processor's, else 224.
        mean, std: Per-channel normalisation; null: the backbone processor's, else ImageNet's.
        processor: Where the backbone's ``preprocessor_config.json`` is (default: the
            model's weights directory).
        mode: ``RGB`` or ``L`` (grayscale); images are converted to it. null: ``L`` when
            the backbone's config.json says ``num_channels: 1``, else ``RGB``.
        augment: Training augmentation on or off (evaluation rows never get it).
        crop_scale: Smallest area fraction of the random resized crop (1: no crop).
        hflip: Random horizontal flips (off for images whose side matters: text, digits).
        jitter: Brightness/contrast jitter amplitude (0: off).
        on_bad_image: ``skip`` (listed in data_quality.json) or ``error``.
        on_duplicate: ``drop`` (keep the first copy; a training image also in the test
            folder is dropped from training), ``keep`` (listed only) or ``error``.
        cache: Keep the decoded images in memory (read from disk once).
        targets: Regression: a CSV or Parquet file of image files (relative to ``path``, or
            absolute) and their values; class folders are then not needed, the rows are
            the table's (an empty value drops its row, listed), and hpo cuts the test.
        file_column, target: The targets table's columns of files and of values.
    """

    def __init__(
        self,
        path: str | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        image_size: int | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        processor: str | None = None,
        mode: str | None = None,
        augment: bool = True,
        crop_scale: float = 0.6,
        hflip: bool = True,
        jitter: float = 0.0,
        on_bad_image: str = "skip",
        on_duplicate: str = "drop",
        cache: bool = True,
        targets: str | None = None,
        file_column: str = "file",
        target: str = "target",
    ) -> None:
        super().__init__()
        self.targets = None if targets in (None, "", "None") else str(targets)
        self.file_column, self.target = str(file_column), str(target)
        self.regression = self.targets is not None
        _choice("on_bad_image", on_bad_image, ("skip", "error"))
        _choice("on_duplicate", on_duplicate, ("drop", "keep", "error"))
        mode = mode or backbone_mode(processor)
        _choice("mode", mode, ("RGB", "L"))
        if not 0.05 <= float(crop_scale) <= 1.0:
            raise ConfigError(f"config key `data.crop_scale`: {crop_scale} is outside [0.05, 1].")
        self.path = str(path)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.mode, self.cache = mode, bool(cache)
        self.augment = dict(crop_scale=float(crop_scale), hflip=bool(hflip), jitter=float(jitter))
        self.use_augment = bool(augment)
        self.on_bad_image, self.on_duplicate = on_bad_image, on_duplicate
        if processor and not Path(str(processor)).exists():
            raise ConfigError(
                f"config key `data.processor`: {processor} does not exist; it is "
                "model.weights unless set: point model.weights at the local weights "
                "(whose preprocessor_config.json gives size and normalisation)."
            )
        self.prep = resolve_preprocessing(image_size, mean, std, processor, mode)
        self.classes: list[str] = []
        self.quality: dict[str, Any] | None = None
        self.train_rows: ImageRows | None = None

    # -- indexing and checks -----------------------------------------------------------
    def layout(self) -> tuple[Path, Path | None]:
        """The training folder and the test folder (None: hpo cuts the test), and the
        class names (sorted folder names; label i is ``classes[i]``)."""
        root = Path(self.path).expanduser()
        if self.path in ("???", "", "None") or not root.is_dir():
            unset = self.path in ("None", "???", "")
            given = "is not set" if unset else f"{self.path!r} is not a directory"
            raise ConfigError(
                f"config key `data.path`: {given}; point it at an "
                "image folder laid out PATH/<class>/<image> (or PATH/train/... and "
                "PATH/test/...)."
            )
        if self.regression:
            return root, None  # the targets table names the rows; hpo cuts the test
        split = (root / "train").is_dir() and (root / "test").is_dir()
        train_root = root / "train" if split else root
        self.classes = class_names(train_root)
        if len(self.classes) < 2:
            raise ConfigError(
                f"config key `data.path`: {train_root} holds {len(self.classes)} class "
                "folder(s); an ImageFolder needs one folder per class, two or more."
            )
        return train_root, (root / "test" if split else None)

    def setup(self, stage: str | None = None) -> None:
        if self.train_rows is not None:
            return
        self.train_root, self.test_root = self.layout()
        self.missing_targets: list[str] = []
        train = (
            self._index_targets()
            if self.regression
            else index_folder(self.train_root, self.classes, self.mode, self.cache)
        )
        test = (
            index_folder(self.test_root, self.classes, self.mode, self.cache)
            if self.test_root
            else None
        )
        self._check_bad([*train.bad, *(test.bad if test else [])])
        train, duplicates = self._dedupe(train, test)
        self.quality = image_quality(train, test, self.classes, duplicates, self.prep.as_dict())
        if self.missing_targets:
            self.quality["rows_without_target"] = {
                "count": len(self.missing_targets), "files": self.missing_targets[:20]
            }  # fmt: skip
            self.quality["warnings"].append(
                f"{len(self.missing_targets)} row(s) of data.targets without a value dropped"
            )
        self.train_index, self.test_index = train, test
        self.train_rows = self.rows(train, augment=self.use_augment)
        self.eval_rows = self.rows(train, augment=False)
        self.test_rows = self.rows(test, augment=False) if test else None

    def rows(self, index: FolderIndex, augment: bool) -> ImageRows:
        return ImageRows(
            index, self.prep, self.mode, augment, **self.augment, regression=self.regression
        )

    def _index_targets(self) -> FolderIndex:
        """The regression rows: the targets table's files and numeric values."""
        frame = read_table(self.targets, "data.targets")
        files = text_column(frame, self.file_column, "data.file_column", self.targets)
        raw = text_column(frame, self.target, "data.target", self.targets)
        values = pd.to_numeric(raw, errors="coerce")
        stray = raw.notna() & values.isna()
        if stray.any():
            raise DataError(
                f"config key `data.target`: column {self.target!r} of {self.targets} holds "
                f"non-numbers (e.g. {raw[stray].iloc[0]!r} for {files[stray].iloc[0]}); "
                "regression needs numbers (class folders make a classification set)."
            )
        keep = values.notna() & files.notna()
        self.missing_targets = files[~keep].astype(str).tolist()
        return index_targets(
            self.train_root, files[keep].astype(str).tolist(), values[keep].tolist(),
            self.mode, self.cache,
        )  # fmt: skip

    def _check_bad(self, bad: list[dict[str, str]]) -> None:
        if bad and self.on_bad_image == "error":
            shown = "; ".join(f"{b['file']} ({b['error']})" for b in bad[:3])
            raise DataError(
                f"config key `data.on_bad_image`: {len(bad)} unreadable image(s): {shown}"
                f"{' ...' if len(bad) > 3 else ''}. Remove them, or set data.on_bad_image=skip."
            )
        for item in bad:
            log.warning("skipped unreadable image %s: %s", item["file"], item["error"])

    def _dedupe(
        self, train: FolderIndex, test: FolderIndex | None
    ) -> tuple[FolderIndex, dict[str, Any]]:
        within, leaked, conflicting = find_duplicates(train, test)
        found = {
            "within_train": [str(train.files[i]) for i in within],
            "train_in_test": [str(train.files[i]) for i in leaked],
            "conflicting_labels": [str(train.files[i]) for i in conflicting],
        }
        total = len(within) + len(leaked)
        if total and self.on_duplicate == "error":
            raise DataError(
                f"config key `data.on_duplicate`: {len(within)} duplicate image(s) in the "
                f"training folder and {len(leaked)} that are also in the test folder (e.g. "
                f"{(found['train_in_test'] or found['within_train'])[0]}). Remove them, or set "
                "data.on_duplicate=drop."
            )
        if total and self.on_duplicate == "drop":
            dropped = set(within) | set(leaked)
            train = keep_rows(train, [i for i in range(len(train.files)) if i not in dropped])
        found["action"] = self.on_duplicate
        return train, found

    # -- what hpo and Lightning read -----------------------------------------------------
    def hpo_dataset(self) -> dict[str, Any]:
        """The non-test rows with training and with evaluation transforms, their labels,
        and the quality findings (hpo.data.datamodule's hook)."""
        self.setup("fit")
        return {
            "dataset": self.train_rows,
            "eval_dataset": self.eval_rows,
            "labels": np.asarray(self.train_rows.targets),
            "quality": self.quality,
        }

    def hpo_class_names(self) -> list[str]:
        """Label i is ``classes[i]``, the sorted class folder names (best/model.json);
        none for regression."""
        self.setup("fit")
        return [] if self.regression else list(self.classes)

    def hpo_preprocessing(self) -> dict[str, Any]:
        """The input steps the exported model needs (written into best/model.json)."""
        return {**self.prep.as_dict(), "classes": list(self.classes)}

    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_rows, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.eval_rows)

    def test_dataloader(self) -> DataLoader | None:
        """The test folder (PATH/train + PATH/test layout); None without one: hpo then
        cuts ``test_size`` of the rows. Its labels are the training folder's class order."""
        self.setup("test")
        return None if self.test_rows is None else self._loader(self.test_rows)

    def hpo_predict_loader(self, folder: str) -> tuple[DataLoader, list[str]]:
        """Every image under ``folder`` (recursively; class folders are not needed) with
        evaluation transforms, and the files in row order. Unreadable files are skipped
        with a warning, or an error under ``on_bad_image=error``. The training folder is
        not needed."""
        root = Path(folder)
        if not root.is_dir():
            raise DataError(f"hpo predict: {folder} is not a folder of images.")
        files = image_files(root)
        good, bad, pixels = [], [], []
        for path in files:
            try:
                decoded = decode(path, self.mode)
                good.append(path)
                pixels.append(decoded if self.cache else None)
            except DECODE_ERRORS as exc:
                bad.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
        self._check_bad(bad)
        if not good:
            raise DataError(f"hpo predict: no readable images under {folder}.")
        index = FolderIndex(good, [-1] * len(good), [""] * len(good), pixels)
        return self._loader(self.rows(index, augment=False)), [str(p) for p in good]


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"config key `data.{key}`: {value!r} is not one of {', '.join(allowed)}.")
