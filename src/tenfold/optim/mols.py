"""MoLS: Adam(W) with module-type learning-rate multipliers calibrated once from gradient signal-to-noise ratios.

Paper: Wen, Liu, Wang, Luo, Shen, Li, Sun, *Revealing Modular Gradient Noise Imbalance in LLMs: Calibrating Adam
via Signal-to-Noise Ratio*, arXiv 2605.05794 (2026). No official code was found and the method section could not
be read (../shared/research/fidelity/mols-adalezo.md section 1; /work/notes/mols_research.md); every element below
names its source in the class docstring, and the free choices are named arguments.

What the sources support: Adam's update m̂/(√v̂+ε) shrinks in high-noise modules ("noise damping", abstract);
module *types* Embedding, QK, VO, MLP, Head (digest of the full text); their gradient SNR is estimated from
minibatch gradients once, in the warm-up phase, and fixed multipliers then raise the steps of the noisy types
(Embedding, Head) to undo the damping (digests); under 2% overhead; works with GaLore-type optimisers (abstract).

Implemented: `MoLS`, a `torch.optim.AdamW` subclass. During the first `calibration_steps` steps it is AdamW and
accumulates, per module type, the sum and squared norm of the minibatch gradients; it then fixes one multiplier
per type and from then on runs torch's own Adam kernel (foreach or fused) once per (param group, multiplier)
with lr x multiplier. The user's param groups stay as given, so schedulers and `param_groups` behave as AdamW's.
A param group with a "rank" key (plus "update_proj_gap", "scale", "proj_type", as `galore_torch.GaLoreAdamW`'s
groups) runs GaLoreAdamW's update for its tensors, with the same multipliers (the calibration sees the full
gradients). Not implemented: AMSGrad (refused), sparse gradients (refused).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor

from tenfold.common.errors import UserError

TYPES = ("embed", "qk", "vo", "mlp", "head")  # the paper's module types (digest of the full text)
OTHER = "other"                                # norms and anything no rule matches: multiplier 1, not calibrated
# (type, case-insensitive name substrings); first match wins. Norms come first (a norm inside an attention block
# is not QK), the attention output before the MLP's "output.dense" (BERT), "attn.c_proj" before "mlp" (GPT-2).
TYPE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (OTHER, ("norm", "ln_", ".ln.", "layernorm")),
    ("head", ("lm_head", "cls.predictions", "output_layer", "embed_out")),
    ("embed", ("embed", "wte", "wpe", "word_embeddings", "position_embeddings", "token_type_embeddings")),
    ("qk", ("qkv", "c_attn", "query_key_value")),  # fused Q/K/V tensors count as QK (GPT-2, Phi-3, GPT-NeoX)
    ("vo", ("v_proj", "o_proj", "out_proj", "attention.self.value", "attention.output.dense", "attn.c_proj",
            ".wv.", ".wo.", "self_attn.dense")),
    ("qk", ("q_proj", "k_proj", "attention.self.query", "attention.self.key", ".wq.", ".wk.")),
    ("mlp", ("mlp", "gate_proj", "up_proj", "down_proj", "fc1", "fc2", "c_fc", "intermediate.dense",
             "output.dense", "feed_forward", "ffn")),
)
REFERENCES = ("least_noisy", "mlp", "geomean")


def module_type(name: str, rules: Sequence[tuple[str, Sequence[str]]] = TYPE_RULES) -> str:
    """The module type of a parameter name (case-insensitive substring rules, first match wins; else "other").

    Examples
    --------
    >>> [module_type(n) for n in ("model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.weight",
    ...                           "transformer.h.0.attn.c_proj.weight", "transformer.h.0.mlp.c_proj.weight",
    ...                           "bert.encoder.layer.0.attention.output.LayerNorm.weight", "lm_head.weight")]
    ['embed', 'qk', 'vo', 'mlp', 'other', 'head']
    """
    low = name.lower()
    for kind, patterns in rules:
        if any(p.lower() in low for p in patterns):
            return kind
    return OTHER


def calibration_snr(sum_sq_mean: float, mean_sq_norm: float, k: int) -> tuple[float, float, float]:
    """(SNR, signal, noise) of one module type from K minibatch gradients g_1..g_K.

    With m = (1/K) Σ g_k: `sum_sq_mean` = ‖m‖² and `mean_sq_norm` = (1/K) Σ ‖g_k‖² (summed over the type's
    tensors). noise = K/(K-1)·(mean_sq_norm − ‖m‖²) estimates E‖g − E g‖² (the trace of the minibatch
    gradient covariance); signal = max(‖m‖² − noise/K, 0) removes the noise left in the mean, estimating ‖E g‖²;
    SNR = signal / noise. (Our estimator: the sources say only "module SNR from finite batches".)
    """
    if k < 2:
        raise UserError(f"Invalid calibration_steps: {k}; the noise estimate needs at least 2 gradients")
    noise = max(k / (k - 1) * (mean_sq_norm - sum_sq_mean), 0.0)
    signal = max(sum_sq_mean - noise / k, 0.0)
    return (signal / noise if noise > 0 else math.inf), signal, noise


def snr_multipliers(snrs: dict[str, float], sizes: dict[str, int], *, power: float = 0.5,
                    reference: str = "least_noisy", max_multiplier: float = 10.0) -> dict[str, float]:
    """Multipliers that undo Adam's noise damping: ((1 + SNR) / SNR)^power, normalised and clipped.

    Adam's per-coordinate step has magnitude about √(SNR / (1 + SNR)) (|E g| / √(E g²)), so a module with a low
    SNR steps less; power 0.5 inverts that factor (our reading of "calibrating Adam via SNR"). `reference`:
    "least_noisy" divides by the smallest raw multiplier, so the highest-SNR type keeps the base LR and noisier
    types are raised (the digests: MoLS raises Embedding/Head); "mlp" keeps MLP at 1; "geomean" normalises to the
    parameter-weighted geometric mean. Results are clipped to [1/max_multiplier, max_multiplier].
    """
    snrs = {k: s for k, s in snrs.items() if not math.isnan(s)}  # no estimate: the type keeps multiplier 1
    if not snrs:
        return {}
    # noiseless (SNR inf): no damping to undo, raw 1; no signal (SNR 0): infinitely damped, clipped below
    raw = {k: 1.0 if math.isinf(s) else ((1 + s) / s) ** power if s > 0 else math.inf for k, s in snrs.items()}
    if reference == "least_noisy":
        ref = min(raw.values())
    elif reference == "mlp":
        if "mlp" not in raw:
            raise UserError("Invalid reference: 'mlp' needs MLP parameters; use 'least_noisy' or 'geomean'")
        ref = raw["mlp"]
    elif reference == "geomean":
        finite = {k: v for k, v in raw.items() if math.isfinite(v)}
        total = sum(sizes[k] for k in finite) or 1
        ref = math.exp(sum(sizes[k] * math.log(v) for k, v in finite.items()) / total) if finite else 1.0
    else:
        raise UserError(f"Invalid reference: {reference!r}; expected one of {', '.join(REFERENCES)}")
    if math.isinf(ref):  # every type without signal: all equally damped, nothing to rebalance
        return {k: 1.0 for k in raw}
    if not ref > 0:
        ref = 1.0
    return {k: min(max(v / ref, 1 / max_multiplier), max_multiplier) for k, v in raw.items()}


class MoLS(torch.optim.AdamW):
    r"""AdamW with fixed module-type LR multipliers calibrated from minibatch gradient SNRs in the warm-up.

    Steps 1..K (K = `calibration_steps`) are plain AdamW; meanwhile, per module type j (name rules: Embedding,
    QK, VO, MLP, Head; norms and unmatched tensors are "other" and keep 1), the optimizer accumulates
    Σ_k g_k and Σ_k ‖g_k‖² of each tensor's minibatch gradient. After step K it sets

    .. math::
        \mathrm{SNR}_j = \frac{\max(\|\bar g_j\|^2 - \hat\sigma_j^2/K,\ 0)}{\hat\sigma_j^2},\qquad
        c_j = \mathrm{clip}\Big(\big(\tfrac{1+\mathrm{SNR}_j}{\mathrm{SNR}_j}\big)^{p} / \mathrm{ref},\ 1/c_{max},\ c_{max}\Big)

    (σ̂²_j: the unbiased trace of the gradient covariance, `calibration_snr`), frees the sums, and from step K+1
    on every tensor of type j is stepped by torch's Adam kernel with lr·c_j (decoupled weight decay follows the
    scaled lr, as an AdamW group with that lr would). Multipliers never touch `group["lr"]`, so schedulers and
    user groups work as with AdamW. With data parallelism the gradients are already averaged across ranks when
    `step` runs, so every rank computes the same multipliers.

    Parameters
    ----------
    params : iterable
        `model.named_parameters()`, or param groups whose "params" are (name, tensor) pairs (torch's named
        parameters). Names are required: the module types come from them (UserError otherwise).
    lr, betas, eps, weight_decay : as `torch.optim.AdamW` (defaults 1e-3, (0.9, 0.999), 1e-8, 1e-2)
    calibration_steps : int, default=100
        K, the warm-up window whose minibatch gradients give the SNRs (sources: "once, in the warm-up"; the window
        length is not published: our guess, meant to sit inside the LR warm-up).
    power : float, default=0.5
        Exponent p of (1+SNR)/SNR (our reading of undoing Adam's √(SNR/(1+SNR)) damping; not published).
    reference : {"least_noisy", "mlp", "geomean"}, default="least_noisy"
        Normalisation of the multipliers (sources: noisy types are *raised*; which type keeps the base LR is not
        published).
    max_multiplier : float, default=10.0
        Clip c_j to [1/max, max] (ours; the sources mention no clipping).
    types : sequence of str, default=TYPES
        The calibrated module types; tensors of other types keep multiplier 1.
    rules : sequence of (type, substrings), default=TYPE_RULES
        Name rules, case-insensitive, first match wins.
    foreach, fused : bool, optional
        Passed to torch's Adam kernel (as `torch.optim.AdamW`).

    Attributes
    ----------
    multipliers : dict of str to float
        c_j per calibrated type present in the model, and "other": 1.0, after calibration ({} before).
    snrs : dict of str to float
        SNR_j per type after calibration.
    calibration_time_s : float
        Seconds spent in the calibration bookkeeping (the cost over AdamW, reported separately).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.ModuleDict({"embed": torch.nn.Embedding(50, 8), "mlp": torch.nn.Linear(8, 50)})
    >>> opt = MoLS(net.named_parameters(), lr=1e-2, calibration_steps=3)
    >>> for _ in range(4):
    ...     ids = torch.randint(0, 50, (16,))
    ...     opt.zero_grad()
    ...     torch.nn.functional.cross_entropy(net["mlp"](net["embed"](ids)), ids).backward()
    ...     opt.step()
    >>> sorted(opt.multipliers), opt.multipliers["embed"] >= 1.0
    (['embed', 'mlp', 'other'], True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, *, calibration_steps: int = 100, power: float = 0.5,
                 reference: str = "least_noisy", max_multiplier: float = 10.0, types: Sequence[str] = TYPES,
                 rules: Sequence[tuple[str, Sequence[str]]] = TYPE_RULES, foreach: bool | None = None,
                 fused: bool | None = None, maximize: bool = False):
        if isinstance(calibration_steps, bool) or not isinstance(calibration_steps, int) or calibration_steps < 2:
            raise UserError(f"Invalid calibration_steps: {calibration_steps!r}; expected an int >= 2")
        if not (isinstance(power, (int, float)) and math.isfinite(power) and power >= 0):
            raise UserError(f"Invalid power: {power!r}; expected a finite float >= 0")
        if reference not in REFERENCES:
            raise UserError(f"Invalid reference: {reference!r}; expected one of {', '.join(REFERENCES)}")
        if not (isinstance(max_multiplier, (int, float)) and max_multiplier >= 1):
            raise UserError(f"Invalid max_multiplier: {max_multiplier!r}; expected a float >= 1")
        unknown = [t for t in types if t not in TYPES]
        if unknown or not types:
            raise UserError(f"Invalid types: {list(types)!r}; expected a non-empty subset of {TYPES}")
        self._rules = tuple((k, tuple(p)) for k, p in rules)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=False,
                         maximize=maximize, foreach=foreach, fused=fused)
        for gi, g in enumerate(self.param_groups):
            if "rank" in g:  # a GaLore group: GaLoreAdamW's own defaults for the projector keys
                g.setdefault("update_proj_gap", 200)
                g.setdefault("scale", 0.25)
                g.setdefault("proj_type", "std")
            names = g.get("param_names")
            if names is None or len(names) != len(g["params"]):
                raise UserError(f"Invalid params: param group {gi} has no parameter names; MoLS assigns module types "
                                "by name: pass model.named_parameters(), or groups of (name, tensor) pairs")
            if g.get("amsgrad"):
                raise UserError("Invalid amsgrad: True is not supported by MoLS")
        self.calibration_steps, self.power, self.reference = calibration_steps, power, reference
        self.max_multiplier, self.types = float(max_multiplier), tuple(types)
        self.multipliers: dict[str, float] = {}
        self.snrs: dict[str, float] = {}
        self.calibration_time_s = 0.0
        self._count = 0  # calibration steps accumulated (a step the grad scaler skips does not count)
        self._types: dict[int, str] = {}  # id(param) -> type (rebuilt from names, never saved)
        self._sums: dict[int, Tensor] = {}  # id(param) -> Σ_k g_k in float32, while calibrating
        self._sqnorm: dict[str, float] = {}  # type -> Σ_k ‖g_k‖² (float64), while calibrating
        for g in self.param_groups:
            self._index_group(g)
        if all(kind == OTHER for kind in self._types.values()):
            sample = [n for g in self.param_groups for n in g["param_names"]][:3]
            raise UserError(f"Invalid params: no parameter name matches a module-type rule for {list(self.types)} "
                            f"(e.g. {sample}); pass rules=[(type, (substring, ...)), ...] for this model's names")

    def _index_group(self, g: dict) -> None:
        for name, p in zip(g["param_names"], g["params"]):
            kind = module_type(name, self._rules)
            self._types[id(p)] = kind if kind in self.types else OTHER

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of (name, tensor) pairs (the names give the module types)."""
        if hasattr(self, "_types") and isinstance(param_group, dict):  # after __init__: checked before torch
            params = param_group.get("params", [])
            params = [params] if isinstance(params, Tensor) else list(params)
            param_group = {**param_group, "params": params}  # a generator is read once, here
            if not params or not all(isinstance(x, tuple) and len(x) == 2 for x in params):
                raise UserError("Invalid param_group: MoLS needs parameter names; pass 'params' as (name, tensor) "
                                "pairs, e.g. list(module.named_parameters())")
        super().add_param_group(param_group)
        if hasattr(self, "_types"):
            self._index_group(self.param_groups[-1])
            self._bucket_cache = {}

    @property
    def calibrating(self) -> bool:
        return not self.multipliers

    def type_of(self, p: Tensor) -> str:
        """The module type MoLS assigned to a parameter."""
        return self._types[id(p)]

    # ---- calibration ------------------------------------------------------------------------------------
    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def _accumulate(self) -> None:
        """Add this step's minibatch gradient to each tensor's running sum and its type's squared-norm sum (a
        tensor without a gradient in a step counts as a zero gradient). With a fused kernel under a grad scaler
        the gradients are still scaled: a step with inf/NaN is skipped (the kernel skips it too), others are
        unscaled."""
        found_inf, grad_scale = getattr(self, "found_inf", None), getattr(self, "grad_scale", None)
        if found_inf is not None and float(found_inf) > 0:
            return
        unscale = 1.0 / float(grad_scale) if grad_scale is not None else 1.0
        self._count += 1
        for p in self._params():
            kind = self._types[id(p)]
            if p.grad is None or kind == OTHER:
                continue
            grad = p.grad.float() * unscale if unscale != 1.0 else p.grad.float()
            if id(p) not in self._sums:
                self._sums[id(p)] = torch.zeros_like(grad)
            self._sums[id(p)].add_(grad)
            self._sqnorm[kind] = self._sqnorm.get(kind, 0.0) + float(torch.linalg.vector_norm(grad)) ** 2

    def _finish_calibration(self) -> None:
        """Per-type SNRs from the sums (K = the calibration steps), the multipliers, and the sums freed."""
        k = self._count
        mean_sq: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for p in self._params():
            if id(p) in self._sums:
                kind = self._types[id(p)]
                mean_sq[kind] = mean_sq.get(kind, 0.0) + float(self._sums[id(p)].double().square().sum()) / (k * k)
                sizes[kind] = sizes.get(kind, 0) + p.numel()
        self.snrs = {kind: calibration_snr(mean_sq[kind], self._sqnorm[kind] / k, k)[0] for kind in mean_sq}
        self._sums, self._sqnorm = {}, {}
        mult = snr_multipliers(self.snrs, sizes, power=self.power, reference=self.reference,
                               max_multiplier=self.max_multiplier)
        self.multipliers = {**mult, OTHER: 1.0}  # types with no tensors are absent
        self._bucket_cache = {}

    # ---- the step ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        """One AdamW step; during calibration also accumulate gradient statistics, afterwards lr x multiplier.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.
        """
        from torch.optim.adam import adam

        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        calibrating = self.calibrating
        if calibrating:
            for g in self.param_groups:  # before the sums see them (afterwards torch's _init_group refuses them)
                for p in g["params"]:
                    if p.grad is not None and p.grad.is_sparse:
                        raise RuntimeError("MoLS does not support sparse gradients; use torch.optim.SparseAdam")
            t0 = time.perf_counter()
            self._accumulate()
            self.calibration_time_s += time.perf_counter() - t0
        for gi, group in enumerate(self.param_groups):
            if "rank" in group:
                self._galore_step(group, calibrating)
                continue
            params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps = [], [], [], [], [], []
            has_complex = self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps)
            if not params:
                continue
            if calibrating:
                buckets = {1.0: None}
            elif len(params) == len(group["params"]):  # every tensor has a gradient: the positions are fixed
                buckets = self._buckets(gi, group["params"])
            else:
                buckets = self._buckets(None, params)
            beta1, beta2 = group["betas"]
            for mult, idx in buckets.items():
                pick = (lambda xs: xs) if idx is None else (lambda xs: [xs[i] for i in idx])
                adam(pick(params), pick(grads), pick(exp_avgs), pick(exp_avg_sqs), [], pick(steps),
                     amsgrad=False, has_complex=has_complex, beta1=beta1, beta2=beta2, lr=group["lr"] * mult,
                     weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                     foreach=group["foreach"], capturable=group["capturable"], differentiable=group["differentiable"],
                     fused=group["fused"], grad_scale=getattr(self, "grad_scale", None),
                     found_inf=getattr(self, "found_inf", None), decoupled_weight_decay=True)
        if calibrating and self._count >= self.calibration_steps:
            t0 = time.perf_counter()
            self._finish_calibration()
            self.calibration_time_s += time.perf_counter() - t0
        return loss

    def _buckets(self, gi: int | None, params: list[Tensor]) -> dict[float, list[int] | None]:
        """{multiplier: positions in `params`} (None: all of them); cached per group when every tensor steps."""
        cache = self.__dict__.setdefault("_bucket_cache", {})
        if gi is not None and gi in cache and len(cache[gi][0]) == len(params):
            return cache[gi][1]
        out: dict[float, list[int]] = {}
        for i, p in enumerate(params):
            out.setdefault(self.multipliers.get(self._types[id(p)], 1.0), []).append(i)
        buckets = {m: (None if len(idx) == len(params) else idx) for m, idx in out.items()}
        if gi is not None:
            cache[gi] = (params, buckets)
        return buckets

    def _galore_step(self, group: dict, calibrating: bool) -> None:
        """GaLoreAdamW's update (galore_torch 1.0: moments of the projected gradient, eps outside the bias
        correction, decay after the step) with lr x the tensor's type multiplier."""
        from galore_torch.galore_projector import GaLoreProjector

        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            mult = 1.0 if calibrating else self.multipliers.get(self._types[id(p)], 1.0)
            state = self.state[p]
            state.setdefault("galore_step", 0)  # not "step": torch's Adam.__setstate__ rewrites that key
            if "projector" not in state:
                state["projector"] = GaLoreProjector(group["rank"], update_proj_gap=group["update_proj_gap"],
                                                     scale=group["scale"], proj_type=group["proj_type"])
            grad = state["projector"].project(-p.grad if group["maximize"] else p.grad, state["galore_step"])
            if "exp_avg" not in state:
                state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(grad), torch.zeros_like(grad)
            state["galore_step"] += 1
            t = state["galore_step"]
            if "step" not in state:  # torch's Adam.__setstate__ (load_state_dict) needs a "step" in every state
                state["step"] = torch.zeros((), dtype=torch.float32)
            state["step"].fill_(t)
            state["exp_avg"].mul_(beta1).add_(grad, alpha=1.0 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
            denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
            lr = group["lr"] * mult
            step_size = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
            p.add_(state["projector"].project_back(state["exp_avg"] / denom), alpha=-step_size)
            if group["weight_decay"] > 0.0:
                p.add_(p, alpha=-lr * group["weight_decay"])

    # ---- checkpoint ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """AdamW's state dict plus "mols": calibration count, multipliers, SNRs and, while calibrating, the running sums
        (by position in the param groups, as torch keys its per-parameter state)."""
        sd = super().state_dict()
        index = {id(p): i for i, p in enumerate(self._params())}
        sd["mols"] = {"count": self._count, "multipliers": dict(self.multipliers),
                      "snrs": dict(self.snrs),
                      "calibration_time_s": self.calibration_time_s, "sqnorm": dict(self._sqnorm),
                      "sums": {index[i]: t.clone() for i, t in self._sums.items()}}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        mols = state_dict.pop("mols", None)
        super().load_state_dict(state_dict)
        if mols is not None:
            params = self._params()
            self._count = int(mols["count"])
            self.multipliers, self.snrs = dict(mols["multipliers"]), dict(mols["snrs"])
            self.calibration_time_s = float(mols["calibration_time_s"])
            self._sqnorm = dict(mols["sqnorm"])
            self._bucket_cache = {}
            self._sums = {id(params[int(i)]): t.to(params[int(i)].device, copy=True) for i, t in mols["sums"].items()}


__all__ = ["MoLS", "TYPES", "TYPE_RULES", "module_type", "calibration_snr", "snr_multipliers"]
