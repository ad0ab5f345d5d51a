"""Config: Hydra composition, structured schemas, validation."""

from hpo.config.compose import compose_config, conf_dir, load_run_config, validate_config

__all__ = ["compose_config", "conf_dir", "load_run_config", "validate_config"]
