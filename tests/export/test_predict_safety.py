"""`hpo predict` loses nothing and trusts nothing: a real tiny sweep's export (local Ray),
then predict asked to overwrite files, to load an incomplete model directory, and to
read a crafted preprocessing.json."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from export_runs import held_out_rows, sweep

from hpo.cli import main

pytestmark = pytest.mark.slow

TINY = ["data=iris", "trainer.max_epochs=2", "budget.num_samples=2", "scheduler=fifo"]


@pytest.fixture(scope="module")
def tiny_run(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    """A finished sweep's run directory and a CSV of its held-out rows."""
    out = tmp_path_factory.mktemp("tiny")
    run_dir, _ = sweep(out / "runs", *TINY)
    rows, _ = held_out_rows(run_dir)
    rows.to_csv(out / "rows.csv", index=False)
    return run_dir, out / "rows.csv"


def predict(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["predict", *args])
    return code, out.getvalue(), err.getvalue()


def test_an_existing_output_is_replaced_only_with_overwrite(tiny_run, tmp_path):
    run_dir, rows = tiny_run
    target = tmp_path / "predictions.csv"
    target.write_text("keep me\n")
    code, _, err = predict(str(run_dir / "best"), str(rows), "--output", str(target))
    assert code == 2 and target.read_text() == "keep me\n"
    assert err.count("\n") == 1 and f"--output {target} exists" in err and "--overwrite" in err
    code, printed, _ = predict(
        str(run_dir / "best"), str(rows), "--output", str(target), "--overwrite"
    )
    assert code == 0, printed
    assert target.read_text().startswith("prediction,")


@pytest.mark.parametrize("victim", ["input", "model.onnx", "new.csv"])
def test_predict_never_writes_onto_its_input_or_into_the_model_dir(tiny_run, victim):
    run_dir, rows = tiny_run
    best = run_dir / "best"
    target = rows if victim == "input" else best / victim
    before = target.read_bytes() if target.exists() else None
    code, _, err = predict(str(best), str(rows), "--output", str(target), "--overwrite")
    assert code == 2 and err.count("\n") == 1
    assert ("is the input file" if victim == "input" else "inside the model directory") in err
    assert (target.read_bytes() if target.exists() else None) == before


def test_the_export_is_sealed_and_predict_refuses_a_model_dir_it_cannot_trust(tiny_run, tmp_path):
    run_dir, rows = tiny_run
    assert not (run_dir / "best.partial").exists()
    listed = json.loads((run_dir / "best" / "complete.json").read_text())["files"]
    assert {"model.onnx", "model.json", "preprocessing.json", "report.json"} <= set(listed)

    def refused(model_dir: Path, why: str) -> None:
        code, _, err = predict(str(model_dir), str(rows), "--output", str(tmp_path / "p.csv"))
        assert code == 2 and err.count("\n") == 1 and why in err, err
        assert "hpo resume RUN_DIR" in err and not (tmp_path / "p.csv").exists()

    unsealed = shutil.copytree(run_dir / "best", tmp_path / "unsealed")
    (unsealed / "complete.json").unlink()  # as a kill before the rename leaves best.partial
    refused(unsealed, "not a complete export")
    cut = shutil.copytree(run_dir / "best", tmp_path / "cut")
    onnx = (cut / "model.onnx").read_bytes()
    (cut / "model.onnx").write_bytes(onnx[: len(onnx) // 2])
    refused(cut, f"model.onnx is {len(onnx) // 2} bytes, the export wrote {len(onnx)}")
    gone = shutil.copytree(run_dir / "best", tmp_path / "gone")
    (gone / "preprocessing.json").unlink()
    refused(gone, "preprocessing.json is missing")


def test_a_full_disk_while_writing_predictions_is_one_line(tiny_run):
    run_dir, rows = tiny_run
    # /dev/full fails every write with ENOSPC, as a full disk does.
    code, _, err = predict(str(run_dir / "best"), str(rows), "-o", "/dev/full", "--overwrite")
    assert code == 2 and err.count("\n") == 1, err
    assert "--output /dev/full: No space left on device; the disk is full" in err


def reseal(model_dir: Path) -> None:
    """Rewrite complete.json for the files as they are now (as whoever crafted them could)."""
    seal = json.loads((model_dir / "complete.json").read_text())
    seal["files"] = {name: (model_dir / name).stat().st_size for name in seal["files"]}
    (model_dir / "complete.json").write_text(json.dumps(seal))


@pytest.mark.parametrize("craft", ["layout", "onehot"])
def test_a_crafted_preprocessing_width_is_refused_before_allocating(tiny_run, tmp_path, craft):
    run_dir, rows = tiny_run
    crafted = shutil.copytree(run_dir / "best", tmp_path / "crafted")
    document = json.loads((crafted / "preprocessing.json").read_text())
    spec = document["inputs"][0]
    produced = len(spec["blocks"][0]["kept"])
    if craft == "layout":  # a fold-model's layout 3e6 wide: 30 rows x 3e6 float64 = 720 MB
        spec["positions"], spec["width"] = list(range(produced)), 3_000_000
    else:  # a categorical block with a one-hot width of 3e6
        spec["blocks"].append(
            {"kind": "categorical", "columns": [document["columns"][0]["name"]],
             "impute": ["a"], "encodings": [{"kind": "onehot", "width": 3_000_000,
                                             "codes": {"a": 0}}]}
        )  # fmt: skip
    (crafted / "preprocessing.json").write_text(json.dumps(document))
    reseal(crafted)
    code, _, err = predict(str(crafted), str(rows), "--output", str(tmp_path / "p.csv"))
    assert code == 2 and err.count("\n") == 1, err
    assert "preprocessing.json: input 'features'" in err and "export the model again" in err
    assert "3000000" in err
    assert not (tmp_path / "p.csv").exists()
