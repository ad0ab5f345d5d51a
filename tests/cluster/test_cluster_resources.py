"""Per-trial resources against the cluster's nodes: impossible requests fail at once,
possible ones set how many trials run together. The GPU paths run where a GPU exists."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from hpo.errors import ResourceError
from hpo.sweep import run_sweep
from hpo.sweep.resources import plan_concurrency

CPU_NODE = {"CPU": 4.0, "memory": 8e9}
GPU_NODE = {"CPU": 8.0, "GPU": 4.0}


@pytest.mark.parametrize(
    "nodes, cpus, gpus, message",
    [
        ([CPU_NODE, CPU_NODE], 1, 1, "no node of the Ray cluster has a GPU"),
        # eight GPUs in all, but a trial lives on one node
        ([GPU_NODE, GPU_NODE], 1, 8, "8 GPUs per trial, but no single node has more than 4"),
        ([CPU_NODE, CPU_NODE], 6, 0, "6 CPUs per trial, but no single node has more than 4"),
        # the CPUs are on one node, the GPU on another
        ([{"CPU": 16.0}, {"CPU": 2.0, "GPU": 1.0}], 8, 1, "no single node has both"),
        ([GPU_NODE], 1, 1.5, "neither a fraction of one GPU nor a whole number"),
    ],
)
def test_requests_no_node_can_hold_fail_with_the_key_and_the_fix(nodes, cpus, gpus, message):
    with pytest.raises(ResourceError, match="config key") as error:
        plan_concurrency(nodes, cpus, gpus, None)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "nodes, cpus, gpus, cap, expected",
    [
        ([CPU_NODE, CPU_NODE], 1, 0, None, 8),
        ([CPU_NODE, CPU_NODE], 3, 0, None, 2),  # 3 CPUs fit once per 4-CPU node
        ([GPU_NODE], 1, 0.25, None, 8),  # 4 GPUs x 4 trials each, but only 8 CPUs
        ([GPU_NODE], 0.5, 0.25, None, 16),  # N GPUs run N / gpus_per_trial trials
        ([GPU_NODE, CPU_NODE], 1, 1, None, 4),  # only the GPU node takes GPU trials
        ([CPU_NODE], 1, 0, 2, 2),  # budget.max_concurrent_trials caps it
        ([CPU_NODE], 1, 0, 10, 4),  # ... but not above what fits
    ],
)
def test_concurrency_is_what_fits_on_the_nodes(nodes, cpus, gpus, cap, expected):
    assert plan_concurrency(nodes, cpus, gpus, cap) == expected


def test_an_autoscaler_node_type_admits_a_request_no_running_node_holds():
    assert plan_concurrency([CPU_NODE], 1, 1, None, node_types=[GPU_NODE]) is None
    assert plan_concurrency([CPU_NODE], 1, 1, 3, node_types=[GPU_NODE]) == 3
    with pytest.raises(ResourceError, match="more than 4"):
        plan_concurrency([CPU_NODE], 1, 8, None, node_types=[GPU_NODE])


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, key",
    [
        ("resources.gpus_per_trial=1", "resources.gpus_per_trial"),
        ("resources.cpus_per_trial=3", "resources.cpus_per_trial"),
    ],
)
def test_an_impossible_request_fails_fast_on_a_real_ray(ray_local, small_cfg, override, key):
    cfg = small_cfg(override)
    started = time.monotonic()
    with pytest.raises(ResourceError, match=f"config key `{key}`"):
        run_sweep(cfg, stream=None)
    assert time.monotonic() - started < 60  # not a sweep of PENDING trials
    assert not list(Path(cfg.output_dir).glob("*/*/trials.jsonl"))  # no trial started


requires_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@pytest.mark.slow
@requires_gpu
def test_fractional_gpus_share_a_gpu_and_trials_train_on_it(small_cfg):
    cfg = small_cfg(
        "resources.gpus_per_trial=0.5", "resources.cpus_per_trial=0.5", "budget.num_samples=6"
    )
    result = run_sweep(cfg, stream=None)
    frame = result.trials
    assert result.counts["failed"] == 0
    assert set(frame["device"]) == {"cuda"}  # Lightning's modules trained on Ray's GPU
    # two trials per GPU at once: two reused trial actors (processes) at least
    assert frame["pid"].nunique() >= 2


@pytest.mark.gpu
@pytest.mark.slow
@requires_gpu
def test_a_request_for_more_gpus_than_the_machine_has_fails_fast(small_cfg):
    gpus = torch.cuda.device_count()
    with pytest.raises(ResourceError, match=f"no single node has more than {gpus}"):
        run_sweep(small_cfg(f"resources.gpus_per_trial={gpus + 1}"), stream=None)
