"""A wrong run location or data file is one error line before hpo imports its sweep
machinery or its data stack (Ray Tune, torch, Lightning, scikit-learn, pandas: about 10 s
on 2 cores; a missing data file took `hpo sweep` 20 s to report): checked in a fresh
interpreter, real files, the real `hpo` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PROBE = """
import json, sys
from hpo.cli import main
code = main(sys.argv[1:])
heavy = [m for m in ("ray.tune", "torch", "lightning", "sklearn", "pandas") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


def hpo_in_fresh_interpreter(*args: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpo: error: "), stderr
    return lines[0]


@pytest.mark.parametrize("key", ["output_dir", "run_dir"])
def test_sweep_into_a_file_fails_before_the_sweep_machinery_loads(tmp_path, key):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder\n")
    result, err = hpo_in_fresh_interpreter("sweep", "data=iris", f"{key}={blocker / 'runs'}")
    assert result == {"code": 2, "heavy": []}
    line = one_line(err)
    assert f"config key `{key}`" in line and f"{blocker} is a file, not a directory" in line
    assert blocker.read_text() == "not a folder\n"


def test_resume_of_a_missing_or_configless_run_dir_fails_before_it_loads(tmp_path):
    result, err = hpo_in_fresh_interpreter("resume", str(tmp_path / "nowhere"))
    assert result == {"code": 2, "heavy": []}
    assert "is not a directory" in one_line(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    result, err = hpo_in_fresh_interpreter("resume", str(empty))
    assert result == {"code": 2, "heavy": []}
    assert f"{empty / 'config.yaml'} does not exist" in one_line(err)


@pytest.mark.parametrize("command", ["sweep", "check-data"])
def test_a_data_path_not_given_missing_empty_or_a_folder_fails_before_the_data_stack_loads(
    tmp_path, command
):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = [
        ([f"data.path={tmp_path / 'nope.csv'}"], f"no file at {tmp_path / 'nope.csv'}"),
        ([f"data.path={empty}"], f"{empty} is empty (0 bytes)"),
        ([f"data.path={tmp_path}"], f"{tmp_path} is not a file"),
        ([], "data=csv needs a file; pass data.path=FILE"),
    ]
    for extra, expected in cases:
        result, err = hpo_in_fresh_interpreter(
            command, "data=csv", "data.target=y", f"output_dir={tmp_path / 'runs'}", *extra
        )
        assert result == {"code": 2, "heavy": []}, (extra, err)
        line = one_line(err)
        assert "config key `data.path`" in line and expected in line, line
    assert not (tmp_path / "runs").exists()  # nothing written


def test_report_of_a_missing_or_configless_run_dir_fails_before_the_export_loads(tmp_path):
    result, err = hpo_in_fresh_interpreter("report", str(tmp_path / "nowhere"))
    assert result == {"code": 2, "heavy": []}
    assert "is not a directory" in one_line(err)
    result, err = hpo_in_fresh_interpreter("report", str(tmp_path))
    assert result == {"code": 2, "heavy": []}
    assert "is not a run directory (no config.yaml)" in one_line(err)
