"""Two real image sets that scikit-image ships (nothing downloads), written as ImageFolders.

* Textures for pretraining: 32x32 patches cut at random from eight grayscale photographs
  of ``skimage.data`` (brick, grass, gravel, moon, coins, cell, camera, clock), one class
  per photograph.
* Faces for fine-tuning: ``skimage.data.lfw_subset()``, 200 real 25x25 grayscale images
  (100 faces from Labeled Faces in the Wild, 100 non-face patches), two classes.

Both writers go through a temporary sibling folder renamed into place, so a reader never
sees a half-written folder; an existing folder is left as it is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

TEXTURES = ("brick", "grass", "gravel", "moon", "coins", "cell", "camera", "clock")
PATCH = 32


def _write_atomically(root: Path, fill: Callable[[Path], None]) -> Path:
    if root.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        fill(tmp)
        tmp.chmod(0o755)
        try:
            os.rename(tmp, root)
        except OSError:
            if not root.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def write_texture_folder(root: str | os.PathLike, per_class: int = 200, seed: int = 0) -> Path:
    """``root/<texture>/<i>.png``: ``per_class`` random 32x32 patches of each photograph."""
    import skimage.data

    def fill(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        for name in TEXTURES:
            image = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
            (tmp / name).mkdir()
            for i in range(per_class):
                top = int(rng.integers(0, image.shape[0] - PATCH))
                left = int(rng.integers(0, image.shape[1] - PATCH))
                patch = image[top : top + PATCH, left : left + PATCH]
                Image.fromarray(patch).save(tmp / name / f"{i}.png")

    return _write_atomically(Path(root), fill)


def write_faces_folder(root: str | os.PathLike) -> Path:
    """``root/{face,nonface}/<i>.png`` from ``skimage.data.lfw_subset()`` (the first 100
    images are faces, the other 100 are not; ``<i>`` is the row there)."""
    import skimage.data

    def fill(tmp: Path) -> None:
        images = skimage.data.lfw_subset()
        for i, image in enumerate(images):
            label = "face" if i < 100 else "nonface"
            (tmp / label).mkdir(exist_ok=True)
            pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp / label / f"{i}.png")

    return _write_atomically(Path(root), fill)
