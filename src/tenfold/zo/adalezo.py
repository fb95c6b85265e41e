"""AdaLeZO: adaptive layer-wise zeroth-order optimisation (a bandit chooses which layers to perturb).

Paper: Wang, Shen, Ding, Xue, Liu, Ding, *Universally Empowering Zeroth-Order Optimization via Adaptive
Layer-wise Sampling*, arXiv 2604.18264 (2026). No reference code was found; only the abstract and a
technical summary were readable.

Implemented: the reconstruction "AdaLeZO-R" of ../shared/research/optimizers.md section 2.4, every free
choice a named constructor argument: k draws per step *with replacement* from p_t over L arms, each drawn
arm perturbed once (seeded per arm, `engine.SeededPerturbation`), inverse-probability weights
(Hansen–Hurwitz c/(k p), or Horvitz–Thompson 1/(1-(1-p)^k)) that keep the estimate unbiased for the
full MeZO gradient, EMA rewards r = w g^2 over drawn arms, probabilities p ∝ sqrt(R) (or a softmax)
mixed with a uniform exploration floor γ/L, uniform warm-up, a parameter-count-aware budget, and
plug-in mode over any torch optimizer (ZO-SGD-momentum, ZO-Adam).
Not implemented: the paper's exact bandit (EXP3 / discounted UCB / Thompson are all unknown), its
reward and its hyperparameters.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from tenfold.zo.engine import ZOOptimizer

WEIGHTINGS = ("hansen_hurwitz", "horvitz_thompson")
RULES = ("sqrt", "softmax")
BUDGETS = ("layers", "params")


def arm_probabilities(rewards: list[float], sizes: list[int], *, gamma: float, rule: str = "sqrt",
                      tau: float = 1.0, cost_aware: bool = False) -> list[float]:
    """Sampling probabilities p_l from smoothed rewards R_l (estimates of ||grad_l||^2).

    "sqrt": p ∝ sqrt(R_l) (∝ an estimate of ||grad_l||, the variance-optimal importance sampling for a sum
    of per-arm terms); with `cost_aware`, p ∝ sqrt(R_l / n_l) (variance per touched parameter).
    "softmax": p ∝ exp(s_l / (tau mean(s))), s_l the sqrt score (an EXP3-like alternative).
    Then p = (1 - gamma) p + gamma / L (exploration floor; every IPW weight <= L / (k gamma)).

    Parameters
    ----------
    rewards : list of float, length L
    sizes : list of int, length L
        Parameter counts n_l.
    gamma : float in (0, 1]

    Returns
    -------
    list of float, length L, summing to 1.
    """
    n = len(rewards)
    score = [math.sqrt(max(r, 0.0) / (s if cost_aware else 1)) for r, s in zip(rewards, sizes)]
    if rule == "softmax":
        mean = sum(score) / n or 1.0
        top = max(score)
        score = [math.exp((s - top) / (tau * mean)) for s in score]
    total = sum(score)
    base = [s / total for s in score] if total > 0 else [1.0 / n] * n
    return [(1 - gamma) * b + gamma / n for b in base]


def ipw_weights(counts: dict[int, int], probs: list[float], k: int, weighting: str) -> dict[int, float]:
    """Inverse-probability weights of the drawn arms.

    Hansen–Hurwitz (sampling with replacement): w_l = c_l / (k p_l), E[w_l 1{l drawn}] = 1.
    Horvitz–Thompson: w_l = 1 / π_l with π_l = 1 - (1 - p_l)^k, once per distinct arm.
    """
    if weighting == "hansen_hurwitz":
        return {a: c / (k * probs[a]) for a, c in counts.items()}
    return {a: 1.0 / (1.0 - (1.0 - probs[a]) ** k) for a in counts}


class AdaLeZO(ZOOptimizer):
    r"""Adaptive layer-wise SPSA: a non-stationary bandit picks which arms (layers) to perturb.

    Step t: draw k arms i.i.d. from p_t (with replacement; counts c_l, distinct set S_t), perturb each
    l ∈ S_t once with its own seeded z_l, g = (L(θ+εz_S) - L(θ-εz_S)) / 2ε, and update
    θ_l ← θ_l - η w_l g z_l for l ∈ S_t with IPW weights w_l, so that E[ĝ] = ∇f (as full MeZO).
    Rewards r̂_l = c_l g^2 / (k p_l) update R_l ← β R_l + (1-β) r̂_l for drawn arms only (stale arms keep
    R; the floor γ keeps exploring them). p_{t+1} from `arm_probabilities`; uniform for `warmup` steps.

    Parameters
    ----------
    params : iterable of dict
        One param group per arm (e.g. `model_arms(model)`); L = number of groups.
    lr : float, default=1e-6
    eps : float, default=1e-3
    k : int or None, default=None
        Draws per step in [1, L] (budget "layers"); None means ceil(L / 4).
    budget : {"layers", "params"}, default="layers"
        "params": k is chosen every step as the smallest number of draws whose expected touched parameter
        count sum_l (1-(1-p_l)^k) n_l reaches `param_fraction` of all parameters, and scores become
        cost-aware (p ∝ sqrt(R_l / n_l)). Use it when arm sizes differ a lot (embeddings).
    param_fraction : float, default=0.25
        Target touched fraction for budget "params", in (0, 1].
    weighting : {"hansen_hurwitz", "horvitz_thompson"}, default="hansen_hurwitz"
    reward_beta : float, default=0.9
        β, EMA factor of the rewards, in [0, 1).
    gamma : float, default=0.2
        Exploration floor, in (0, 1].
    rule : {"sqrt", "softmax"}, default="sqrt"
    tau : float, default=1.0
        Softmax temperature (relative to the mean score).
    warmup : int, default=50
        Steps with uniform p (T0).
    weight_decay, seed, base_optimizer
        As in `MeZO`; with `base_optimizer`, AdaLeZO plugs into ZO-SGD-momentum, ZO-Adam, ...

    Attributes
    ----------
    probs : list of float, length L
        p_t for the next step.
    rewards : list of float, length L
        Smoothed rewards R (NaN for arms never drawn).
    counts_total : list of int, length L
        How often each arm was drawn.

    References
    ----------
    Wang et al. 2026, arXiv 2604.18264 (AdaLeZO); Malladi et al. 2023, arXiv 2305.17333 (MeZO).

    Examples
    --------
    >>> import torch
    >>> from tenfold.zo import AdaLeZO
    >>> ws = [torch.nn.Parameter(torch.ones(4)) for _ in range(4)]
    >>> opt = AdaLeZO([{"params": [w]} for w in ws], lr=0.1, eps=1e-3, k=1, warmup=0, seed=0)
    >>> _ = opt.step(lambda: sum((w ** 2).sum() for w in ws))
    >>> round(sum(opt.probs), 6)
    1.0
    """

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, k: int | None = None, *,
                 budget: str = "layers", param_fraction: float = 0.25, weighting: str = "hansen_hurwitz",
                 reward_beta: float = 0.9, gamma: float = 0.2, rule: str = "sqrt", tau: float = 1.0,
                 warmup: int = 50, weight_decay: float = 0.0, seed: int = 0, base_optimizer: Callable | None = None):
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, base_optimizer=base_optimizer)
        L = self.num_arms
        for name, value, choices in (("budget", budget, BUDGETS), ("weighting", weighting, WEIGHTINGS),
                                     ("rule", rule, RULES)):
            if value not in choices:
                raise ValueError(f"Invalid {name}: {value!r}; expected one of {', '.join(choices)}")
        k = math.ceil(L / 4) if k is None else k
        if not (isinstance(k, int) and 1 <= k <= L):
            raise ValueError(f"Invalid k: {k}; expected an integer in [1, {L}] (the number of arms)")
        if not 0 < param_fraction <= 1:
            raise ValueError(f"Invalid param_fraction: {param_fraction}; expected in (0, 1]")
        if not 0 <= reward_beta < 1:
            raise ValueError(f"Invalid reward_beta: {reward_beta}; expected in [0, 1)")
        if not 0 < gamma <= 1:
            raise ValueError(f"Invalid gamma: {gamma}; expected in (0, 1]")
        if tau <= 0:
            raise ValueError(f"Invalid tau: {tau}; expected > 0")
        if not (isinstance(warmup, int) and warmup >= 0):
            raise ValueError(f"Invalid warmup: {warmup}; expected an integer >= 0")
        self.k, self.budget, self.param_fraction, self.weighting = k, budget, param_fraction, weighting
        self.reward_beta, self.gamma, self.rule, self.tau, self.warmup = reward_beta, gamma, rule, tau, warmup
        self._sampler = torch.Generator().manual_seed(int(seed) + 1)
        self.rewards = [float("nan")] * L
        self.counts_total = [0] * L
        self.probs = [1.0 / L] * L
        self.k_last = k

    def _budget_k(self, probs: list[float]) -> int:
        """Smallest k with expected touched parameters >= param_fraction of all (budget "params")."""
        sizes, target = self.arm_sizes, self.param_fraction * sum(self.arm_sizes)
        for k in range(1, 4 * self.num_arms + 1):
            if sum((1 - (1 - p) ** k) * n for p, n in zip(probs, sizes)) >= target:
                return k
        return 4 * self.num_arms

    def _select(self) -> dict[int, float]:
        probs = self.probs
        k = self._budget_k(probs) if self.budget == "params" else self.k
        draws = torch.multinomial(torch.tensor(probs, dtype=torch.float64), k, replacement=True,
                                  generator=self._sampler).tolist()
        counts: dict[int, int] = {}
        for a in draws:
            counts[a] = counts.get(a, 0) + 1
        self.k_last, self._counts = k, counts
        return ipw_weights(dict(sorted(counts.items())), probs, k, self.weighting)

    def _observe(self, weights: dict[int, float], g: float) -> None:
        k, probs, b = self.k_last, self.probs, self.reward_beta
        for a, c in self._counts.items():
            r = c * g * g / (k * probs[a])
            self.rewards[a] = r if math.isnan(self.rewards[a]) else b * self.rewards[a] + (1 - b) * r
            self.counts_total[a] += c
        if self.steps + 1 < self.warmup:
            return
        seen = [r for r in self.rewards if not math.isnan(r)]
        fill = sum(seen) / len(seen) if seen else 0.0  # arms never drawn: the mean reward
        rewards = [fill if math.isnan(r) else r for r in self.rewards]
        self.probs = arm_probabilities(rewards, self.arm_sizes, gamma=self.gamma, rule=self.rule, tau=self.tau,
                                       cost_aware=self.budget == "params")

    def _extra_state(self) -> dict:
        return {"sampler": self._sampler.get_state(), "rewards": list(self.rewards), "probs": list(self.probs),
                "counts_total": list(self.counts_total), "k_last": self.k_last}

    def _load_extra_state(self, state: dict) -> None:
        if len(state["probs"]) != self.num_arms:
            raise ValueError(f"Invalid state_dict: {len(state['probs'])} arms saved, {self.num_arms} here")
        self._sampler.set_state(state["sampler"])
        self.rewards, self.probs = list(state["rewards"]), list(state["probs"])
        self.counts_total, self.k_last = list(state["counts_total"]), state["k_last"]
