"""The seeded perturbation engine and the step machinery shared by every zeroth-order (ZO) optimizer.

Paper: Wang et al., *Universally Empowering Zeroth-Order Optimization via Adaptive Layer-wise Sampling*
(AdaLeZO), arXiv 2604.18264 (2026); baseline behaviour from MeZO (Malladi et al., arXiv 2305.17333,
reference code princeton-nlp/MeZO@552cb1b `large_models/trainer.py`).

Implemented: arms (layers) from an HF model's structure (`model_arms`); `SeededPerturbation`, which
draws every arm's Gaussian direction z from its own `torch.Generator` seeded from (step seed, arm)
(never the global RNG) into a reused scratch buffer and applies it in place; `ZOOptimizer`, the SPSA
step with the `step(closure)` convention: +eps sweep, forward, -2 eps sweep, forward, then restore fused
with the update (3 sweeps over the touched parameters instead of MeZO's 4), or a plug-in step that
writes w * g * z into `.grad` of the touched parameters and calls a base torch optimizer.
Not implemented: n-SPSA (more than one probe per step), one-sided probes, CUDA-specific kernels.
"""

from __future__ import annotations

import abc
import math
import re
import time
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

TIMERS = ("forward", "perturb", "update", "bandit")
_BLOCK_RE = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")
_EMBED = ("embed", "wte", "wpe")
_HEAD = ("lm_head", "classifier", "score", "pooler", "head")
_MASK64 = (1 << 64) - 1


def arm_name(param_name: str, split_head: bool = False) -> str:
    """The arm a parameter belongs to: "block3" for transformer block 3 ("layers.3." Llama/OPT, "layer.3." BERT,
    "h.3." GPT-2, "blocks."/"block."), "embed" for names containing "embed", else "rest" (final norm, LM head,
    pooler, classifier; GPT-2's wte/wpe too: one arm, as the official AdaLeZO code groups them). `split_head=True`
    keeps this project's earlier rule: wte/wpe count as "embed", and the rest splits into "head"
    (lm_head/classifier/score/pooler/head) and "other"."""
    m = _BLOCK_RE.search(param_name)
    if m:
        return f"block{m.group(1)}"
    if not split_head:
        return "embed" if "embed" in param_name else "rest"
    if any(s in param_name for s in _EMBED):
        return "embed"
    if any(s in param_name for s in _HEAD):
        return "head"
    return "other"


def model_arms(model: torch.nn.Module, *, include: Sequence[str] | None = None,
               exclude: Sequence[str] = (), split_head: bool = False) -> list[dict]:
    """Param groups, one per arm, from an HF model's structure (blocks, embeddings, head, the rest).

    Parameters
    ----------
    model : torch.nn.Module
        Any model whose block parameters are named "...layers.<i>..." (LLaMA), "...layer.<i>..." (BERT),
        "...h.<i>..." (GPT-2) or "...blocks.<i>...". Only parameters with `requires_grad` are used; tied
        weights appear once (`named_parameters` de-duplicates).
    include : sequence of str or None, default=None
        Keep only these arm names (e.g. `["block0", "block1", "head"]`); None keeps all.
    exclude : sequence of str, default=()
        Drop these arm names (e.g. `["embed"]` to freeze the embeddings for every method).
    split_head : bool, default=False
        False: the official AdaLeZO grouping (blocks, embeddings, and one "rest" arm for everything else);
        True: "head" and "other" as separate arms (this project's earlier rule).

    Returns
    -------
    list of dict
        `{"name": str, "params": [Tensor], "param_names": [str]}` in first-appearance order: pass it
        straight to `MeZO`, `LeZO` or `AdaLeZO`.
    """
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        arm = arm_name(name, split_head)
        if (include is not None and arm not in include) or arm in exclude:
            continue
        g = groups.setdefault(arm, {"name": arm, "params": [], "param_names": []})
        g["params"].append(p)
        g["param_names"].append(name)
    if not groups:
        raise ValueError("Invalid model: no trainable parameters left after include/exclude")
    return list(groups.values())


def _mix(a: int, b: int) -> int:
    """splitmix64 of (a, b): the seed of arm b's generator at step seed a."""
    z = (a * 0x9E3779B97F4A7C15 + (b + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


class SeededPerturbation:
    """Regenerable Gaussian directions per arm, applied in place.

    Arm `a` at step seed `s` draws its z ~ N(0, I) (one block per parameter, in order) from a fresh
    `torch.Generator` seeded with splitmix64(s, a), so any sweep can regenerate exactly the same z without
    storing it, and the global RNG (dropout, data order) is never touched. z is written into a scratch
    buffer (one per dtype and device, the size of the largest parameter) and then added with
    `Tensor.add_`, so a sweep allocates nothing.

    Parameters
    ----------
    arms : sequence of sequence of Tensor
        The parameters of each arm (floating point: fp32, bf16, fp16, fp64).

    Attributes
    ----------
    sizes : list of int
        Parameter count of each arm.
    """

    def __init__(self, arms: Sequence[Sequence[Tensor]]):
        self.arms = [list(a) for a in arms]
        self.sizes = [sum(p.numel() for p in a) for a in self.arms]
        self._buf: dict[tuple, Tensor] = {}

    def _scratch(self, p: Tensor) -> Tensor:
        key = (p.dtype, p.device)
        buf = self._buf.get(key)
        if buf is None or buf.numel() < p.numel():
            need = max(q.numel() for a in self.arms for q in a if (q.dtype, q.device) == key)
            buf = self._buf[key] = torch.empty(need, dtype=p.dtype, device=p.device)
        return buf[:p.numel()].view_as(p)

    def directions(self, arm: int, seed: int) -> Iterable[tuple[Tensor, Tensor]]:
        """Yield (param, z) for every parameter of `arm`; z lives in the scratch buffer until the next yield."""
        gen = torch.Generator(device=self.arms[arm][0].device if self.arms[arm] else "cpu")
        gen.manual_seed(_mix(seed, arm))
        for p in self.arms[arm]:
            z = self._scratch(p)
            z.normal_(generator=gen)
            yield p, z

    @torch.no_grad()
    def apply(self, seed: int, alphas: dict[int, float]) -> None:
        """One sweep: p += alpha_a * z_a for every arm a in `alphas` (in place)."""
        for arm, alpha in alphas.items():
            for p, z in self.directions(arm, seed):
                p.add_(z, alpha=alpha)

    @torch.no_grad()
    def fill_grads(self, seed: int, coefs: dict[int, float]) -> None:
        """Set `p.grad = coef_a * z_a` for every parameter of the arms in `coefs` (plug-in mode)."""
        for arm, c in coefs.items():
            for p, z in self.directions(arm, seed):
                if p.grad is None:
                    p.grad = torch.empty_like(p)
                torch.mul(z, c, out=p.grad)


def _active_dropout(model: torch.nn.Module) -> bool:
    """True when some dropout module of `model` is in training mode with p > 0."""
    return any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training and m.p > 0 for m in model.modules())


def _as_float(loss: Any, name: str = "closure") -> float:
    if isinstance(loss, Tensor):
        if loss.numel() != 1:
            raise ValueError(f"Invalid {name} result: expected a scalar loss, got shape {tuple(loss.shape)}")
        return float(loss)
    return float(loss)


class ZOOptimizer(Optimizer, abc.ABC):
    """Base class of the seeded SPSA optimizers: each param group is one arm.

    A step draws arms and weights (`_select`), a step seed, and runs

    1. θ_S += ε z_S (sweep 1), L₊ = closure()
    2. θ_S -= 2ε z_S (sweep 2), L₋ = closure(), g = (L₊ - L₋) / (2ε)
    3. fused: θ_a += (ε(1 - η_a λ_a) - η_a w_a g) z_a for a in S (sweep 3), which restores θ and applies
       θ_a ← (1 - η_a λ_a) θ_a - η_a w_a g z_a; or, with `base_optimizer`, restore (sweep 3), write
       `p.grad = w_a g z_a` (sweep 4) and call the base optimizer's `step()`.

    and then tells the subclass the outcome (`_observe`). Subclasses implement `_select` (and may
    implement `_observe`, `_extra_state`, `_load_extra_state`).

    Parameters
    ----------
    params : iterable of dict or Tensor
        Param groups, one per arm (e.g. from `model_arms`); a group may set its own `lr` and
        `weight_decay`. Plain tensors form a single arm.
    lr : float
        η, the step size of the fused update (ignored in plug-in mode: the base optimizer's lr rules).
    eps : float
        ε, the perturbation scale (> 0), shared by every arm.
    weight_decay : float
        λ, decoupled weight decay applied to the touched arms only (MeZO skips biases and norms by name;
        here put those in a group with `weight_decay=0`).
    seed : int
        Seeds the step-seed generator (and the arm sampler in subclasses).
    base_optimizer : callable or None
        Plug-in mode: `base_optimizer(groups) -> torch.optim.Optimizer` over the same tensors, e.g.
        `lambda g: torch.optim.SGD(g, lr=1e-4, momentum=0.9)` (ZO-SGD-momentum) or `torch.optim.Adam`
        (ZO-Adam). Untouched parameters keep `grad=None`, so their momentum neither decays nor moves.
    model : torch.nn.Module or None
        The model the closure runs. When given, each step runs both probes in eval mode (dropout off, as the
        official MeZO and AdaLeZO trainers call `model.eval()`: with dropout on, the two probes see different
        masks and g is mostly dropout noise) and restores the model's mode afterwards. Without it the
        optimizer cannot see the model: call `model.eval()` yourself.
    eval_mode : bool
        With `model`: False keeps the model's own mode and warns once when it is training with active dropout.

    Attributes
    ----------
    timing : dict
        Seconds of the last step per bucket: "forward", "perturb", "update", "bandit".
    timing_total : dict
        The same, summed over all steps.
    last : dict
        {"g", "loss_pos", "loss_neg", "arms", "touched"} of the last step.
    """

    def __init__(self, params, *, lr: float, eps: float, weight_decay: float, seed: int,
                 base_optimizer: Callable[[list[dict]], Optimizer] | None, model: torch.nn.Module | None = None,
                 eval_mode: bool = True):
        if not (isinstance(lr, (int, float)) and lr >= 0):
            raise ValueError(f"Invalid lr: {lr}; expected a float >= 0")
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"Invalid eps: {eps}; expected a float > 0")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"Invalid weight_decay: {weight_decay}; expected a float >= 0")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        for i, group in enumerate(self.param_groups):
            group.setdefault("name", f"arm{i}")
            for p in group["params"]:
                if not torch.is_floating_point(p):
                    raise ValueError(f"Invalid parameter in arm {group['name']!r}: dtype {p.dtype} is not floating "
                                     "point; ZO perturbations need float tensors")
        if model is not None and not isinstance(model, torch.nn.Module):
            raise ValueError(f"Invalid model: {type(model).__name__}; expected a torch.nn.Module or None")
        self.model, self.eval_mode, self._warned = model, bool(eval_mode), False
        self.eps = float(eps)
        self.engine = SeededPerturbation([g["params"] for g in self.param_groups])
        self._seed_gen = torch.Generator().manual_seed(int(seed))
        self.steps = 0
        self.base = None
        if base_optimizer is not None:
            self.base = base_optimizer([{"params": g["params"]} for g in self.param_groups])
            if not isinstance(self.base, Optimizer):
                raise ValueError(f"Invalid base_optimizer: returned {type(self.base).__name__}, expected a torch Optimizer")
        self.timing = dict.fromkeys(TIMERS, 0.0)
        self.timing_total = dict.fromkeys(TIMERS, 0.0)
        self.last: dict = {}

    @property
    def num_arms(self) -> int:
        return len(self.param_groups)

    @property
    def arm_sizes(self) -> list[int]:
        return self.engine.sizes

    # ---- hooks ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _select(self) -> dict[int, float]:
        """{arm: IPW weight w_a} for the arms perturbed this step (MeZO, LeZO and AdaLeZO each define it)."""

    def _observe(self, weights: dict[int, float], g: float) -> None:
        """Called after each step with the chosen arms and the projected gradient g."""

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    # ---- the step -----------------------------------------------------------------------------------
    def _probe(self, closure) -> float:
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                loss = closure()
        except RuntimeError as e:
            if "does not require grad" in str(e) or "grad_fn" in str(e):
                raise ValueError("Invalid closure: it needs gradients (it calls backward?); a ZO closure must "
                                 "only compute and return the loss, it runs under torch.no_grad()") from e
            raise
        self.timing["forward"] += time.perf_counter() - t0
        return _as_float(loss)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> float:  # type: ignore[override]
        """One SPSA step; `closure()` must return the loss on the current batch (it runs twice).

        Returns
        -------
        float
            L₊, the loss at θ + εz (as MeZO's `zo_step` returns it).
        """
        if closure is None:
            raise ValueError("Invalid closure: None; ZO optimizers need step(closure) with a closure that returns "
                             "the loss (computed twice per step, under torch.no_grad())")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    raise ValueError(f"Invalid state: parameter in arm {group['name']!r} has a .grad; ZO optimizers "
                                     "use no gradients and do not support gradient accumulation (call "
                                     "zero_grad(set_to_none=True) and do not call backward)")
        self.timing = dict.fromkeys(TIMERS, 0.0)
        model = self.model
        modes = None  # each module's own mode, restored after the probes (a user may keep parts in eval mode)
        if model is not None and model.training:
            if self.eval_mode:
                modes = [(m, m.training) for m in model.modules()]
                model.eval()
            elif not self._warned and _active_dropout(model):
                import warnings

                warnings.warn("model is in training mode with active dropout: the two ZO probes see different "
                              "dropout masks, so g is mostly noise; call model.eval() or pass eval_mode=True",
                              UserWarning, stacklevel=2)
                self._warned = True
        try:
            return self._step(closure)
        finally:
            for m, mode in modes or ():
                m.training = mode

    def _step(self, closure) -> float:
        t0 = time.perf_counter()
        weights = self._select()
        self.timing["bandit"] += time.perf_counter() - t0
        seed = int(torch.randint(0, 2**62, (1,), generator=self._seed_gen))
        eps = self.eps

        t0 = time.perf_counter()
        self.engine.apply(seed, dict.fromkeys(weights, eps))
        self.timing["perturb"] += time.perf_counter() - t0
        loss_pos = self._probe(closure)
        t0 = time.perf_counter()
        self.engine.apply(seed, dict.fromkeys(weights, -2 * eps))
        self.timing["perturb"] += time.perf_counter() - t0
        loss_neg = self._probe(closure)
        g = (loss_pos - loss_neg) / (2 * eps)

        self.last = {"g": g, "loss_pos": loss_pos, "loss_neg": loss_neg, "arms": sorted(weights),
                     "touched": sum(self.engine.sizes[a] for a in weights), "skipped": not math.isfinite(g)}
        t0 = time.perf_counter()
        if self.last["skipped"]:  # a non-finite probe: restore θ and skip the update (and the bandit's reward)
            self.engine.apply(seed, dict.fromkeys(weights, eps))
            self.timing["perturb"] += time.perf_counter() - t0
            self.steps += 1
            return loss_pos
        if self.base is None:
            alphas = {}
            for a, w in weights.items():
                lr, wd = self.param_groups[a]["lr"], self.param_groups[a]["weight_decay"]
                if wd:
                    for p in self.param_groups[a]["params"]:
                        p.mul_(1 - lr * wd)
                alphas[a] = eps * (1 - lr * wd) - lr * w * g
            self.engine.apply(seed, alphas)
        else:
            self.engine.apply(seed, dict.fromkeys(weights, eps))
            self.timing["perturb"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            self.engine.fill_grads(seed, {a: w * g for a, w in weights.items()})
            self.base.step()
            for a in weights:
                for p in self.param_groups[a]["params"]:
                    p.grad = None
        self.timing["update"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        self._observe(weights, g)
        self.timing["bandit"] += time.perf_counter() - t0
        self.steps += 1
        for k, v in self.timing.items():
            self.timing_total[k] += v
        return loss_pos

    # ---- checkpointing ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """torch's state dict plus "zo": step counter, step-seed generator state, subclass (bandit) state and
        the base optimizer's state dict."""
        sd = super().state_dict()
        sd["zo"] = {"steps": self.steps, "seed_gen": self._seed_gen.get_state(), "extra": self._extra_state(),
                    "base": self.base.state_dict() if self.base is not None else None}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        zo = state_dict.pop("zo", None)
        if zo is None:
            raise ValueError("Invalid state_dict: no 'zo' entry (not written by a tenfold ZO optimizer)")
        super().load_state_dict(state_dict)
        self.steps = zo["steps"]
        self._seed_gen.set_state(zo["seed_gen"])
        self._load_extra_state(zo["extra"])
        if (zo["base"] is None) != (self.base is None):
            raise ValueError("Invalid state_dict: plug-in base optimizer present in one of saved/current but not both")
        if self.base is not None:
            self.base.load_state_dict(zo["base"])
