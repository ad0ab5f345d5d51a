"""Every bad input of issue 11 through `hpo.cli.main`: one `hpo: error:` line that names
the key, column or file and the fix, exit code 2, before any Ray work, and no run
directory left behind. The model-directory rows need one real (small) exported model."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hpo.cli import main

sys.path.append(str(Path(__file__).resolve().parent / "export"))


def _frame(rows: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "ville": rng.choice(["Besançon", "Orléans", "Nîmes"], rows),
            "label": rng.choice(["oui", "non"], rows),
        }
    )


def _latin1_cells(path: Path) -> None:
    path.write_bytes(_frame().to_csv(index=False).encode("latin-1"))


def _latin1_header(path: Path) -> None:
    frame = _frame().rename(columns={"x1": "prénom_len"})
    path.write_bytes(frame.to_csv(index=False).encode("latin-1"))


def _duplicate_csv_columns(path: Path) -> None:
    text = _frame().to_csv(index=False)
    path.write_text(text.replace("x1,ville,label", "x1,x1,label", 1))


def _duplicate_parquet_columns(path: Path) -> None:
    frame = _frame()
    table = pa.table([frame["x1"], frame["x1"], frame["label"]], names=["x1", "x1", "label"])
    pq.write_table(table, path)


def _semicolons(path: Path) -> None:
    _frame().to_csv(path, index=False, sep=";")


def _plain(path: Path) -> None:
    _frame().to_csv(path, index=False)


# name: (writes the file, file suffix, extra overrides, the substrings the line holds)
FILE_CASES = {
    "latin-1 cells": (
        _latin1_cells,
        "csv",
        [],
        ["input.csv", "`ville`", "data.file_encoding=latin-1"],
    ),
    "latin-1 header": (
        _latin1_header,
        "csv",
        [],
        ["input.csv", "the header", "data.file_encoding=latin-1"],
    ),
    "unknown encoding": (_plain, "csv", ["data.file_encoding=klingon"], ["`data.file_encoding`"]),
    "duplicate CSV columns": (
        _duplicate_csv_columns,
        "csv",
        [],
        ["input.csv", "`x1` at columns 1, 2", "rename"],
    ),
    "duplicate Parquet columns": (
        _duplicate_parquet_columns,
        "parquet",
        [],
        ["input.parquet", "`x1` at columns 1, 2", "rename"],
    ),
    "semicolon CSV": (_semicolons, "csv", [], ["no column `label`", "\"data.delimiter=';'\""]),
    "fixed model.activation": (
        _plain,
        "csv",
        ["model.activation=swish"],
        ["`model.activation`", "'swish'", "relu, gelu, silu, tanh, leaky_relu"],
    ),
}
# Only `hpo sweep` starts trials, so only it checks what a trial asks for.
RESOURCE_CASES = {
    "more GPUs than the machine has": (
        _plain,
        "csv",
        ["resources.gpus_per_trial=__gpus__"],
        ["`resources.gpus_per_trial`"],
    ),
    "more CPUs than the machine has": (
        _plain,
        "csv",
        [f"resources.cpus_per_trial={2 * (os.cpu_count() or 1)}"],
        ["`resources.cpus_per_trial`", "lower it"],
    ),
    # the export runs after the trials; its keys are checked before them
    "an unknown calibration method": (
        _plain,
        "csv",
        ["export.calibration=platt"],
        ["`export.calibration`", "temperature or none"],
    ),
    "a baselines switch that is not a boolean": (
        _plain,
        "csv",
        ["export.baselines=maybe"],
        ["`export.baselines`", "true or false"],
    ),
}
ROWS = [
    *((case, command) for case in FILE_CASES for command in ("sweep", "check-data")),
    *((case, "sweep") for case in RESOURCE_CASES),
]


def _gpus_beyond_this_machine() -> int:
    """1 on a machine without a GPU, one more than it has on one with GPUs."""
    import torch

    return torch.cuda.device_count() + 1


def _assert_one_line(code: int, err: str, needles: list[str]) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("hpo: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(("case", "command"), ROWS)
def test_bad_input_fails_with_one_line_and_no_run_directory(capsys, tmp_path, case, command):
    write, suffix, overrides, needles = {**FILE_CASES, **RESOURCE_CASES}[case]
    path = tmp_path / f"input.{suffix}"
    write(path)
    overrides = [o.replace("__gpus__", str(_gpus_beyond_this_machine())) for o in overrides]
    args = [
        command,
        f"data={suffix}",
        f"data.path={path}",
        "data.target=label",
        f"output_dir={tmp_path / 'runs'}",
        *overrides,
    ]
    code = main(args)
    _assert_one_line(code, capsys.readouterr().err, needles)
    assert not (tmp_path / "runs").exists()


def test_a_closed_pipe_ends_quietly(capsys, tmp_path, monkeypatch):
    """`hpo check-data --json | head`: the reader leaves; no BrokenPipeError traceback."""
    path = tmp_path / "input.csv"
    _plain(path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before hpo wrote anything
    with os.fdopen(write_end, "w") as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        code = main(["check-data", "data=csv", f"data.path={path}", "data.target=label", "--json"])
        monkeypatch.undo()
    assert code == 141
    assert capsys.readouterr().err == ""


def test_the_right_encoding_reads_the_file(capsys, tmp_path):
    path = tmp_path / "input.csv"
    _latin1_cells(path)
    args = ["check-data", "data=csv", f"data.path={path}", "data.target=label"]
    assert main([*args, "data.file_encoding=latin-1", "--json"]) == 0
    assert '"ville"' in capsys.readouterr().out


@pytest.fixture(scope="module")
def latin1_model(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    """A real small sweep on a latin-1 CSV; its exported model directory and the CSV."""
    from export_runs import sweep

    out = tmp_path_factory.mktemp("latin1")
    path = out / "train.csv"
    _latin1_cells(path)
    run_dir, _ = sweep(
        out / "runs",
        "data=csv",
        f"data.path={path}",
        "data.target=label",
        "data.file_encoding=latin-1",
        "trainer.max_epochs=2",
        "budget.num_samples=2",
    )
    return run_dir / "best", path


def _damaged_copy(model_dir: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "best"
    shutil.copytree(model_dir, copy)
    damage(copy)
    return copy


def _same_size(path: Path, text: bytes) -> None:
    """Damage a file without changing its size, so that the export's seal (file sizes in
    complete.json) passes and the reader itself must notice."""
    size = path.stat().st_size
    path.write_bytes((text + b" " * size)[:size])


MODEL_DIR_CASES = {
    "corrupt model.onnx": (
        lambda d: _same_size(d / "model.onnx", b"not an onnx model"),
        ["model.onnx", "not a loadable ONNX model", "export_best(RUN_DIR)"],
    ),
    "truncated model.onnx": (  # the seal notices first
        lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:200]),
        ["model.onnx", "incomplete export", "200 bytes"],
    ),
    "missing model.onnx": (
        lambda d: (d / "model.onnx").unlink(),
        ["model.onnx is missing"],
    ),
    "missing preprocessing.json": (
        lambda d: (d / "preprocessing.json").unlink(),
        ["preprocessing.json is missing", "incomplete"],
    ),
    "truncated preprocessing.json": (
        lambda d: _same_size(d / "preprocessing.json", b'{"format": '),
        ["preprocessing.json is not valid JSON", "export_best(RUN_DIR)"],
    ),
    "truncated model.json": (
        lambda d: _same_size(d / "model.json", b"{"),
        ["model.json is not valid JSON"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(MODEL_DIR_CASES))
def test_predict_names_the_damaged_file(latin1_model, capsys, tmp_path, case):
    model_dir, rows = latin1_model
    damage, needles = MODEL_DIR_CASES[case]
    damaged = _damaged_copy(model_dir, tmp_path, damage)
    out = tmp_path / "predictions.csv"
    code = main(["predict", str(damaged), str(rows), "--output", str(out)])
    _assert_one_line(code, capsys.readouterr().err, needles)
    assert not out.exists()


@pytest.mark.slow
def test_predict_reads_rows_in_the_training_files_encoding(latin1_model, capsys, tmp_path):
    model_dir, rows = latin1_model
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(model_dir), str(rows), "--output", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(_frame())


@pytest.mark.slow
def test_predict_input_with_duplicate_columns(latin1_model, capsys, tmp_path):
    model_dir, _ = latin1_model
    rows = tmp_path / "rows.csv"
    _duplicate_csv_columns(rows)
    code = main(["predict", str(model_dir), str(rows), "--output", str(tmp_path / "p.csv")])
    _assert_one_line(code, capsys.readouterr().err, ["rows.csv", "`x1` at columns 1, 2"])


def test_the_schema_allows_exactly_the_mlps_activations():
    from hpo.config.schema import Activation
    from hpo.models.mlp import ACTIVATIONS

    assert {a.value for a in Activation} == set(ACTIVATIONS)
