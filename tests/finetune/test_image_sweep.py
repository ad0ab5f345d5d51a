"""A real fine-tuning sweep on real images: model=finetune_image data=images on scikit-image's
face / non-face subset (200 images, plus one corrupt file and one duplicate), a tiny
transformers ResNet backbone from a local save_pretrained directory, real Ray, 2 trials x 2
folds; then the export (ONNX + the preprocessing manifest), the report and `hpo predict` on
a folder. Bad inputs fail with one `hpo: error:` line before any Ray work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from examples.finetune_image.data import write_faces_folder
from hpo.cli import main

SIZE = 16


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """The face folder (with a corrupt file and a duplicate) and a tiny backbone dir."""
    from transformers import ResNetConfig, ResNetModel

    root = tmp_path_factory.mktemp("finetune_image")
    folder = write_faces_folder(root / "faces")
    (folder / "face" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    shutil.copy(folder / "nonface" / "150.png", folder / "nonface" / "150_copy.png")
    torch.manual_seed(0)
    config = ResNetConfig(
        num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"
    )
    weights = root / "tiny-resnet"
    ResNetModel(config).save_pretrained(weights)
    processor = {"size": {"height": SIZE, "width": SIZE}, "image_mean": [0.45], "image_std": [0.25]}
    (weights / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder, weights


def overrides(folder: Path, weights: Path, run: Path, *extra: str) -> list[str]:
    """The sweep's overrides; a key in ``extra`` replaces the base one."""
    replaced = {e.split("=", 1)[0] for e in extra}
    base = [
        "model=finetune_image",
        f"model.weights={weights}",
        "data=images",
        f"data.path={folder}",
        "metric=val_acc",
        "mode=max",
        "cv.folds=2",
        "trainer.max_epochs=2",
        "budget.num_samples=2",
        "searcher=random",
        "cluster.num_cpus=2",
        "search_space.data.batch_size=null",
        "data.batch_size=64",
        f"run_dir={run}",
    ]
    return [o for o in base if o.split("=", 1)[0] not in replaced] + list(extra)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hpo: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow
def test_finetune_image_sweep_export_report_and_predict(faces, tmp_path, capsys, ray_local):
    folder, weights = faces
    run = tmp_path / "run"
    code = main(["sweep", *overrides(folder, weights, run, "model.unfreeze_epoch=range(0, 2)")])
    out = capsys.readouterr().out
    assert code == 0, out
    trials = pd.read_parquet(run / "trials.parquet")
    assert trials["trial_id"].nunique() == 2
    assert {"fold_val_acc", "val_loss"} <= set(trials.columns)

    quality = json.loads((run / "data_quality.json").read_text())
    assert (
        quality["unreadable"]["count"] == 1
        and "broken.png" in quality["unreadable"]["files"][0]["file"]
    )
    assert quality["duplicates"]["counts"]["within_train"] == 1
    assert quality["images"] == 200 and quality["classes"] == {"face": 100, "nonface": 100}
    assert "hpo: data warning: 1 unreadable image(s) skipped" in out

    best = run / "best"
    manifest = json.loads((best / "model.json").read_text())
    assert manifest["class_names"] == ["face", "nonface"]
    prep = manifest["preprocessing"]
    assert prep["size"] == [SIZE, SIZE] and prep["mode"] == "L" and prep["mean"] == [0.45]
    report = json.loads((best / "report.json").read_text())
    assert report["test"]["rows"] == 40 and set(report["test"]["per_class"]) == {"0", "1"}
    html = (best / "report.html").read_text()
    assert "Per class (test)" in html
    # The from-scratch baseline: same config, random weights, same rows, epochs and test.
    scratch = report["from_scratch"]["test"]
    assert scratch["rows"] == 40 and 0.0 <= scratch["accuracy"] <= 1.0
    assert "from scratch (same config, random weights): accuracy" in out
    assert "Fine-tuned vs from scratch" in html
    wrong = report["misclassified"]
    assert len(wrong) == min(8, round((1 - report["test"]["accuracy"]) * 40))
    if wrong:  # thumbnails of real test files
        assert Path(wrong[0]["example"]).is_file() and "data:image/png;base64" in html

    # The ONNX model with the manifest's preprocessing applied by hand (PIL + numpy), as an
    # ONNX user would, agrees with the exported predictions.
    import onnxruntime as ort

    table = pd.read_parquet(best / "test_predictions.parquet")
    files = table["example"].tolist()[:6]
    batch = []
    for path in files:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert(prep["mode"]), dtype=np.float32)
        x = torch.from_numpy(pixels)[None, None] * prep["scale"]
        x = torch.nn.functional.interpolate(x, size=prep["size"], mode="bilinear", antialias=True)
        batch.append(((x - prep["mean"][0]) / prep["std"][0])[0].numpy())
    session = ort.InferenceSession(str(best / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": np.stack(batch)})[0]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba[:, 0], table["proba_0"].to_numpy()[:6], atol=1e-4)

    # hpo predict on a folder of new images (no class folders needed).
    new = tmp_path / "new"
    new.mkdir()
    for name in ("face/3.png", "nonface/120.png", "nonface/177.png"):
        shutil.copy(folder / name, new / name.replace("/", "_"))
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(best), str(new), "--output", str(preds)]) == 0
    frame = pd.read_csv(preds)
    assert len(frame) == 3 and list(frame.columns[:2]) == ["input", "prediction"]
    assert set(frame["prediction"]) <= {"face", "nonface"}
    assert np.allclose(frame[["proba_face", "proba_nonface"]].sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "extra, names",
    [
        (["model.weights=/nonexistent/resnet"], ["model.weights", "does not exist"]),
        (["model.backbone=resnet18"], ["model.backbone", "hpo[vision]"]),
        (["data.on_bad_image=error"], ["data.on_bad_image", "broken.png"]),
        (["model.drop_path=0.1"], ["model.drop_path", "resnet"]),
    ],
    ids=["missing-weights", "unknown-backbone", "corrupt-image", "no-drop-path"],
)
def test_bad_fine_tuning_input_is_one_line_before_ray(faces, tmp_path, capsys, extra, names):
    folder, weights = faces
    run = tmp_path / "run"
    assert main(["sweep", *overrides(folder, weights, run, *extra)]) == 2
    line = error_line(capsys)
    for name in names:
        assert name in line, line
    assert not run.exists()


@pytest.fixture(scope="module")
def digit_values(tmp_path_factory):
    """scikit-learn's digit images as PNG files with a targets table: file, value (the
    digit as a number: a real, ordered target) — plus one row without a value."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digit_values") / "images"
    root.mkdir()
    rows = []
    for i in range(240):
        name = f"d{i:04d}.png"
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(root / name)
        rows.append({"file": name, "value": float(digits.target[i])})
    rows.append({"file": "d0000.png", "value": None})
    table = root.parent / "values.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return root, table


@pytest.mark.slow
def test_image_regression_sweep_export_and_predict(
    faces, digit_values, tmp_path, capsys, ray_local
):
    """data.targets makes an image regression set: one-output head, MSE, KFold folds, the
    regression report, ONNX and hpo predict returning values."""
    _, weights = faces
    folder, table = digit_values
    run = tmp_path / "run"
    extra = (f"data.targets={table}", "data.target=value", "metric=val_loss", "mode=min",
             "data.hflip=false", "trainer.max_epochs=6", "model.lr=1e-2",
             "model.backbone_lr_mult=1", "model.warmup_epochs=0", "data.batch_size=32",
             "search_space.model.lr=null", "search_space.model.backbone_lr_mult=null",
             "search_space.model.unfreeze_epoch=null")  # fmt: skip
    code = main(["sweep", *overrides(folder, weights, run, *extra)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "regression on hpo.data.images.ImageFolderDataModule" in out and "(kfold)" in out
    trials = pd.read_parquet(run / "trials.parquet")
    assert {"val_loss", "val_mae", "fold_val_loss"} <= set(trials.columns)
    quality = json.loads((run / "data_quality.json").read_text())
    assert quality["images"] == 240 and quality["classes"] is None
    assert quality["targets"]["min"] == 0.0 and quality["targets"]["max"] == 9.0
    assert quality["rows_without_target"]["count"] == 1

    best = run / "best"
    manifest = json.loads((best / "model.json").read_text())
    assert manifest["task"] == "regression" and manifest["onnx"] == "model.onnx"
    report = json.loads((best / "report.json").read_text())
    test = report["test"]
    assert test["rows"] == 48 and {"rmse", "mae", "r2"} <= set(test)
    # better than predicting the mean value for every image (RMSE = the values' std)
    assert test["rmse"] < np.std(load_digit_values(table)), test
    predictions = pd.read_parquet(best / "test_predictions.parquet")
    assert predictions["prediction"].dtype.kind == "f" and len(predictions) == 48

    preds = tmp_path / "values.csv"
    assert main(["predict", str(best), str(folder), "--output", str(preds)]) == 0
    frame = pd.read_csv(preds)
    assert len(frame) == 240 and frame["prediction"].dtype.kind == "f"


def load_digit_values(table: Path) -> np.ndarray:
    return pd.read_csv(table)["value"].dropna().to_numpy()


def test_image_targets_naming_a_missing_file_is_one_line_before_ray(
    faces, digit_values, tmp_path, capsys
):
    _, weights = faces
    folder, table = digit_values
    broken = tmp_path / "values.csv"
    frame = pd.read_csv(table)
    frame.loc[3, "file"] = "nowhere.png"
    frame.to_csv(broken, index=False)
    run = tmp_path / "run"
    extra = (f"data.targets={broken}", "data.target=value", "metric=val_loss", "mode=min")
    assert main(["sweep", *overrides(folder, weights, run, *extra)]) == 2
    line = error_line(capsys)
    assert "data.targets" in line and "nowhere.png" in line
    assert not run.exists()
