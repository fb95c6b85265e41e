"""MeZO (full-parameter SPSA) on the fast engine, MeZO as the reference code does it, and LeZO.

Papers: Malladi et al., *Fine-Tuning Language Models with Just Forward Passes* (MeZO), arXiv 2305.17333,
reference code princeton-nlp/MeZO@552cb1b `large_models/trainer.py` (`zo_step`, `zo_perturb_parameters`,
`zo_update`); LeZO, arXiv 2410.09823 (layer-wise sparse ZO: a random subset of layers per step; notes section 2.3).

Implemented: `MeZO` (every arm every step, on `SeededPerturbation`: 3 in-place sweeps), `LeZO` (k arms
drawn uniformly without replacement, optional 1/π = L/k reweighting), `MeZOReference` (the reference's
global `torch.manual_seed`, out-of-place `param.data = param.data + scale * z * eps`, 4 sweeps, a numpy
global-RNG step seed), kept as the honest "what MeZO costs as published" baseline for timing.
Not implemented: MeZO's prefix/LoRA variants, its learning-rate scheduler hook, non-differentiable
objectives (they work: the closure may return any float).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
from torch.optim import Optimizer

from tenfold.zo.engine import TIMERS, ZOOptimizer, _as_float


class MeZO(ZOOptimizer):
    """Full-parameter SPSA (MeZO) with dedicated generators and the fused restore+update (3 sweeps).

    Each step: z ~ N(0, I) over all parameters, g = (L(θ+εz) - L(θ-εz)) / 2ε, θ ← θ - η g z.

    Parameters
    ----------
    params : iterable of dict or Tensor
        Param groups (e.g. `model_arms(model)`), or plain tensors.
    lr : float, default=1e-6
        η (MeZO's recommended full-parameter range for OPT-13B is 1e-6..1e-7).
    eps : float, default=1e-3
        ε, MeZO's default.
    weight_decay : float, default=0.0
    seed : int, default=0
    base_optimizer : callable or None, default=None
        Plug-in mode, e.g. `lambda g: torch.optim.SGD(g, lr=1e-6, momentum=0.9)` gives ZO-SGD-momentum
        (ZO-Bench's ZO-SGD-MMT), `torch.optim.Adam` ZO-Adam.
    model : torch.nn.Module or None, default=None
        The model the closure runs: each step then runs its probes in eval mode (see `ZOOptimizer`).
    eval_mode : bool, default=True

    Examples
    --------
    >>> import torch
    >>> from tenfold.zo import MeZO
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = MeZO([w], lr=0.1, eps=1e-3, seed=0)
    >>> loss = opt.step(lambda: (w ** 2).sum())
    >>> opt.last["touched"]
    3
    """

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, weight_decay: float = 0.0, seed: int = 0,
                 base_optimizer: Callable | None = None, model: torch.nn.Module | None = None, eval_mode: bool = True):
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, base_optimizer=base_optimizer,
                         model=model, eval_mode=eval_mode)

    def _select(self) -> dict[int, float]:
        return dict.fromkeys(range(self.num_arms), 1.0)


class LeZO(ZOOptimizer):
    """Layer-wise sparse SPSA (LeZO): k arms drawn uniformly without replacement each step.

    LeZO's rule (Wang et al. 2024, arXiv 2410.09823, the same first author as AdaLeZO): z is masked to the drawn
    layers and θ ← θ - η g z_S, the plain MeZO update on the drawn layers (`reweight=False`, the default).
    With `reweight=True` (this project's earlier default) the update is multiplied by 1/π = L/k
    (Horvitz–Thompson), which makes the estimate unbiased for the full MeZO gradient.

    Parameters
    ----------
    params : iterable of dict or Tensor
        One param group per arm (e.g. `model_arms(model)`).
    k : int, default=1
        Arms per step, in [1, L].
    lr, eps, weight_decay, seed, base_optimizer, model, eval_mode
        As in `MeZO`.
    reweight : bool, default=False
    """

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, k: int = 1, reweight: bool = False,
                 weight_decay: float = 0.0, seed: int = 0, base_optimizer: Callable | None = None,
                 model: torch.nn.Module | None = None, eval_mode: bool = True):
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, base_optimizer=base_optimizer,
                         model=model, eval_mode=eval_mode)
        if not (isinstance(k, int) and 1 <= k <= self.num_arms):
            raise ValueError(f"Invalid k: {k}; expected an integer in [1, {self.num_arms}] (the number of arms)")
        self.k, self.reweight = k, reweight
        self._sampler = torch.Generator().manual_seed(int(seed) + 1)

    def _select(self) -> dict[int, float]:
        arms = torch.randperm(self.num_arms, generator=self._sampler)[:self.k].tolist()
        w = self.num_arms / self.k if self.reweight else 1.0
        return dict.fromkeys(sorted(arms), w)

    def _extra_state(self) -> dict:
        return {"sampler": self._sampler.get_state()}

    def _load_extra_state(self, state: dict) -> None:
        self._sampler.set_state(state["sampler"])


class MeZOReference(Optimizer):
    """MeZO exactly as `large_models/trainer.py` does it: global RNG, out-of-place ops, 4 sweeps.

    `zo_perturb_parameters` re-seeds the *global* torch RNG, draws `z = torch.normal(0, 1, size)` per
    parameter and sets `param.data = param.data + scale * z * eps` (a new z and a new tensor per
    parameter); the step perturbs +1, -2, +1 (3 sweeps) and `zo_update` regenerates z again (sweep 4)
    for θ ← θ - η (g z + λ θ) (λ skipped for names with "bias"/"layer_norm"/"layernorm"; here: for
    1-D tensors). The step seed comes from `np.random.randint(1e9)` as in the reference.
    A timing baseline; use `MeZO` for training.

    Parameters
    ----------
    params : iterable of Tensor or dict
    lr : float, default=1e-6
    eps : float, default=1e-3
    weight_decay : float, default=0.0
    """

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"Invalid lr: {lr}; expected a float >= 0")
        if eps <= 0:
            raise ValueError(f"Invalid eps: {eps}; expected a float > 0")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.eps = eps
        self.steps = 0
        self.timing = dict.fromkeys(TIMERS, 0.0)
        self.timing_total = dict.fromkeys(TIMERS, 0.0)
        self.last: dict = {}

    def _params(self):
        return [(g, p) for g in self.param_groups for p in g["params"]]

    def _perturb(self, seed: int, scale: float) -> None:
        torch.manual_seed(seed)
        for _, p in self._params():
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            p.data = p.data + scale * z * self.eps

    def _forward(self, closure) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            loss = _as_float(closure())
        self.timing["forward"] += time.perf_counter() - t0
        return loss

    def step(self, closure: Callable[[], Any] | None = None) -> float:  # type: ignore[override]
        """One reference MeZO step; returns L₊."""
        if closure is None:
            raise ValueError("Invalid closure: None; MeZOReference needs step(closure)")
        self.timing = dict.fromkeys(TIMERS, 0.0)
        seed = int(np.random.randint(1_000_000_000))
        t0 = time.perf_counter()
        self._perturb(seed, 1)
        self.timing["perturb"] += time.perf_counter() - t0
        loss1 = self._forward(closure)
        t0 = time.perf_counter()
        self._perturb(seed, -2)
        self.timing["perturb"] += time.perf_counter() - t0
        loss2 = self._forward(closure)
        g = (loss1 - loss2) / (2 * self.eps)
        t0 = time.perf_counter()
        self._perturb(seed, 1)
        self.timing["perturb"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        for group, p in self._params():
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            if p.dim() > 1:
                p.data = p.data - group["lr"] * (g * z + group["weight_decay"] * p.data)
            else:
                p.data = p.data - group["lr"] * (g * z)
        self.timing["update"] += time.perf_counter() - t0
        self.steps += 1
        for k, v in self.timing.items():
            self.timing_total[k] += v
        self.last = {"g": g, "loss_pos": loss1, "loss_neg": loss2,
                     "touched": sum(p.numel() for _, p in self._params())}
        return loss1
