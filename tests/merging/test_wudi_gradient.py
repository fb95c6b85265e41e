"""WUDI's Adam solver uses an analytic gradient (factorised for low-rank task vectors): it must give the
trajectory of FusionBench's autograd loop, on low-rank (LoRA-like) and full-rank task vectors."""

import pytest
import torch

from tenfold.merging.merges import _wudi_gradient, wudi_adam, wudi_objective


def _autograd_adam(tv, iters, lr):
    """FusionBench's loop: Adam on the autograd gradient of the objective, from the sum of the task vectors."""
    tv = tv.float()
    tau = torch.nn.Parameter(tv.sum(0).clone())
    opt = torch.optim.Adam([tau], lr=lr, weight_decay=0.0)
    for _ in range(iters):
        loss = wudi_objective(tau, tv)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tau.detach()


def _task_vectors(rank, m=48, n=32, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    if rank is None:
        return 0.01 * torch.randn(k, m, n, generator=g)
    shared = torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g)  # a shared delta (the scaffold)
    return 0.01 * torch.stack([shared + torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g)
                               for _ in range(k)])


@pytest.mark.parametrize("rank", [2, None])
def test_gradient_equals_autograd(rank):
    tv = _task_vectors(rank)
    tau = tv.sum(0) + 0.003 * torch.randn(tv.shape[1:], generator=torch.Generator().manual_seed(1))
    t = tau.clone().requires_grad_(True)
    wudi_objective(t, tv.float()).backward()
    got = _wudi_gradient(tv)(tau)
    assert torch.allclose(got, t.grad, rtol=1e-4, atol=1e-6 * float(t.grad.abs().max()))


@pytest.mark.parametrize("rank,iters,lr", [(2, 50, 1e-5), (2, 200, 1e-3), (None, 50, 1e-5), (None, 200, 1e-3)])
def test_adam_trajectory_equals_fusionbench_loop(rank, iters, lr):
    tv = _task_vectors(rank)
    got, want = wudi_adam(tv, iters=iters, lr=lr), _autograd_adam(tv, iters, lr)
    moved = float((want - tv.sum(0)).abs().max())
    assert float((got - want).abs().max()) <= 0.01 * moved  # Adam's per-entry scaling amplifies rounding a little


def test_zero_task_vectors_have_zero_gradient():
    assert torch.equal(_wudi_gradient(torch.zeros(2, 3, 4))(torch.ones(3, 4)), torch.zeros(3, 4))


def test_closed_form_ignores_the_rounding_noise_of_float32_weights():
    """Merged-LoRA stages S, S + D, S + A stored as float32 weights: their differences from the base are low rank
    plus rounding noise. The pseudo-inverse must not invert the noise (it blew a weight up 500x in the SSR run): the
    merge equals the exact low-rank optimum."""
    from tenfold.merging.merges import wudi, wudi_closed_form

    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        base = 3.0 * torch.randn(192, 96, generator=g)
        s_, d_, a_ = (0.01 * torch.randn(192, 6, generator=g) @ torch.randn(6, 96, generator=g) for _ in range(3))
        exact = torch.stack([s_, s_ + d_, s_ + a_]).double()
        want = wudi_closed_form(exact)  # float64 low-rank: no noise to invert
        got = wudi({"w": base}, [{"w": base + t.float()} for t in exact], check_base=False)["w"].double() - base
        assert float((got - want).norm() / want.norm()) < 1e-4
