"""What a Ray worker imports to start a trial: scikit-learn (the driver's data preparation,
quality checks and splitters) stays off that path, and the fold arrays unpickle from a
module that needs numpy only."""

import pickle
import subprocess
import sys

import numpy as np

from hpo.data.arrays import FoldArrays, TrialData

PROBE = """
import pickle, sys
import hpo.train.trial
data = pickle.loads(sys.stdin.buffer.read())
print(type(data).__module__, "sklearn" in sys.modules)
"""


def test_a_trial_starts_without_scikit_learn():
    fold = FoldArrays(*(np.zeros((2, 1)) for _ in range(4)), np.arange(2), np.arange(2))
    data = pickle.dumps(TrialData([fold], 1, 2, "classification", [0, 1]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], input=data, capture_output=True, check=True
    )
    assert done.stdout.decode().split() == ["hpo.data.arrays", "False"]


def test_the_fold_arrays_are_still_named_by_hpo_data_prepare():
    from hpo.data import prepare

    assert prepare.TrialData is TrialData and prepare.FoldArrays is FoldArrays
