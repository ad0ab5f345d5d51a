"""Shared fixtures: the real config shrunk for tests, and one real local Ray per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent

# Ray workers import the test's own LightningModules (user_models.py) from here.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


SMALL = [
    "data=iris",
    "cv.folds=3",
    "trainer.max_epochs=6",
    "trainer.patience=3",
    "budget.num_samples=6",
    "scheduler.grace_period=1",
    "scheduler.reduction_factor=2",
]


@pytest.fixture
def small_cfg(tmp_path):
    """Compose the real config, shrunk (tiny data, few epochs), writing under tmp_path."""
    from hpo.config import compose_config

    def make(*overrides: str):
        cfg, _ = compose_config([*SMALL, f"output_dir={tmp_path / 'runs'}", *overrides])
        return cfg

    return make


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray runtime (2 CPUs, no dashboard), shut down after the session."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def user_model_cfg(small_cfg):
    """A shrunk config whose model is one of tests/user_models.py, with its own space."""
    from omegaconf import OmegaConf

    from hpo.config import validate_config

    def make(target: str, space: dict, *overrides: str, **model_keys):
        cfg = small_cfg(*overrides)
        cfg.model = {"_target_": target, "name": "tiny", **model_keys}
        cfg.search_space = space
        return validate_config(OmegaConf.to_container(cfg))

    return make
