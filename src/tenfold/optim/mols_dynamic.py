"""MoLSDynamic: the project's earlier MoLS variant, a continuously refreshed module-SNR controller (a named option).

The paper's method as far as its sources go is `tenfold.optim.MoLS` (a one-shot calibration in the warm-up that
raises the steps of noisy module types); this file keeps the earlier reconstruction for comparison.

Paper: Wen et al., *Revealing Modular Gradient Noise Imbalance in LLMs: Calibrating Adam via
Signal-to-Noise Ratio*, arXiv 2605.05794 (2026). No reference code was found; the full text was not
reachable when this was written.

Implemented: the reconstruction "MoLS-R" of ../shared/research/optimizers.md section 1.4 (every free
choice is a named constructor argument): AdamW whose update is multiplied, per module, by a clipped,
normalised power of a module SNR estimated from Adam's own moments every `interval` steps; a GaLore
mode (low-rank moments via `galore_torch.GaLoreProjector`, update rule of `galore_torch.GaLoreAdamW`);
name-rule module partitions; a two-half-batch ground-truth SNR probe for diagnostics.
Kernels: a multi-tensor (`torch._foreach_*`) path over every dense tensor at once (default, like
torch's AdamW `foreach=True`) and the per-tensor loop (`foreach=False`); both give the same numbers.
Not implemented: fused kernels, AMSGrad, complex parameters, sparse gradients (refused),
8-bit states, Adam-mini block moments.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

GRANULARITIES = ("tensor", "layer", "type")
REFERENCES = ("geomean", "none")

# (module type, name substrings): first match wins, so norms come before the projections they sit beside.
DEFAULT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("norm", ("norm", "ln_", ".ln.", "layernorm")),
    ("embed", ("embed", "wte", "wpe", "embd", "cls_token")),
    ("head", ("lm_head", "classifier", "final_layer")),
    ("q", ("q_proj", ".wq.", "query")),
    ("k", ("k_proj", ".wk.", ".key.")),
    ("v", ("v_proj", ".wv.", "value")),
    ("o", ("o_proj", ".wo.", "attn.proj", "attention.output")),
    ("mlp", ("mlp", "feed_forward", "intermediate", "output.dense", ".fc")),
)
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")


def module_type(name: str, rules: Sequence[tuple[str, Sequence[str]]] = DEFAULT_RULES) -> str | None:
    """The module type of a parameter name under `rules` (first match wins); None when no rule matches."""
    for kind, patterns in rules:
        if any(p in name for p in patterns):
            return kind
    return None


def module_key(name: str, granularity: str, rules: Sequence[tuple[str, Sequence[str]]] = DEFAULT_RULES,
               strict: bool = False) -> str:
    """The module a named parameter belongs to.

    Parameters
    ----------
    name : str
        Fully-qualified parameter name, e.g. "model.layers.0.self_attn.q_proj.weight".
    granularity : {"tensor", "layer", "type"}
        "tensor": one module per tensor (the name itself); "layer": one module per transformer block
        ("layer3"), tensors outside blocks keep their type ("embed", "head", "norm"); "type": all layers of
        one type pooled ("q", "mlp", ...).
    rules, strict
        Name rules; with `strict`, a name matched by no rule raises ValueError.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"Invalid granularity: {granularity!r}; expected one of {', '.join(GRANULARITIES)}")
    kind = module_type(name, rules)
    if kind is None:
        if strict:
            raise ValueError(f"Invalid parameter {name!r}: matched by no module rule (strict=True); "
                             f"add a rule, e.g. rules=[('mytype', ('{name.split('.')[-2] if '.' in name else name}',)), ...]")
        kind = "other"
    if granularity == "tensor":
        return name
    if granularity == "type":
        return kind
    m = _LAYER_RE.search(name)
    return f"layer{m.group(1)}" if m else kind


def _single_tensor_moments(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                           exp_avg_sqs: list[Tensor], steps: list[Tensor], *, lr: float, beta1: float,
                           beta2: float, weight_decay: float, maximize: bool) -> None:
    """Decoupled weight decay and Adam's moment EMAs, in torch's `_single_tensor_adam` order."""
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
        g = -g if maximize else g
        t += 1
        if weight_decay != 0:
            p.mul_(1 - lr * weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)


def _single_tensor_mols(params: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                        steps: list[Tensor], *, lr: float, scale: float, beta1: float, beta2: float,
                        eps: float) -> None:
    """The Adam step with the module scale: p -= lr * scale * m_hat / (sqrt(v_hat) + eps)."""
    for p, m, v, t in zip(params, exp_avgs, exp_avg_sqs, steps):
        step = t.item()
        bc1 = 1 - beta1 ** step
        bc2_sqrt = (1 - beta2 ** step) ** 0.5
        denom = (v.sqrt() / bc2_sqrt).add_(eps)
        p.addcdiv_(m, denom, value=-(lr * scale) / bc1)


def _foreach_moments(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                     exp_avg_sqs: list[Tensor], steps: list[Tensor], *, decay: list[float], beta1: float,
                     beta2: float, maximize: bool) -> None:
    """`_single_tensor_moments` over all tensors at once; `decay[i]` = 1 - lr_i * weight_decay_i."""
    if maximize:
        grads = torch._foreach_neg(grads)
    torch._foreach_add_(steps, 1)
    if any(d != 1.0 for d in decay):
        torch._foreach_mul_(params, decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)


def _foreach_mols(params: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                  steps: list[Tensor], *, lr_scale: list[float], beta1: float, beta2: float,
                  eps: list[float]) -> None:
    """`_single_tensor_mols` over all tensors at once; `lr_scale[i]` = lr_i * s_i of tensor i's module."""
    counts = [t.item() for t in steps]
    bc2_sqrt = [(1 - beta2 ** c) ** 0.5 for c in counts]
    step_size = [-ls / (1 - beta1 ** c) for ls, c in zip(lr_scale, counts)]
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, bc2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_size)


def _module_stats(exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor], step: int, beta1: float,
                  beta2: float) -> tuple[float, float]:
    """(S, N) of one module from bias-corrected moments: S = sum m_hat^2, N = sum max(v_hat - m_hat^2, 0)."""
    return _modules_stats([(exp_avgs, exp_avg_sqs, step, beta1, beta2)])[0]


def _modules_stats(modules: list[tuple[list[Tensor], list[Tensor], int, float, float]]) -> list[tuple[float, float]]:
    """`_module_stats` of many modules (exp_avgs, exp_avg_sqs, step, beta1, beta2) in one multi-tensor sweep.

    Sums are taken per tensor in the moments' dtype (fp32 norms), then added per module in float64.
    """
    ms, vs, inv1, inv2, owner = [], [], [], [], []
    for j, (m_list, v_list, step, beta1, beta2) in enumerate(modules):
        ms += m_list
        vs += v_list
        inv1 += [1 / (1 - beta1 ** step)] * len(m_list)
        inv2 += [1 / (1 - beta2 ** step)] * len(m_list)
        owner += [j] * len(m_list)
    if not ms:
        return [(0.0, 0.0)] * len(modules)
    s_t = (torch.stack(torch._foreach_norm(ms, 2)).double().square() * torch.tensor(inv1, dtype=torch.float64) ** 2)
    noise = torch._foreach_mul(vs, inv2)  # v_hat - m_hat^2, clamped at 0
    torch._foreach_addcmul_(noise, ms, ms, [-(i * i) for i in inv1])
    torch._foreach_clamp_min_(noise, 0.0)
    n_t = torch.stack(torch._foreach_norm(noise, 1)).double().tolist()
    s_t = s_t.tolist()
    out = [[0.0, 0.0] for _ in modules]
    for j, s_i, n_i in zip(owner, s_t, n_t):
        out[j][0] += s_i
        out[j][1] += n_i
    return [(a, b) for a, b in out]


def module_snr(signal_sq: float, noise: float, beta1: float, delta: float = 1e-30) -> float:
    """SNR of one module: max(S - rho N, 0) / (N + delta), rho = (1 - beta1) / (1 + beta1).

    rho N removes the noise that survives the EMA of m (M-SVAG's correction, Balles & Hennig 2017).
    """
    rho = (1 - beta1) / (1 + beta1)
    return max(signal_sq - rho * noise, 0.0) / (noise + delta)


def module_scales(snrs: Sequence[float], sizes: Sequence[int], *, alpha: float, scale_min: float,
                  scale_max: float, reference: str = "geomean", floor: float = 1e-12) -> list[float]:
    """Scales s_j = clip((SNR_j / ref)^alpha, scale_min, scale_max).

    `reference="geomean"`: ref is the parameter-count-weighted geometric mean of the SNRs, so the
    unclipped scales have weighted geometric mean 1 and the global lr keeps its meaning; "none": ref = 1.
    """
    logs = [math.log(max(s, floor)) for s in snrs]
    ref = sum(n * l for n, l in zip(sizes, logs)) / max(sum(sizes), 1) if reference == "geomean" else 0.0
    return [min(max(math.exp(alpha * (l - ref)), scale_min), scale_max) for l in logs]


JOINT_KEYS = ("alpha", "scale_min", "scale_max", "reference")  # used once for the joint normalisation of all modules


def _check_hyper(h: dict, where: str = "") -> None:
    """Raise ValueError("Invalid <name>: ...") for the first bad hyperparameter in `h`."""
    lr, eps, betas, wd = h["lr"], h["eps"], h["betas"], h["weight_decay"]
    if isinstance(lr, Tensor) or not lr >= 0.0:
        raise ValueError(f"Invalid lr: {lr}{where}; expected a float >= 0")
    if not eps >= 0.0:
        raise ValueError(f"Invalid eps: {eps}{where}; expected >= 0")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"Invalid betas: {betas}{where}; expected two floats in [0, 1)")
    if not wd >= 0.0:
        raise ValueError(f"Invalid weight_decay: {wd}{where}; expected >= 0")
    if isinstance(h["interval"], bool) or not isinstance(h["interval"], int) or h["interval"] < 1:
        raise ValueError(f"Invalid interval: {h['interval']}{where}; expected an integer K >= 1")
    if not 0.0 <= h["snr_beta"] < 1.0:
        raise ValueError(f"Invalid snr_beta: {h['snr_beta']}{where}; expected in [0, 1)")
    if not 0.0 < h["scale_min"] <= 1.0 <= h["scale_max"]:
        raise ValueError(f"Invalid scale range: ({h['scale_min']}, {h['scale_max']}){where}; expected 0 < scale_min "
                         "<= 1 <= scale_max")
    if isinstance(h["warmup_steps"], bool) or not isinstance(h["warmup_steps"], int) or h["warmup_steps"] < 0:
        raise ValueError(f"Invalid warmup_steps: {h['warmup_steps']}{where}; expected an integer >= 0")
    if h["reference"] not in REFERENCES:
        raise ValueError(f"Invalid reference: {h['reference']!r}{where}; expected one of {', '.join(REFERENCES)}")
    if not math.isfinite(h["alpha"]):
        raise ValueError(f"Invalid alpha: {h['alpha']}{where}; expected a finite float")


class MoLSDynamic(Optimizer):
    r"""AdamW with module-wise update scales from module signal-to-noise ratios (MoLS-R).

    Each step runs AdamW (torch's update, decoupled weight decay). Every `interval` steps, per module j
    (a set of tensors chosen by name rules and `granularity`), from the bias-corrected moments:

    .. math::
        S_j = \sum_{i\in j} \hat m_i^2,\quad N_j = \sum_{i\in j} \max(\hat v_i - \hat m_i^2, 0),\quad
        \mathrm{SNR}_j = \frac{\max(S_j - \rho N_j, 0)}{N_j + \delta},\quad \rho=\frac{1-\beta_1}{1+\beta_1}

    smoothed by an EMA with `snr_beta`, and turned into
    :math:`s_j = \mathrm{clip}((\overline{\mathrm{SNR}}_j/\mathrm{ref})^\alpha, s_{min}, s_{max})`
    (ref: parameter-weighted geometric mean). The update is
    :math:`\theta \leftarrow \theta(1-\eta\lambda) - \eta s_j \hat m/(\sqrt{\hat v}+\epsilon)`; s_j = 1
    before `warmup_steps`. The scale is a multiplier inside `step`, never written into `group["lr"]`,
    so any LR scheduler works unchanged. Module SNRs and scales are floats in the param-group dicts,
    so `state_dict()` carries them; it also carries `history` (key "mols_history").

    Parameters
    ----------
    params : iterable
        `model.named_parameters()` (pairs (name, tensor): modules come from the name rules), tensors
        (one module per tensor), or dicts (param groups). A dict may hold "params" as (name, tensor)
        pairs, a "module" name (all its tensors form one module), and per-group hyperparameters; a group
        with "rank" (plus optional "update_proj_gap", "scale", "proj_type") uses GaLore's low-rank moments
        for its 2-D tensors.
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    weight_decay : float, default=1e-2
        Decoupled weight decay; not multiplied by s_j unless `scale_weight_decay` (reconstruction choice).
    alpha : float, default=0.5
        Exponent of the SNR ratio. > 0 shrinks low-SNR (noisy) modules (M-SVAG direction); < 0 boosts
        them. Reconstruction choice: the paper's direction is not known.
    interval : int, default=10
        K: steps between SNR estimates (>= 1).
    snr_beta : float, default=0.9
        EMA factor for the module SNRs (in [0, 1)).
    scale_min, scale_max : float, default=0.1, 10.0
        Clip range of s_j.
    warmup_steps : int, default=100
        Steps with s_j = 1 (the moments are unreliable early).
    granularity : {"tensor", "layer", "type"}, default="tensor"
    rules : sequence of (type, substrings), default=DEFAULT_RULES
    strict : bool, default=False
        Raise when a parameter name matches no rule.
    reference : {"geomean", "none"}, default="geomean"
    scaling : bool, default=True
        False makes the optimizer plain AdamW (or GaLore-AdamW) with diagnostics still recorded.
    scale_weight_decay : bool, default=False
    maximize : bool, default=False
    foreach : bool, default=True
        Multi-tensor kernels over every dense tensor at once (as torch's AdamW `foreach=True`); False
        loops over tensors. Same numbers either way.

    Attributes
    ----------
    history : list of dict
        One entry per SNR refresh: {"step", "snr": {module: float}, "scale": {module: float}}.
        Saved and restored by `state_dict()`/`load_state_dict()`.

    References
    ----------
    Wen et al. 2026, arXiv 2605.05794. Balles & Hennig 2018, "Dissecting Adam", arXiv 1705.07774.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    >>> opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=1, warmup_steps=0)
    >>> net(torch.randn(16, 4)).square().mean().backward(); opt.step()
    >>> sorted(opt.scales())
    ['0.bias', '0.weight', '1.bias', '1.weight']
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, *, alpha: float = 0.5, interval: int = 10,
                 snr_beta: float = 0.9, scale_min: float = 0.1, scale_max: float = 10.0,
                 warmup_steps: int = 100, granularity: str = "tensor",
                 rules: Sequence[tuple[str, Sequence[str]]] | None = None, strict: bool = False,
                 reference: str = "geomean", scaling: bool = True, scale_weight_decay: bool = False,
                 maximize: bool = False, foreach: bool = True):
        if granularity not in GRANULARITIES:
            raise ValueError(f"Invalid granularity: {granularity!r}; expected one of {', '.join(GRANULARITIES)}")
        _check_hyper(dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, alpha=alpha, interval=interval,
                          snr_beta=snr_beta, scale_min=scale_min, scale_max=scale_max, warmup_steps=warmup_steps,
                          reference=reference))
        self.rules = tuple((k, tuple(p)) for k, p in (rules if rules is not None else DEFAULT_RULES))
        self.granularity, self.strict = granularity, strict
        groups = self._module_groups(params)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, alpha=alpha,
                        interval=interval, snr_beta=snr_beta, scale_min=scale_min, scale_max=scale_max,
                        warmup_steps=warmup_steps, reference=reference, scaling=scaling,
                        scale_weight_decay=scale_weight_decay, maximize=maximize)
        self.foreach = bool(foreach)
        self._ready = False
        super().__init__(groups, defaults)
        self._ready = True
        for g in self.param_groups:
            self._prepare_group(g)
        self.history: list[dict[str, Any]] = []

    def _prepare_group(self, g: dict) -> None:
        """Check one param group (defaults filled in) before any step; fill GaLore's keys."""
        _check_hyper(g, where=f" (param group {g.get('module', '?')!r})")
        first = self.param_groups[0]
        for k in JOINT_KEYS:  # the module scales are normalised jointly over every group: one value for all
            if g[k] != first[k]:
                raise ValueError(f"Invalid param group {g.get('module', '?')!r}: per-group {k}={g[k]!r} differs "
                                 f"from {first[k]!r}; {', '.join(JOINT_KEYS)} are shared by all modules, set them "
                                 "on the optimizer")
        if "rank" in g:
            g.setdefault("update_proj_gap", 200)
            g.setdefault("scale", 1.0)
            g.setdefault("proj_type", "std")

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (one module: tag it with "module", else it is named by position), checked like the rest."""
        if not self._ready:  # called by Optimizer.__init__ on the module groups built above
            super().add_param_group(param_group)
            return
        g = dict(param_group)
        params = [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])
        names = [n for n, _ in params] if params and isinstance(params[0], tuple) else None
        g["params"] = [p for _, p in params] if names else params
        g.setdefault("module", f"group{len(self.param_groups)}")
        g.setdefault("param_names", names or [f"{g['module']}.{i}" for i in range(len(g["params"]))])
        g.update(snr=None, module_scale=1.0, mols_step=0)
        super().add_param_group(g)
        self._prepare_group(self.param_groups[-1])

    # ---- module partition -------------------------------------------------------------------------
    def _module_groups(self, params: Iterable) -> list[dict]:
        """Split the input into one param group per module, keeping user group hyperparameters."""
        items = list(params)
        if not items:
            raise ValueError("Invalid params: empty parameter list")
        user_groups = items if isinstance(items[0], dict) else [{"params": items}]
        out: "OrderedDict[tuple[int, str], dict]" = OrderedDict()
        seen_names: dict[str, int] = {}
        for gi, ug in enumerate(user_groups):
            if not isinstance(ug, dict) or "params" not in ug:
                raise ValueError("Invalid params: mix of dicts and tensors; pass all groups as dicts with 'params'")
            hyper = {k: v for k, v in ug.items() if k not in ("params", "module")}
            plist = ug["params"]
            plist = [plist] if isinstance(plist, Tensor) else list(plist)
            for pi, item in enumerate(plist):
                name, p = item if isinstance(item, tuple) else (None, item)
                if not isinstance(p, Tensor):
                    raise ValueError(f"Invalid params: expected tensors or (name, tensor) pairs, got {type(p).__name__}")
                if "module" in ug:
                    key = str(ug["module"])
                elif name is None:
                    if self.strict:
                        raise ValueError("Invalid params: strict=True needs names to match rules against; pass "
                                         "model.named_parameters() or groups tagged with 'module'")
                    key = f"group{gi}.param{pi}"
                else:
                    key = module_key(name, self.granularity, self.rules, self.strict)
                key_gi = (gi, key)
                if key_gi not in out:
                    other = seen_names.setdefault(key, gi)
                    label = key if other == gi else f"{key}#g{gi}"
                    out[key_gi] = {**hyper, "params": [], "param_names": [], "module": label,
                                   "snr": None, "module_scale": 1.0, "mols_step": 0}
                out[key_gi]["params"].append(p)
                out[key_gi]["param_names"].append(name if name is not None else f"{key}.{pi}")
        return list(out.values())

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("history", [])
        self.__dict__.setdefault("foreach", True)
        for g in self.param_groups:  # pickles from before a key existed
            g.setdefault("snr", None)
            g.setdefault("module_scale", 1.0)
            g.setdefault("mols_step", 0)

    # ---- checkpoint ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's optimizer state dict plus the refresh history under "mols_history".

        Module SNRs, scales and step counts already travel in "param_groups"; the history is copied so
        later refreshes do not change a saved dict.
        """
        sd = super().state_dict()
        sd["mols_history"] = [{k: dict(v) if isinstance(v, dict) else v for k, v in h.items()}
                              for h in self.history]
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a dict from `state_dict`; one without "mols_history" (older checkpoints) leaves `history` as is."""
        state_dict = dict(state_dict)  # the caller's dict is not modified
        hist = state_dict.pop("mols_history", None)
        super().load_state_dict(state_dict)
        if hist is not None:
            self.history = [{k: dict(v) if isinstance(v, dict) else v for k, v in h.items()} for h in hist]

    # ---- diagnostics --------------------------------------------------------------------------------
    def scales(self) -> dict[str, float]:
        """Current scale s_j per module name."""
        return {g["module"]: float(g["module_scale"]) for g in self.param_groups}

    def snrs(self) -> dict[str, float | None]:
        """Current smoothed SNR per module name (None before the first estimate)."""
        return {g["module"]: g["snr"] for g in self.param_groups}

    def module_sizes(self) -> dict[str, int]:
        """Number of parameters per module."""
        return {g["module"]: sum(p.numel() for p in g["params"]) for g in self.param_groups}

    # ---- the step -----------------------------------------------------------------------------------
    def _init_state(self, group: dict, p: Tensor) -> dict:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            shape_like = p
            if "rank" in group and p.dim() == 2:
                from galore_torch.galore_projector import GaLoreProjector

                state["projector"] = GaLoreProjector(group["rank"], update_proj_gap=group["update_proj_gap"],
                                                     scale=group["scale"], proj_type=group["proj_type"])
                shape_like = None
            if shape_like is not None:
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        """One optimizer step; refresh module SNRs and scales every `interval` steps.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # sparse gradients are refused before anything changes
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    raise RuntimeError(f"MoLS does not support sparse gradients (module {group['module']!r}); "
                                       "use torch.optim.SparseAdam for sparse embeddings")
        active = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            group["mols_step"] += 1
            dense = [p for p in params if "projector" not in self._init_state(group, p)]
            low = [p for p in params if "projector" in self.state[p]]
            active.append((group, dense, low))
        self._moments([(g, d) for g, d, _ in active])
        for group, _, low in active:
            beta1, beta2 = group["betas"]
            for p in low:  # GaLore: project the gradient, keep the moments in low-rank space
                s = self.state[p]
                g = -p.grad if group["maximize"] else p.grad
                low_g = s["projector"].project(g, int(s["step"].item()))
                if "exp_avg" not in s:
                    s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(low_g), torch.zeros_like(low_g)
                s["step"] += 1
                s["exp_avg"].mul_(beta1).add_(low_g, alpha=1 - beta1)
                s["exp_avg_sq"].mul_(beta2).addcmul_(low_g, low_g, value=1 - beta2)
        self._refresh_scales([g for g, _, _ in active])
        self._updates([(g, d) for g, d, _ in active])
        for group, _, low in active:
            beta1, beta2 = group["betas"]
            scale = group["module_scale"] if group["scaling"] else 1.0
            for p in low:  # GaLoreAdamW's update rule (eps outside the bias correction, decay after)
                s = self.state[p]
                step = s["step"].item()
                step_size = group["lr"] * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
                norm_grad = s["projector"].project_back(s["exp_avg"] / s["exp_avg_sq"].sqrt().add(group["eps"]))
                p.add_(norm_grad, alpha=-step_size * scale)
                if group["weight_decay"] > 0.0:
                    lr_wd = group["lr"] * (scale if group["scale_weight_decay"] else 1.0)
                    p.add_(p, alpha=-lr_wd * group["weight_decay"])
        return loss

    @staticmethod
    def _buckets(items: list[tuple[dict, list[Tensor]]]) -> dict[tuple, list[tuple[dict, list[Tensor]]]]:
        """(group, dense tensors) pairs bucketed by the hyperparameters the foreach kernels take as scalars."""
        out: dict[tuple, list] = {}
        for group, dense in items:
            if dense:
                out.setdefault((*group["betas"], group["maximize"]), []).append((group, dense))
        return out

    def _moments(self, items: list[tuple[dict, list[Tensor]]]) -> None:
        """Weight decay and the moment EMAs of every dense tensor (one multi-tensor sweep per bucket)."""
        for (beta1, beta2, maximize), pairs in self._buckets(items).items():
            ps, decay = [], []
            for group, dense in pairs:
                wd_lr = group["lr"] * (group["module_scale"] if group["scale_weight_decay"] else 1.0)
                if not self.foreach:
                    st = [self.state[p] for p in dense]
                    _single_tensor_moments(dense, [p.grad for p in dense], [s["exp_avg"] for s in st],
                                           [s["exp_avg_sq"] for s in st], [s["step"] for s in st], lr=wd_lr,
                                           beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                                           maximize=maximize)
                    continue
                ps += dense
                decay += [1 - wd_lr * group["weight_decay"]] * len(dense)
            if ps:
                st = [self.state[p] for p in ps]
                _foreach_moments(ps, [p.grad for p in ps], [s["exp_avg"] for s in st],
                                 [s["exp_avg_sq"] for s in st], [s["step"] for s in st], decay=decay,
                                 beta1=beta1, beta2=beta2, maximize=maximize)

    def _updates(self, items: list[tuple[dict, list[Tensor]]]) -> None:
        """The scaled Adam update of every dense tensor (one multi-tensor sweep per bucket)."""
        for (beta1, beta2, _), pairs in self._buckets(items).items():
            ps, lr_scale, eps = [], [], []
            for group, dense in pairs:
                scale = group["module_scale"] if group["scaling"] else 1.0
                if not self.foreach:
                    st = [self.state[p] for p in dense]
                    _single_tensor_mols(dense, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st],
                                        [s["step"] for s in st], lr=group["lr"], scale=scale, beta1=beta1,
                                        beta2=beta2, eps=group["eps"])
                    continue
                ps += dense
                lr_scale += [group["lr"] * scale] * len(dense)
                eps += [group["eps"]] * len(dense)
            if ps:
                st = [self.state[p] for p in ps]
                _foreach_mols(ps, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st],
                              [s["step"] for s in st], lr_scale=lr_scale, beta1=beta1, beta2=beta2, eps=eps)

    def _refresh_scales(self, groups: list[dict]) -> None:
        """Every `interval` steps: module SNRs from the moments, their EMA, then the normalised scales."""
        due = [g for g in groups if g["mols_step"] % g["interval"] == 0]
        if not due:
            return
        ready = []
        for g in due:
            if g["mols_step"] < 2:  # at step 1, v_hat = m_hat^2 exactly: no noise information yet
                continue
            moms = [self.state[p] for p in g["params"] if "exp_avg" in self.state[p]]
            if moms:
                ready.append((g, moms))
        stats = _modules_stats([([m["exp_avg"] for m in moms], [m["exp_avg_sq"] for m in moms], g["mols_step"],
                                 *g["betas"]) for g, moms in ready])
        for (g, _), (s, n) in zip(ready, stats):
            snr = module_snr(s, n, g["betas"][0])
            g["snr"] = snr if g["snr"] is None else g["snr_beta"] * g["snr"] + (1 - g["snr_beta"]) * snr
        # normalise over every module with an estimate (not only the due ones) so scales stay comparable
        est = [g for g in self.param_groups if g["snr"] is not None]
        if not est:
            return
        ref = est[0]
        new = module_scales([g["snr"] for g in est], [sum(p.numel() for p in g["params"]) for g in est],
                            alpha=ref["alpha"], scale_min=ref["scale_min"], scale_max=ref["scale_max"],
                            reference=ref["reference"])
        for g, s in zip(est, new):
            g["module_scale"] = s if g["mols_step"] >= g["warmup_steps"] else 1.0
        self.history.append({"step": max(g["mols_step"] for g in due),
                             "snr": {g["module"]: g["snr"] for g in est},
                             "scale": {g["module"]: g["module_scale"] for g in est}})


# ---- ground truth for the diagnostics ----------------------------------------------------------------
def half_batch_snr(model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], Tensor],
                   batch_pairs: Iterable[tuple[Any, Any]], modules: dict[str, list[str]]) -> dict[str, float]:
    """Ground-truth module SNR from pairs of half-batch gradients (McCandlish et al. 2018).

    For half-batch gradients g_a, g_b of a module: ||G||^2 ~ <g_a, g_b> and tr(Sigma)/B ~ ||g_a - g_b||^2 / 4;
    both are summed over the pairs and the SNR is their ratio (clamped at 0).

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable (model, batch) -> scalar loss tensor
    batch_pairs : iterable of (batch_a, batch_b)
    modules : dict module name -> list of parameter names (e.g. from `MoLS.param_groups`)

    Returns
    -------
    dict module name -> SNR (float)
    """
    named = dict(model.named_parameters())
    sig = {k: 0.0 for k in modules}
    noise = {k: 0.0 for k in modules}
    for a, b in batch_pairs:
        grads = []
        for batch in (a, b):
            model.zero_grad(set_to_none=True)
            loss_fn(model, batch).backward()
            grads.append({n: p.grad.detach().clone() for n, p in named.items() if p.grad is not None})
        for k, names in modules.items():
            for n in names:
                if n in grads[0] and n in grads[1]:
                    ga, gb = grads[0][n].double(), grads[1][n].double()
                    sig[k] += float((ga * gb).sum())
                    noise[k] += float((ga - gb).square().sum()) / 4
    model.zero_grad(set_to_none=True)
    return {k: max(sig[k], 0.0) / (noise[k] + 1e-30) for k in modules}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of two equal-length sequences (average ranks for ties)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"Invalid inputs: need two sequences of equal length >= 2, got {len(x)} and {len(y)}")

    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(list(x)), ranks(list(y))
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx > 0 and sy > 0 else float("nan")


def plot_history(history: list[dict], path, *, key: str = "scale", title: str = ""):
    """Plot per-module `key` ("scale" or "snr") against step from `MoLS.history`; returns the path."""
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    mods = sorted({m for h in history for m in h[key]})
    for m in mods:
        pts = [(h["step"], h[key][m]) for h in history if h[key].get(m) is not None]
        if pts:
            ax.plot(*zip(*pts), label=m, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if key == "snr":
        ax.set_yscale("log")
    ax.set_title(title or f"MoLS module {key}")
    if len(mods) <= 12:
        ax.legend(fontsize=6)
    return save(fig, path)
