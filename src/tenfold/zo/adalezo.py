"""AdaLeZO: adaptive layer-wise zeroth-order optimisation (a bandit chooses which layers to perturb).

Paper: Wang, Shen, Ding, Xue, Liu, Ding, *Universally Empowering Zeroth-Order Optimization via Adaptive
Layer-wise Sampling*, arXiv 2604.18264 (ACL Findings 2026). Official code: `WangFei-2019/UnifiedZO`,
`zo_core/trainer/adalezo_trainer.py` (commit 8282a73), defaults in `zo_core/arguments.py` (commit 3263861),
launch recipe `large_models/scripts/adalezo.sh`. The paper's method section could not be read; the official code
is the source of every default below (../shared/research/fidelity/mols-adalezo.md section 2.2).

Implemented, `variant="official"` (the default), each element from the official trainer:
k = max(1, floor(0.2 L)) draws per step *with replacement* (`adalezo_k_ratio` 0.2); each distinct drawn arm
perturbed once with its own seeded z; update weight min(1 / (k p_l), clip) x c_l with clip 4
(`adalezo_ipw_clip`, "4 for hard tasks, 16 for easy"); reward |g| (the unweighted absolute projected gradient),
smoothed by an EMA with alpha 0.1 (`adalezo_ema_alpha`) from 0, once per step per distinct drawn arm;
p = softmax((R / max R) / tau) with tau 0.6, then mixed with the uniform distribution, gamma 0.1; resampled every
step; no warm-up (p starts uniform because every R starts at 0).
`variant="former"`: this project's earlier reconstruction AdaLeZO-R (before the official code was found): reward
c g^2 / (k p), p ∝ sqrt(R), gamma 0.2, no clip, k = ceil(L / 4), a 50-step uniform warm-up, never-drawn arms
filled with the mean reward. Every element is also a named argument, so any mix can be run.
Plug-in mode (`base_optimizer`): the IPW-weighted estimate w g z is written into `.grad` of the drawn arms and any
torch optimizer steps; `torch.optim.Adam` gives the form of the official `AdaZOAdaMUTrainer` update (Adam moments on
the IPW-weighted estimate, updated only for drawn layers) but with torch's per-parameter bias-correction count and
this class's EMA reward (the official trainer: global step, running-mean reward); SGD with momentum gives
ZO-SGD-momentum.
Not implemented: the official `adalezo_layer_momentum` (off by default there) and `adalezo_warm_start` (off by
default there); its other plug-ins (AdaLoZO, AdaHiZOO, AdaPZO, ...).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from tenfold.zo.engine import ZOOptimizer

WEIGHTINGS = ("hansen_hurwitz", "horvitz_thompson")
RULES = ("softmax_max", "sqrt", "softmax_mean")
REWARDS = ("abs_g", "ipw_g2")
BUDGETS = ("layers", "params")
VARIANTS = ("official", "former")
# each variant's value of every element (official: UnifiedZO's adalezo_trainer.py and arguments.py)
_PRESETS = {
    "official": {"k_ratio": 0.2, "k_round": "floor", "reward": "abs_g", "rule": "softmax_max", "tau": 0.6,
                 "gamma": 0.1, "clip": 4.0, "warmup": 0, "reward_init": "zero"},
    "former": {"k_ratio": 0.25, "k_round": "ceil", "reward": "ipw_g2", "rule": "sqrt", "tau": 1.0,
               "gamma": 0.2, "clip": None, "warmup": 50, "reward_init": "first"},
}


def default_k(num_arms: int, variant: str = "official") -> int:
    """Draws per step of a variant: official max(1, floor(0.2 L)); former ceil(L / 4)."""
    if variant not in VARIANTS:
        raise ValueError(f"Invalid variant: {variant!r}; expected one of {', '.join(VARIANTS)}")
    p = _PRESETS[variant]
    k = math.floor(p["k_ratio"] * num_arms) if p["k_round"] == "floor" else math.ceil(p["k_ratio"] * num_arms)
    return max(1, min(num_arms, k))


def arm_probabilities(rewards: list[float], sizes: list[int], *, gamma: float, rule: str = "softmax_max",
                      tau: float = 0.6, cost_aware: bool = False) -> list[float]:
    """Sampling probabilities p_l from smoothed rewards R_l.

    "softmax_max" (official): s_l = R_l / max R (left as R when max R <= 1e-6), p = softmax(s / tau).
    "sqrt" (former): p ∝ sqrt(R_l) (∝ an estimate of ||grad_l|| when R estimates ||grad_l||^2); with
    `cost_aware`, p ∝ sqrt(R_l / n_l).
    "softmax_mean" (former option): p ∝ exp(s_l / (tau mean(s))), s_l the sqrt score.
    Then p = (1 - gamma) p + gamma / L (exploration floor).

    Parameters
    ----------
    rewards : list of float, length L
    sizes : list of int, length L
        Parameter counts n_l (used by `cost_aware`).
    gamma : float in (0, 1]
    rule : {"softmax_max", "sqrt", "softmax_mean"}
    tau : float > 0

    Returns
    -------
    list of float, length L, summing to 1.
    """
    if rule not in RULES:
        raise ValueError(f"Invalid rule: {rule!r}; expected one of {', '.join(RULES)}")
    n = len(rewards)
    if rule == "softmax_max":
        top = max(rewards)
        s = [r / top for r in rewards] if top > 1e-6 else list(rewards)
        m = max(s)
        e = [math.exp((x - m) / tau) for x in s]
        base = [x / sum(e) for x in e]
    else:
        score = [math.sqrt(max(r, 0.0) / (sz if cost_aware else 1)) for r, sz in zip(rewards, sizes)]
        if rule == "softmax_mean":
            mean = sum(score) / n or 1.0
            top = max(score)
            score = [math.exp((x - top) / (tau * mean)) for x in score]
        total = sum(score)
        base = [x / total for x in score] if total > 0 else [1.0 / n] * n
    return [(1 - gamma) * b + gamma / n for b in base]


def ipw_weights(counts: dict[int, int], probs: list[float], k: int, weighting: str = "hansen_hurwitz",
                clip: float | None = None) -> dict[int, float]:
    """Inverse-probability weights of the drawn arms.

    Hansen–Hurwitz (sampling with replacement): w_l = min(1 / (k p_l), clip) c_l; without a clip
    E[w_l 1{l drawn}] = 1. The official code clips 1 / (k p) before multiplying by the count c_l.
    Horvitz–Thompson: w_l = min(1 / π_l, clip) with π_l = 1 - (1 - p_l)^k, once per distinct arm.
    """
    cap = math.inf if clip is None else clip
    if weighting == "hansen_hurwitz":
        return {a: min(1.0 / (k * probs[a]), cap) * c for a, c in counts.items()}
    return {a: min(1.0 / (1.0 - (1.0 - probs[a]) ** k), cap) for a in counts}


_UNSET = object()


class AdaLeZO(ZOOptimizer):
    r"""Adaptive layer-wise SPSA: a non-stationary bandit picks which arms (layers) to perturb.

    Step t: draw k arms i.i.d. from p_t (with replacement; counts c_l, distinct set S_t), perturb each
    l ∈ S_t once with its own seeded z_l, g = (L(θ+εz_S) - L(θ-εz_S)) / 2ε, and update
    θ_l ← θ_l - η w_l g z_l for l ∈ S_t with IPW weights w_l = min(1/(k p_l), clip) c_l. Each drawn arm's reward
    updates R_l ← β R_l + (1-β) r_l (official: r = |g|, β = 0.9, R starts at 0); then p_{t+1} from
    `arm_probabilities`. Every argument left unset takes the value of `variant` (see the module doc).

    Parameters
    ----------
    params : iterable of dict
        One param group per arm (e.g. `model_arms(model)`); L = number of groups.
    lr : float, default=1e-6
        Official full fine-tuning LR (`adalezo.sh`, OPT-1.3B: 1e-6; LoRA 5e-5; prefix 1e-2).
    eps : float, default=1e-3
        Official (and MeZO's) perturbation scale for full fine-tuning.
    k : int or None, default=None
        Draws per step in [1, L] (budget "layers"); None: official max(1, floor(0.2 L)), former ceil(L / 4).
    variant : {"official", "former"}, default="official"
    reward : {"abs_g", "ipw_g2"}
        Official |g|; former c g^2 / (k p).
    rule : {"softmax_max", "sqrt", "softmax_mean"}
        Official softmax of R / max R at temperature `tau`; former p ∝ sqrt(R).
    tau : float
        Softmax temperature; official 0.6 (`adalezo_tau`, the script says 0.5-0.7).
    gamma : float in (0, 1]
        Uniform mixing floor; official 0.1, former 0.2.
    clip : float or None
        Cap on 1 / (k p) before the count; official 4 ("hard tasks"; 16 for easy ones), former None.
    warmup : int
        Steps with uniform p; official 0, former 50.
    reward_init : {"zero", "first"}
        Official "zero": R starts at 0 (never-drawn arms score lowest); former "first": R starts at the first
        observation and never-drawn arms are scored with the mean reward.
    reward_beta : float in [0, 1), default=0.9
        β = 1 - alpha with the official alpha 0.1 (`adalezo_ema_alpha`).
    budget : {"layers", "params"}, default="layers"
        "params" (a former option): k chosen every step as the smallest number of draws whose expected touched
        parameter count reaches `param_fraction`, with cost-aware sqrt scores (only with rule "sqrt").
    param_fraction : float, default=0.25
    weighting : {"hansen_hurwitz", "horvitz_thompson"}, default="hansen_hurwitz"
        Official: Hansen–Hurwitz (count / (k p)).
    weight_decay, seed, base_optimizer, model, eval_mode
        As in `MeZO`; with `base_optimizer`, AdaLeZO plugs into ZO-Adam (the official AdaZOAdaMU update),
        ZO-SGD-momentum, ...

    Attributes
    ----------
    probs : list of float, length L
        p_t for the next step.
    rewards : list of float, length L
        Smoothed rewards R (official: 0 for arms never drawn; former: NaN).
    counts_total : list of int, length L
        How often each arm was drawn.

    References
    ----------
    Wang et al. 2026, arXiv 2604.18264 (AdaLeZO), code WangFei-2019/UnifiedZO; Malladi et al. 2023,
    arXiv 2305.17333 (MeZO).

    Examples
    --------
    >>> import torch
    >>> from tenfold.zo import AdaLeZO
    >>> ws = [torch.nn.Parameter(torch.ones(4)) for _ in range(10)]
    >>> opt = AdaLeZO([{"params": [w]} for w in ws], lr=0.1, eps=1e-3, seed=0)
    >>> opt.k  # max(1, floor(0.2 x 10))
    2
    >>> _ = opt.step(lambda: sum((w ** 2).sum() for w in ws))
    >>> round(sum(opt.probs), 6)
    1.0
    """

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, k: int | None = None, *,
                 variant: str = "official", reward=_UNSET, rule=_UNSET, tau=_UNSET, gamma=_UNSET, clip=_UNSET,
                 warmup=_UNSET, reward_init=_UNSET, reward_beta: float = 0.9, budget: str = "layers",
                 param_fraction: float = 0.25, weighting: str = "hansen_hurwitz", weight_decay: float = 0.0,
                 seed: int = 0, base_optimizer: Callable | None = None, model: torch.nn.Module | None = None,
                 eval_mode: bool = True):
        if variant not in VARIANTS:
            raise ValueError(f"Invalid variant: {variant!r}; expected one of {', '.join(VARIANTS)}")
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, base_optimizer=base_optimizer,
                         model=model, eval_mode=eval_mode)
        preset = _PRESETS[variant]
        pick = lambda name, v: preset[name] if v is _UNSET else v  # noqa: E731
        reward, rule, tau, gamma = pick("reward", reward), pick("rule", rule), pick("tau", tau), pick("gamma", gamma)
        clip, warmup, reward_init = pick("clip", clip), pick("warmup", warmup), pick("reward_init", reward_init)
        L = self.num_arms
        for name, value, choices in (("budget", budget, BUDGETS), ("weighting", weighting, WEIGHTINGS),
                                     ("rule", rule, RULES), ("reward", reward, REWARDS),
                                     ("reward_init", reward_init, ("zero", "first"))):
            if value not in choices:
                raise ValueError(f"Invalid {name}: {value!r}; expected one of {', '.join(choices)}")
        k = default_k(L, variant) if k is None else k
        if not (isinstance(k, int) and 1 <= k <= L):
            raise ValueError(f"Invalid k: {k}; expected an integer in [1, {L}] (the number of arms)")
        if not 0 < param_fraction <= 1:
            raise ValueError(f"Invalid param_fraction: {param_fraction}; expected in (0, 1]")
        if not 0 <= reward_beta < 1:
            raise ValueError(f"Invalid reward_beta: {reward_beta}; expected in [0, 1)")
        if not 0 < gamma <= 1:
            raise ValueError(f"Invalid gamma: {gamma}; expected in (0, 1]")
        if not tau > 0:
            raise ValueError(f"Invalid tau: {tau}; expected > 0")
        if clip is not None and not clip > 0:
            raise ValueError(f"Invalid clip: {clip}; expected None (no clip) or a float > 0")
        if not (isinstance(warmup, int) and warmup >= 0):
            raise ValueError(f"Invalid warmup: {warmup}; expected an integer >= 0")
        if budget == "params" and rule != "sqrt":
            raise ValueError(f"Invalid budget: 'params' needs rule='sqrt' (cost-aware scores), got rule={rule!r}")
        self.variant, self.k, self.budget, self.param_fraction, self.weighting = variant, k, budget, param_fraction, weighting
        self.reward, self.rule, self.tau, self.gamma, self.clip = reward, rule, tau, gamma, clip
        self.warmup, self.reward_init, self.reward_beta = warmup, reward_init, reward_beta
        self._sampler = torch.Generator().manual_seed(int(seed) + 1)
        self.rewards = [0.0 if reward_init == "zero" else float("nan")] * L
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
        return ipw_weights(dict(sorted(counts.items())), probs, k, self.weighting, self.clip)

    def _observe(self, weights: dict[int, float], g: float) -> None:
        k, probs, b = self.k_last, self.probs, self.reward_beta
        for a, c in self._counts.items():
            r = abs(g) if self.reward == "abs_g" else c * g * g / (k * probs[a])
            prev = self.rewards[a]
            self.rewards[a] = r if math.isnan(prev) else b * prev + (1 - b) * r
            self.counts_total[a] += c
        if self.steps + 1 < self.warmup:
            return
        rewards = self.rewards
        if self.reward_init == "first":  # arms never drawn: the mean reward
            seen = [r for r in rewards if not math.isnan(r)]
            fill = sum(seen) / len(seen) if seen else 0.0
            rewards = [fill if math.isnan(r) else r for r in rewards]
        self.probs = arm_probabilities(rewards, self.arm_sizes, gamma=self.gamma, rule=self.rule, tau=self.tau,
                                       cost_aware=self.budget == "params")

    def _extra_state(self) -> dict:
        return {"sampler": self._sampler.get_state(), "rewards": list(self.rewards), "probs": list(self.probs),
                "counts_total": list(self.counts_total), "k_last": self.k_last, "variant": self.variant}

    def _load_extra_state(self, state: dict) -> None:
        if len(state["probs"]) != self.num_arms:
            raise ValueError(f"Invalid state_dict: {len(state['probs'])} arms saved, {self.num_arms} here")
        if state.get("variant", self.variant) != self.variant:
            raise ValueError(f"Invalid state_dict: saved by variant {state['variant']!r}, this optimizer is "
                             f"{self.variant!r}")
        self._sampler.set_state(state["sampler"])
        self.rewards, self.probs = list(state["rewards"]), list(state["probs"])
        self.counts_total, self.k_last = list(state["counts_total"]), state["k_last"]
