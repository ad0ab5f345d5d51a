"""FoldBatchedMLP: which modules it batches, and that a fold comes back out unchanged."""

from __future__ import annotations

import torch

from hpo.models.batched_mlp import FoldBatchedMLP
from hpo.models.mlp import TabularMLP

OPTIM = {"lr": 0.01, "weight_decay": 0.001}


def _folds(k=3, **kwargs):
    modules = []
    for fold in range(k):
        torch.manual_seed(fold)
        modules.append(TabularMLP(6, 3, "classification", OPTIM, hidden_dim=8, **kwargs))
    return modules


class WiderMLP(TabularMLP):
    def forward(self, x):
        return super().forward(x) * 2


def test_only_the_plain_tabular_mlp_is_batched():
    assert FoldBatchedMLP.supports(_folds(1)[0])
    assert FoldBatchedMLP.supports(_folds(1, batch_norm=True, activation="gelu")[0])
    assert not FoldBatchedMLP.supports(WiderMLP(6, 3, "classification", OPTIM))


def test_folds_round_trip_and_predict_as_alone():
    folds = _folds(batch_norm=True)
    generators = [torch.Generator().manual_seed(i) for i in range(3)]
    batched = FoldBatchedMLP(folds, generators).eval()
    x = torch.randn(3, 5, 6)
    with torch.no_grad():
        together = batched(x)
    for index, fold in enumerate(folds):
        out = batched.fold_module(index)
        assert type(out) is TabularMLP
        for name, tensor in fold.state_dict().items():
            torch.testing.assert_close(out.state_dict()[name], tensor)
        with torch.no_grad():
            torch.testing.assert_close(together[index], fold.eval()(x[index]), rtol=1e-5, atol=1e-6)


def test_optimizer_state_exports_as_torch_adamw_state():
    folds = _folds()
    batched = FoldBatchedMLP(folds, [torch.Generator() for _ in folds])
    optimizer = batched.configure_optimizers()
    x, y = torch.randn(3, 4, 6), torch.randint(0, 3, (3, 4))
    batched.training_step((x, y, None, None), 0)["loss"].backward()
    optimizer.step()
    exported = batched.fold_optimizer_state(optimizer, 1)
    module = batched.fold_module(1)
    own = torch.optim.AdamW(module.parameters(), lr=OPTIM["lr"], weight_decay=OPTIM["weight_decay"])
    own.load_state_dict(exported)
    assert float(own.state_dict()["state"][0]["step"]) == 1.0
    fresh = FoldBatchedMLP(_folds(), [torch.Generator() for _ in folds])
    fresh_optimizer = fresh.configure_optimizers()
    fresh.load_fold_optimizer_state(fresh_optimizer, 1, exported)
    assert fresh_optimizer.steps.tolist() == [0, 1, 0]
    torch.testing.assert_close(
        fresh_optimizer.state[fresh.flat]["exp_avg"][1], optimizer.state[batched.flat]["exp_avg"][1]
    )
