"""Build a LightningModule from the model config with `hydra.utils.instantiate`.

The contract a module follows (built-in or a user's):

* constructor keyword arguments: ``input_dim`` (features after preprocessing),
  ``output_dim`` (classes, or 1 for regression), ``task`` (``classification`` or
  ``regression``), ``optim`` (dict with ``lr``, ``weight_decay``, ``label_smoothing``),
  and every key of the ``model`` config node except ``_target_``.
* ``forward(x)`` returns logits ``[n, classes]`` or predictions ``[n]``.
* ``training_step((x, y), batch_idx)`` returns the loss tensor (or a dict with ``loss``).
* ``validation_step((x, y), batch_idx)`` returns ``{"loss": tensor, "preds": forward(x)}``;
  a module without one gets the task's default loss on ``forward(x)``.
* ``configure_optimizers()`` returns an optimizer, or a dict with ``optimizer`` and
  optionally an epoch-wise ``lr_scheduler``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.config.targets import BUILTIN_MODEL
from hpo.errors import ConfigError

if TYPE_CHECKING:
    import lightning as L


def build_module(
    model_cfg: dict[str, Any],
    input_dim: int,
    output_dim: int,
    task: str,
    optim: dict[str, Any],
) -> L.LightningModule:
    """Instantiate the configured LightningModule for one fold.

    The built-in ``hpo.models.mlp.TabularMLP`` comes back as its Lightning-free code,
    ``hpo.models.mlp_net.MLPNet`` (the same layers, initialisation, hooks and state-dict
    keys), so that a trial of it imports neither Lightning nor Hydra;
    ``FoldTrainer.fold_modules()`` hands out TabularMLP (``MLPNet.as_lightning``).
    """
    kwargs = {k: v for k, v in model_cfg.items() if k != "_target_"}
    if model_cfg.get("_target_") == BUILTIN_MODEL:
        from hpo.models.mlp_net import MLPNet

        try:
            return MLPNet(input_dim, output_dim, task, dict(optim), **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"config key `model`: cannot build {BUILTIN_MODEL}: {exc}. Its keys are "
                "hidden_dim, num_layers, dropout, activation, batch_norm and name."
            ) from exc
    import lightning as L
    from hydra.utils import instantiate

    try:
        module = instantiate(
            {"_target_": model_cfg["_target_"]},
            input_dim=input_dim,
            output_dim=output_dim,
            task=task,
            optim=dict(optim),
            **kwargs,
        )
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"config key `model._target_`: cannot build {model_cfg.get('_target_')!r}: {cause}. "
            "The class must be importable and accept input_dim, output_dim, task, optim and "
            "the model config's keys."
        ) from exc
    if not isinstance(module, L.LightningModule):
        raise ConfigError(
            f"config key `model._target_`: {model_cfg['_target_']} built a "
            f"{type(module).__name__}, not a lightning.LightningModule."
        )
    return module


def build_lightning_module(model_cfg: dict[str, Any]) -> L.LightningModule:
    """Instantiate a user's LightningModule on the Lightning path: its constructor gets the
    model node's keys (less ``_target_`` and ``name``) and nothing else."""
    import lightning as L

    from hpo.config.targets import MODEL_OWN_KEYS, build_target

    return build_target(model_cfg, MODEL_OWN_KEYS, "model", L.LightningModule)
