"""The cluster configs in cluster/ hold what cluster/README.md promises: Ray's schema
accepts the launcher YAML; the dashboard listens on 127.0.0.1; every Ray process runs
with token auth and takes the token from a file or Secret, never from the config; a GPU
worker group autoscales within bounds; the RayJob runs a sweep that composes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from hpo.config import compose_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def load(name: str) -> list[dict]:
    return list(yaml.safe_load_all((CLUSTER / name).read_text()))


def test_the_launcher_yaml_passes_rays_schema_and_is_locked_down():
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = load("aws-gpu.yaml")[0]
    validate_config(fillout_defaults(dict(config)))
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    for command in (head, worker):
        assert "RAY_AUTH_MODE=token" in command and "RAY_AUTH_TOKEN_PATH=" in command
    # the token travels as a file from your machine, not as text in the config
    assert "RAY_AUTH_TOKEN=" not in head + worker
    assert "~/.ray/hpo_token" in config["file_mounts"]
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]  # SSH only
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    gpu = nodes["gpu_worker"]
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))
    assert 0 == gpu["min_workers"] < gpu["max_workers"] <= config["max_workers"]


def ray_pod_specs(manifest: dict) -> tuple[dict, list[dict]]:
    spec = manifest["spec"].get("rayClusterSpec", manifest["spec"])
    return spec["headGroupSpec"], spec["workerGroupSpecs"]


@pytest.mark.parametrize("name", ["kuberay/raycluster.yaml", "kuberay/rayjob.yaml"])
def test_kuberay_manifests_use_the_token_secret_a_local_dashboard_and_gpu_workers(name):
    manifest = next(d for d in load(name) if d["kind"] in ("RayCluster", "RayJob"))
    head, workers = ray_pod_specs(manifest)
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    for group in [head, *workers]:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert "value" not in env["RAY_AUTH_TOKEN"]  # from the Secret only
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token"
    (gpu,) = workers
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) >= 1
    assert 0 == gpu["minReplicas"] < gpu["maxReplicas"]
    spec = manifest["spec"].get("rayClusterSpec", manifest["spec"])
    assert spec["enableInTreeAutoscaling"] is True


def test_the_rayjob_runs_a_sweep_that_composes_and_keeps_the_dashboard_local():
    (job,) = load("kuberay/rayjob.yaml")
    # the submitter reaches the Jobs API through the head pod's own 127.0.0.1
    assert job["spec"]["submissionMode"] == "SidecarMode"
    command = shlex.split(job["spec"]["entrypoint"])
    assert command[:4] == ["python", "-m", "hpo", "sweep"]
    cfg, _ = compose_config(command[4:])
    assert cfg.cluster.address == "auto"
    assert Path(cfg.output_dir).is_absolute()  # on the volume every pod mounts
    assert cfg.resources.gpus_per_trial > 0 and cfg.cluster.node_types
