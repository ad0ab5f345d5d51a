"""The checks of an image folder (hpo.data.images), done once when it is indexed: every
image decoded (the unreadable are listed), hashed by its decoded pixels (exact duplicates,
and training images also in the test folder: leakage), and the class counts (imbalance).
What they find is the ``quality`` dict that goes to ``data_quality.json``."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hpo.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# What PIL raises on a file that is not a (complete) image.
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)
IMBALANCE_RATIO = 3.0  # largest / smallest class count at which the imbalance is a warning
LISTED = 20  # file names listed per finding in data_quality.json


@dataclass
class FolderIndex:
    """The readable images of an ImageFolder and what the checks found."""

    files: list[Path]
    labels: list[Any]  # class positions (int), or the target values (float) for regression
    hashes: list[str]
    pixels: list[torch.Tensor | None]  # decoded uint8 [C, H, W] when cached, else None
    bad: list[dict[str, str]] = field(default_factory=list)

    def add(self, path: Path, label: Any, mode: str, cache: bool) -> None:
        """Decode one file: a row with its label and pixel hash, or listed as unreadable."""
        try:
            pixels = decode(path, mode)
        except DECODE_ERRORS as exc:
            self.bad.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
            return
        self.files.append(path)
        self.labels.append(label)
        self.hashes.append(pixel_hash(pixels))
        self.pixels.append(pixels if cache else None)


def class_names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path) -> list[Path]:
    """Every image under ``folder`` (recursively), sorted: a stable row order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)


def decode(path: Path, mode: str) -> torch.Tensor:
    """A file's pixels as uint8 ``[C, H, W]`` (PIL decodes it fully: truncated files fail)."""
    with Image.open(path) as img:
        img.load()
        array = np.asarray(img.convert(mode), dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def pixel_hash(pixels: torch.Tensor) -> str:
    """Hash of the decoded pixels (and their shape): the same image saved twice, or in
    another lossless format or with other metadata, has the same hash."""
    digest = hashlib.sha1(str(tuple(pixels.shape)).encode())
    digest.update(pixels.numpy().tobytes())
    return digest.hexdigest()


def index_folder(
    root: Path, classes: list[str], mode: str, cache: bool, key: str = "data.path"
) -> FolderIndex:
    """Decode every image of ``root/<class>/`` once: labels, pixel hashes, the unreadable."""
    index = FolderIndex([], [], [], [])
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue  # a class absent from this split (the test folder may lack one)
        for path in image_files(folder):
            index.add(path, label, mode, cache)
    if not index.files:
        raise DataError(
            f"config key `{key}`: no readable images under {root}/<class>/ "
            f"(extensions {', '.join(EXTENSIONS)})."
        )
    return index


def index_targets(
    root: Path, files: list[str], values: list[float], mode: str, cache: bool
) -> FolderIndex:
    """Decode the images a targets table names (paths relative to ``root`` or absolute),
    each with its value: the regression rows. A named file that does not exist is an
    error naming ``data.targets``; an unreadable one is listed like a folder's."""
    index = FolderIndex([], [], [], [])
    for name, value in zip(files, values):
        path = Path(name) if Path(name).is_absolute() else root / name
        if not path.is_file():
            raise DataError(
                f"config key `data.targets`: names {name}, which is not a file under "
                f"{root}; fix the path (relative to data.path) or drop that row."
            )
        index.add(path, float(value), mode, cache)
    if not index.files:
        raise DataError(f"config key `data.targets`: no readable image among its rows ({root}).")
    return index


def keep_rows(index: FolderIndex, rows: list[int]) -> FolderIndex:
    pick = lambda values: [values[i] for i in rows]  # noqa: E731
    return FolderIndex(
        pick(index.files), pick(index.labels), pick(index.hashes), pick(index.pixels), index.bad
    )


def find_duplicates(
    train: FolderIndex, test: FolderIndex | None
) -> tuple[list[int], list[int], list[int]]:
    """Rows of ``train`` that repeat an earlier training image, rows whose image is also in
    the test folder (leakage), and the repeats filed under another class than the first."""
    test_hashes = set(test.hashes) if test else set()
    first: dict[str, int] = {}
    within, leaked, conflicting = [], [], []
    for i, digest in enumerate(train.hashes):
        if digest in test_hashes:
            leaked.append(i)
        elif digest in first:
            within.append(i)
            if train.labels[first[digest]] != train.labels[i]:
                conflicting.append(i)
        else:
            first[digest] = i
    return within, leaked, conflicting


def image_quality(
    train: FolderIndex,
    test: FolderIndex | None,
    classes: list[str],
    duplicates: dict[str, Any],
    preprocessing: dict[str, Any],
) -> dict[str, Any]:
    """What data_quality.json says about an image folder (no ``classes``: regression
    rows, whose values are summarised instead of class counts)."""
    counts = Counter(train.labels)
    per_class = {name: int(counts.get(i, 0)) for i, name in enumerate(classes)}
    if per_class:
        smallest, largest = min(per_class.values()), max(per_class.values())
        ratio = largest / smallest if smallest else math.inf
    else:
        ratio = 1.0
    bad = [*train.bad, *(test.bad if test else [])]
    warnings = []
    if bad:
        warnings.append(f"{len(bad)} unreadable image(s) skipped")
    if duplicates["train_in_test"]:
        warnings.append(
            f"{len(duplicates['train_in_test'])} training image(s) also in the test folder "
            f"(leakage; {duplicates['action']})"
        )
    if duplicates["within_train"]:
        warnings.append(
            f"{len(duplicates['within_train'])} duplicate image(s) ({duplicates['action']})"
        )
    if ratio >= IMBALANCE_RATIO:
        warnings.append(
            f"class imbalance: {largest} vs {smallest} images (ratio {ratio:.1f}); prefer "
            "metric=val_f1_macro-like metrics over accuracy"
        )
    sizes = Counter(tuple(p.shape[-2:]) for p in train.pixels if p is not None)
    return {
        "source": "images",
        "images": len(train.files),
        "test_images": len(test.files) if test else None,
        "classes": per_class or None,
        "targets": None if per_class else _value_summary(train.labels),
        "imbalance_ratio": ratio if math.isfinite(ratio) else None,
        "unreadable": {"count": len(bad), "files": bad[:LISTED]},
        "duplicates": {k: (v[:LISTED] if isinstance(v, list) else v) for k, v in duplicates.items()}
        | {"counts": {k: len(v) for k, v in duplicates.items() if isinstance(v, list)}},
        "image_sizes": {f"{h}x{w}": n for (h, w), n in sizes.most_common(5)},
        "preprocessing": preprocessing,
        "warnings": warnings,
    }


def _value_summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"min": float(array.min()), "median": float(np.median(array)),
            "max": float(array.max()), "std": float(array.std())}  # fmt: skip
