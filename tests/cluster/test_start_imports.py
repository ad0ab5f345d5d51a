"""start_ray makes Ray Tune's driver-side imports while ray.init starts Ray's processes,
so that they are off the path from `hpo sweep` to its first trial (benchmarks/throughput.py
measures that path). A fresh interpreter: this test process may have imported them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys
from omegaconf import OmegaConf
from hpo.cluster import TUNE_DRIVER_IMPORTS, import_in_background, start_ray, stop_ray

before = [name for name in TUNE_DRIVER_IMPORTS if name in sys.modules]
owns = start_ray(OmegaConf.create({"address": None, "num_cpus": 1, "num_gpus": 0}))
after = [name for name in TUNE_DRIVER_IMPORTS if name in sys.modules]
mlflow = "mlflow" in sys.modules
stop_ray()
missing = import_in_background(("hpo_no_such_module",))
missing.join(timeout=60)
print(json.dumps({"before": before, "after": after, "owns": owns, "mlflow": mlflow,
                  "missing_done": not missing.is_alive()}))
"""


@pytest.mark.slow
def test_start_ray_has_made_tunes_driver_imports_and_a_failed_one_is_left_alone():
    from hpo.cluster import TUNE_DRIVER_IMPORTS

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["owns"] is True
    assert seen["before"] == []  # nothing of them before: the check below can fail
    assert seen["after"] == list(TUNE_DRIVER_IMPORTS)
    # what Tune's callback telemetry pulls in where it is installed (the dev extra has it)
    assert seen["mlflow"] is (importlib.util.find_spec("mlflow") is not None)
    assert seen["missing_done"] is True  # a module that is not there: no error, thread ends
