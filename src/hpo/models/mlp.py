"""The built-in tabular MLP as a LightningModule (its code: hpo.models.mlp_net)."""

from __future__ import annotations

import lightning as L

from hpo.models.mlp_net import ACTIVATIONS, BATCHABLE, MLPNet

__all__ = ["ACTIVATIONS", "TabularMLP"]


class TabularMLP(MLPNet, L.LightningModule):
    """An MLP for tabular classification or regression, as a ``lightning.LightningModule``.

    ``MLPNet`` (hpo.models.mlp_net) holds the layers and the hooks; this class adds
    Lightning's base, so it trains under a ``Trainer`` and is what to subclass. hpo's
    trials of the default model build ``MLPNet`` (no Lightning import in a Ray worker);
    ``FoldTrainer.fold_modules()`` hands out ``TabularMLP`` (the tabular export
    writes the plain MLPNet: ``fold_modules(lightning=False)``).

    Its constructor arguments are MLPNet's.
    """


BATCHABLE.add(TabularMLP)
