"""FoldAdamW and per-fold clipping against torch's own AdamW and clip_grad_norm_, fold by fold."""

from __future__ import annotations

import pytest
import torch

from hpo.models.fold_adamw import FoldAdamW, clip_fold_grad_norm_

# Which folds step in each of 6 steps: fold 1 skips step 2, fold 2 stops after step 3.
STEPPING = [
    [True, True, True],
    [True, False, True],
    [True, True, True],
    [True, True, False],
    [True, True, False],
    [True, True, False],
]


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_each_fold_steps_like_its_own_adamw(weight_decay):
    generator = torch.Generator().manual_seed(0)
    shapes = [(5, 4), (4,)]
    stacked = [torch.randn(3, *shape, generator=generator) for shape in shapes]
    fold_params = [[p[fold].clone().requires_grad_() for p in stacked] for fold in range(3)]
    stacked = [p.clone().requires_grad_() for p in stacked]
    settings = {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": weight_decay}
    together = FoldAdamW(stacked, **settings)
    alone = [torch.optim.AdamW(params, **settings) for params in fold_params]
    for stepping in STEPPING:
        grads = [torch.randn(p.shape, generator=generator) for p in stacked]
        for param, grad in zip(stacked, grads):
            param.grad = grad.clone()
        together.step(stepping=None if all(stepping) else stepping)
        for fold, steps in enumerate(stepping):
            if steps:
                for param, grad in zip(fold_params[fold], grads):
                    param.grad = grad[fold].clone()
                alone[fold].step()
    assert together.steps.tolist() == [6, 5, 3]
    for fold in range(3):
        for param, own in zip(stacked, fold_params[fold]):
            torch.testing.assert_close(param[fold], own, rtol=1e-6, atol=1e-7)
            state = alone[fold].state[own]
            moments = together.state[param]
            torch.testing.assert_close(moments["exp_avg"][fold], state["exp_avg"])
            torch.testing.assert_close(moments["exp_avg_sq"][fold], state["exp_avg_sq"])


def test_fold_adamw_refuses_parameters_without_a_common_fold_dimension():
    with pytest.raises(ValueError, match="fold dimension"):
        FoldAdamW(
            [torch.zeros(3, 2, requires_grad=True), torch.zeros(4, requires_grad=True)], lr=0.1
        )


def test_gradient_clipping_is_per_fold():
    generator = torch.Generator().manual_seed(1)
    flat = torch.zeros(3, 10, requires_grad=True)
    flat.grad = torch.randn(3, 10, generator=generator) * torch.tensor([[0.01], [1.0], [10.0]])
    expected = []
    for fold in range(3):
        own = torch.zeros(10, requires_grad=True)
        own.grad = flat.grad[fold].clone()
        torch.nn.utils.clip_grad_norm_([own], 0.5)
        expected.append(own.grad)
    clip_fold_grad_norm_(flat, 0.5)
    torch.testing.assert_close(flat.grad, torch.stack(expected))
    assert flat.grad[0].norm() < 0.5  # a small gradient is left as it is
