"""LightMoE: MoE compression by expert replacing, with pruning and merging baselines, on HF MoE models.

Paper: Hao, Hao, Guo, Shen, Luo, Hu, Zeng, *LightMoE: Reducing Mixture-of-Experts Redundancy through
Expert Replacing*, arXiv 2603.12645 (2026). No official code was found; the defaults follow a detailed
third-party summary of the full text (LightMoE part of ../shared/research/fidelity/elas-lightmoe.md, §6), and
each choice is a field of `LightMoEConfig` whose help names its source ([paper-summary §x] or [ours]).

Implemented: `compress(model, ratio, method=...)` for `lightmoe`: per-layer threshold selection on the
layer-normalised gate importance, the threshold scaled by the layer's router-output norm and clamped to 0.8-1.2x;
the replaced experts grouped in threes around the most important ones by router-output cosine similarity, each
group's shared base the importance-weighted mean and each member base + a rank-16 delta initialised by truncated
SVD [ours]; annealed recovery with the original expert's weight going linearly 1 -> 0 over the first 30% of the
steps; ratio = fraction of routed experts replaced. The earlier rules (global ranking, k-means with one unweighted
base per layer, rank 8, cosine anneal over 50%, parameter ratio) stay as options, collected in `EARLIER_DEFAULTS`;
the rules on tensors are in `tenfold.moe.rules`. Baselines: `naive_replace` (uniform per-layer selection, each
replaced expert = rank-r SVD of itself, no base, no annealing), `prune` (frequency-based dropping with router
re-normalisation) and `merge` (MC-SMoE-style: dominant experts by frequency, others grouped by router-logit
similarity, frequency-weighted weight averaging). Compressed layers are module swaps (`CompressedExperts`,
`SubsetRouter`) picked by fully-qualified name, so per-layer expert counts may differ although the HF config holds
one count. `recover` fine-tunes with LoRA (PEFT) on the attention projections plus the replacement factors under
the anneal schedule, with resumable checkpoints. `save_compressed`/`load_compressed` round-trip a compressed
model. Not implemented: MC-SMoE's post-merge low-rank compression, NAEE's subset enumeration and dynamic skipping,
HC-SMoE, OLMoE-scale models.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tenfold.common.atomic import atomic_write, atomic_write_json, atomic_write_text
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.config import field
from tenfold.common.errors import UserError, check_choice
from tenfold.moe.families import SubsetRouter, check_mask_groups, group_limited
from tenfold.moe.rules import base_weights, group_experts, kmeans, layer_threshold_factors
from tenfold.moe.stats import LayerStats, expert_forward, expert_weights, require_moe

METHODS = ("lightmoe", "prune", "merge", "naive_replace")
SELECTIONS = ("threshold", "adaptive", "uniform")
SCORES = ("gate_mass", "freq")
BASES = ("cluster", "none")
GROUPINGS = ("router_sim", "kmeans")
BASE_WEIGHTINGS = ("importance", "mean")
RATIO_UNITS = ("experts", "params")
ANNEALS = ("cosine", "linear", "none")
DENSE, LOWRANK, REMOVED = 0, 1, -1  # slot kinds

# Source tags in the help texts: [paper-summary §x] = section x of the LightMoE part of the fidelity note
# (../shared/research/fidelity/elas-lightmoe.md, a detailed third-party summary of the full text); [ours] = a
# choice the summary leaves open.


@dataclass
class LightMoEConfig:
    """Every choice of the method; the defaults follow the paper's summary, `EARLIER_DEFAULTS` holds the rules
    this code used before (global ranking, k-means base, rank 8, cosine anneal, parameter ratio); `method`
    presets fill the rest (see `method_defaults`)."""

    method: Literal["lightmoe", "prune", "merge", "naive_replace"] = field("lightmoe", help="compression method")
    ratio: float = field(0.5, help="compression ratio, 0 < ratio < 1, in `ratio_unit` [paper-summary §7: 0.3, 0.5]")
    ratio_unit: Literal["experts", "params"] = field(
        "experts", help="experts: fraction of routed experts replaced/removed [paper-summary §6.5, inferred from its "
        "expert-count argument]; params: fraction of expert parameters removed incl. bases and deltas (earlier)")
    rank: int = field(16, help="rank of each replaced expert's low-rank delta [paper-summary §6.2: 16]; earlier 8")
    selection: Literal["threshold", "adaptive", "uniform"] = field(
        "threshold", help="threshold: per-layer threshold on the layer-normalised importance, scaled by the layer's "
        "router-output norm and clamped [paper-summary §6.1]; adaptive: lowest raw scores globally across layers "
        "(earlier); uniform: equal count per layer")
    threshold_alpha: float = field(1.0, help="threshold: tau_l = tau * clip(exp(-alpha * z_l), lo, hi), z_l the "
                                   "standardised router-output norm of layer l [ours: the summary gives the "
                                   "exponential form, not its rate]")
    threshold_clamp: tuple[float, float] = field((0.8, 1.2), help="threshold: clamp of the per-layer factor "
                                                 "[paper-summary §6.1: 0.8-1.2x the base]")
    score: Literal["gate_mass", "freq"] = field("gate_mass", help="importance of an expert on calibration data: "
                                                "summed gate values [paper-summary §6.1]; freq: routing frequency")
    base: Literal["cluster", "none"] = field("cluster", help="cluster: shared base per group + low-rank delta "
                                             "[paper-summary §6.2]; none: SVD of the expert itself (naive)")
    grouping: Literal["router_sim", "kmeans"] = field(
        "router_sim", help="router_sim: the most important replaced experts are representatives, the others join "
        "the one with the most similar router outputs (cosine), groups of `group_size` [paper-summary §6.2]; "
        "kmeans: k-means on flattened weights into `n_clusters` groups (earlier)")
    group_size: int = field(3, help="router_sim: experts per group [paper-summary §6.2: 3]")
    n_clusters: int = field(1, help="kmeans: clusters (one shared base each) among a layer's replaced experts "
                            "[ours, earlier]")
    base_weighting: Literal["importance", "mean"] = field(
        "importance", help="shared base = importance-weighted mean of the group [paper-summary §6.2]; mean: "
        "unweighted (earlier)")
    anneal: Literal["cosine", "linear", "none"] = field(
        "linear", help="schedule of the original->replacement blend during recovery: linear [paper-summary §6.3]; "
        "cosine (earlier)")
    anneal_frac: float = field(0.3, help="fraction of recovery steps after which only the replacement remains "
                               "[paper-summary §6.3 searched 0.1-0.5; 0.3 is ours]; earlier 0.5")
    train_base: bool = field(False, help="train the shared bases during recovery (else frozen) [ours]")
    min_kept: int = field(0, help="prune/merge: experts kept per layer at least (0 = the router's top-k) [ours]")


# the rules (and values) of this code before the paper's defaults: the reproduction passes them explicitly
EARLIER_DEFAULTS = {"ratio_unit": "params", "rank": 8, "selection": "adaptive", "grouping": "kmeans",
                    "n_clusters": 1, "base_weighting": "mean", "anneal": "cosine", "anneal_frac": 0.5}


def method_defaults(method: str) -> dict:
    """Field values each method fixes (the naive baseline: uniform, no base, no annealing)."""
    check_choice("method", method, METHODS)
    return {"lightmoe": {}, "prune": {"selection": "uniform", "score": "freq"},
            "merge": {"selection": "uniform", "score": "freq"},
            "naive_replace": {"selection": "uniform", "base": "none", "anneal": "none", "score": "freq"}}[method]


def _validate(cfg: LightMoEConfig) -> None:
    check_choice("method", cfg.method, METHODS)
    check_choice("selection", cfg.selection, SELECTIONS)
    check_choice("score", cfg.score, SCORES)
    check_choice("base", cfg.base, BASES)
    check_choice("grouping", cfg.grouping, GROUPINGS)
    check_choice("base_weighting", cfg.base_weighting, BASE_WEIGHTINGS)
    check_choice("ratio_unit", cfg.ratio_unit, RATIO_UNITS)
    check_choice("anneal", cfg.anneal, ANNEALS)
    if not 0 < cfg.ratio < 1:
        raise UserError(f"Invalid ratio: {cfg.ratio!r}; expected 0 < ratio < 1")
    if cfg.rank < 1:
        raise UserError(f"Invalid rank: {cfg.rank!r}; expected an integer >= 1")
    if cfg.n_clusters < 1:
        raise UserError(f"Invalid n_clusters: {cfg.n_clusters!r}; expected an integer >= 1")
    if cfg.group_size < 1:
        raise UserError(f"Invalid group_size: {cfg.group_size!r}; expected an integer >= 1")
    lo, hi = cfg.threshold_clamp
    if not 0 < lo <= hi:
        raise UserError(f"Invalid threshold_clamp: {cfg.threshold_clamp!r}; expected 0 < lo <= hi")
    if not 0 <= cfg.anneal_frac <= 1:
        raise UserError(f"Invalid anneal_frac: {cfg.anneal_frac!r}; expected 0 <= anneal_frac <= 1")


# ---- replacement modules ------------------------------------------------------------------------------
def _svd_factors(w: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Truncated SVD w (m, n) ~= B (m, r) @ A (r, n), singular values split as sqrt into both."""
    u, s, vh = torch.linalg.svd(w.float(), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


class CompressedExperts(nn.Module):
    """Drop-in replacement of an HF 3-D expert store (`Qwen2MoeExperts`): dense, low-rank and removed slots.

    Slot e (the router's expert index) is dense (`dense_gate_up[slot_index[e]]`, several slots may share one
    merged expert), low-rank (W = base[lowrank_base[j]] + B_j A_j for j = slot_index[e]; no base when the
    index is -1) or removed (never routed to). While a teacher (the original weights of the low-rank slots)
    is attached, a low-rank slot outputs (1 - lam) * original(x) + lam * replacement(x) (annealed recovery).

    Parameters
    ----------
    hidden, inter : int
        H and I of the experts (gate_up is (2I, H), down is (H, I)).
    slot_kind, slot_index : sequence of int, length E
        Kind (0 dense, 1 low-rank, -1 removed) and index into the dense or low-rank store of every slot.
    lowrank_base : sequence of int, length R
        Base index of every low-rank expert (-1 = none).
    n_dense, n_base, rank : int
    act_fn : callable, default=F.silu
    gate_fn : callable (module, gate_up (N, 2I)) -> (N, I), optional
        The source store's unbound `_apply_gate` (the family's gated activation); scalar attributes it reads
        (`swiglu_limit`, ...) are passed in `gate_attrs`. Default: act_fn(gate) * up.
    gate_attrs : dict, optional
    dtype, device : optional
        Of the parameters (the source weights' dtype and device; default torch's).

    Attributes
    ----------
    dense_gate_up : (n_dense, 2I, H), dense_down : (n_dense, H, I)
    base_gate_up : (n_base, 2I, H), base_down : (n_base, H, I)
    lr_gu_a : (R, r, H), lr_gu_b : (R, 2I, r), lr_dn_a : (R, r, I), lr_dn_b : (R, H, r)
    lam : scalar buffer, the blend weight of the replacement (1 = replacement only)
    teacher_gate_up : (R, 2I, H), teacher_down : (R, H, I), or None
        Non-persistent buffers (moved by `.to()`, not trained, not saved), dropped by `finish_recovery`.
    """

    def __init__(self, hidden: int, inter: int, slot_kind: Sequence[int], slot_index: Sequence[int],
                 lowrank_base: Sequence[int], n_dense: int, n_base: int, rank: int, act_fn: Callable = F.silu,
                 gate_fn: Callable | None = None, gate_attrs: dict | None = None, dtype=None, device=None):
        super().__init__()
        n_lr = len(lowrank_base)
        self.hidden_dim, self.intermediate_dim, self.rank = hidden, inter, rank
        self.num_experts = len(slot_kind)
        self.act_fn = act_fn
        self._gate_fn = gate_fn
        for k, v in (gate_attrs or {}).items():
            if not hasattr(self, k):
                setattr(self, k, v)
        z = lambda *s: nn.Parameter(torch.zeros(*s, dtype=dtype, device=device))  # noqa: E731
        self.dense_gate_up, self.dense_down = z(n_dense, 2 * inter, hidden), z(n_dense, hidden, inter)
        self.base_gate_up, self.base_down = z(n_base, 2 * inter, hidden), z(n_base, hidden, inter)
        self.lr_gu_a, self.lr_gu_b = z(n_lr, rank, hidden), z(n_lr, 2 * inter, rank)
        self.lr_dn_a, self.lr_dn_b = z(n_lr, rank, inter), z(n_lr, hidden, rank)
        long = dict(dtype=torch.long, device=device)
        self.register_buffer("slot_kind", torch.tensor(list(slot_kind), **long))
        self.register_buffer("slot_index", torch.tensor(list(slot_index), **long))
        self.register_buffer("lowrank_base", torch.tensor(list(lowrank_base), **long))
        self.register_buffer("lam", torch.ones((), dtype=dtype, device=device))
        # the original weights of the low-rank slots while annealing: buffers so that .to() moves them, not
        # persistent (not saved; save_compressed requires finish_recovery first), never parameters (not trained)
        self.register_buffer("teacher_gate_up", None, persistent=False)  # (R, 2I, H)
        self.register_buffer("teacher_down", None, persistent=False)  # (R, H, I)

    def apply_gate(self, gate_up: Tensor) -> Tensor:
        """The source family's gated activation (N, 2I) -> (N, I)."""
        if self._gate_fn is not None:
            return self._gate_fn(self, gate_up)
        g, u = gate_up.chunk(2, dim=-1)
        return self.act_fn(g) * u

    def spec(self) -> dict:
        """Structural description from which `from_spec` rebuilds an empty module (for loading)."""
        return {"hidden": self.hidden_dim, "inter": self.intermediate_dim, "slot_kind": self.slot_kind.tolist(),
                "slot_index": self.slot_index.tolist(), "lowrank_base": self.lowrank_base.tolist(),
                "n_dense": self.dense_gate_up.shape[0], "n_base": self.base_gate_up.shape[0], "rank": self.rank}

    @classmethod
    def from_spec(cls, spec: dict, source: nn.Module | None = None, **kw) -> "CompressedExperts":
        """Empty module of `spec` with the gated activation of `source` (the family's original store)."""
        return cls(**spec, **(_gate_kwargs(source) if source is not None else {}), **kw)

    def _lowrank_out(self, j: int, x: Tensor) -> Tensor:
        # factored path: x (N, H) -> (N, r) -> (N, 2I); never materialises the (2I, H) delta
        gu = F.linear(F.linear(x, self.lr_gu_a[j]), self.lr_gu_b[j])
        b = int(self.lowrank_base[j])
        if b >= 0:
            gu = gu + F.linear(x, self.base_gate_up[b])
        h = self.apply_gate(gu)
        y = F.linear(F.linear(h, self.lr_dn_a[j]), self.lr_dn_b[j])
        return y + F.linear(h, self.base_down[b]) if b >= 0 else y

    def slot_forward(self, e: int, x: Tensor) -> Tensor:
        """Output of slot e on x (N, H) -> (N, H), the anneal blend included."""
        kind, i = int(self.slot_kind[e]), int(self.slot_index[e])
        if kind == DENSE:
            return expert_forward(self.dense_gate_up[i], self.dense_down[i], x, self.apply_gate)
        if kind == REMOVED:
            raise RuntimeError(f"expert slot {e} was removed but received tokens")
        y = self._lowrank_out(i, x)
        if self.teacher_gate_up is not None and float(self.lam) < 1:
            with torch.no_grad():
                t = expert_forward(self.teacher_gate_up[i], self.teacher_down[i], x, self.apply_gate)
            y = self.lam * y + (1 - self.lam) * t  # lam = 0: exactly the original expert
        return y

    def forward(self, hidden_states: Tensor, top_k_index: Tensor, top_k_weights: Tensor) -> Tensor:
        """hidden_states (N, H), top_k_index (N, k) slot ids, top_k_weights (N, k) -> (N, H).

        The k weighted expert outputs are summed in the product's dtype (fp32 when a bf16 model's router
        returns fp32 weights) and cast once, as transformers' default `grouped_mm` experts do, so that dense
        slots reproduce the original block bit for bit on CPU."""
        N, k = top_k_index.shape
        with torch.no_grad():
            mask = F.one_hot(top_k_index, self.num_experts).permute(2, 1, 0)  # (E, k, N)
            hit = (mask.sum((1, 2)) > 0).nonzero().flatten().tolist()
        parts = None  # (N, k, H): output of the expert in pick j of token t, times its weight
        for e in hit:
            pos, tok = torch.where(mask[e])
            y = self.slot_forward(e, hidden_states[tok]) * top_k_weights[tok, pos, None]
            if parts is None:
                parts = y.new_zeros(N, k, hidden_states.shape[-1])
            parts.index_put_((tok, pos), y)
        if parts is None:
            return torch.zeros_like(hidden_states)
        return parts.sum(dim=1).to(hidden_states.dtype)

    @torch.no_grad()
    def dense_weights(self) -> tuple[Tensor, Tensor]:
        """Materialised per-slot weights gate_up (E, 2I, H), down (E, H, I); removed slots are zero."""
        E, H, I = self.num_experts, self.hidden_dim, self.intermediate_dim
        like = self.dense_gate_up if self.dense_gate_up.numel() else self.lr_gu_a
        gu, dn = like.new_zeros(E, 2 * I, H), like.new_zeros(E, H, I)
        for e in range(E):
            kind, i = int(self.slot_kind[e]), int(self.slot_index[e])
            if kind == DENSE:
                gu[e], dn[e] = self.dense_gate_up[i], self.dense_down[i]
            elif kind == LOWRANK:
                b = int(self.lowrank_base[i])
                gu[e] = self.lr_gu_b[i] @ self.lr_gu_a[i] + (self.base_gate_up[b] if b >= 0 else 0)
                dn[e] = self.lr_dn_b[i] @ self.lr_dn_a[i] + (self.base_down[b] if b >= 0 else 0)
        return gu, dn


def _gate_kwargs(experts: nn.Module) -> dict:
    """act_fn, the unbound `_apply_gate` and the scalar attributes it may read, of an HF expert store."""
    fn = getattr(type(experts), "_apply_gate", None)
    scalar = (int, float, bool, type(None))
    attrs = {k: v for k, v in vars(experts).items() if not k.startswith("_") and type(v) in scalar}
    return {"act_fn": getattr(experts, "act_fn", F.silu), "gate_fn": fn, "gate_attrs": attrs}


def _like(experts: nn.Module) -> dict:
    """dtype and device of a store's weights (new modules are created there)."""
    w = expert_weights(experts)[0]
    return {"dtype": w.dtype, "device": w.device}


def _set_module(root: nn.Module, fqn: str, new: nn.Module) -> None:
    parent, _, child = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def swap_modules(model: nn.Module, modules: dict[str, nn.Module]) -> nn.Module:
    """Replace each submodule named by its fully-qualified name (e.g. "model.layers.0.mlp.experts")."""
    for fqn, mod in modules.items():
        try:
            model.get_submodule(fqn)
        except AttributeError as err:
            raise UserError(f"Invalid module name: {fqn!r} is not a submodule of {type(model).__name__}") from err
        _set_module(model, fqn, mod)
    return model


# ---- selection and budgets ----------------------------------------------------------------------------
def _scores(stats: Sequence[LayerStats], score: str) -> list[Tensor]:
    return [s.gate_mass if score == "gate_mass" else s.freq for s in stats]


def _order(scores: list[Tensor], selection: str, factors: Sequence[float] | None = None) -> list[tuple[int, int]]:
    """(layer, expert) candidates in removal order.

    threshold: expert e of layer l is replaced when its layer-normalised score s_le < tau * f_l, so raising the
    base threshold tau admits experts in increasing order of s_le / f_l (ties: lower layer, then lower index
    [ours]); adaptive: globally by raw score; uniform: round-robin over layers, lowest score first.
    """
    if selection == "threshold":
        flat = []
        for l, s in enumerate(scores):
            s = s.double()
            s = s / s.sum() if float(s.sum()) > 0 else torch.full_like(s, 1.0 / len(s))
            flat += [(float(s[e]) / factors[l], l, e) for e in range(len(s))]
        return [(l, e) for _, l, e in sorted(flat)]
    if selection == "adaptive":
        flat = [(float(s[e]), l, e) for l, s in enumerate(scores) for e in range(len(s))]
        return [(l, e) for _, l, e in sorted(flat)]
    per = [torch.argsort(s, stable=True).tolist() for s in scores]
    return [(l, per[l][j]) for j in range(max(map(len, per))) for l in range(len(per)) if j < len(per[l])]


def _n_bases(cfg: LightMoEConfig, n_chosen: int) -> int:
    """Shared bases a layer with `n_chosen` replaced experts holds."""
    if cfg.base != "cluster" or not n_chosen:
        return 0
    if cfg.grouping == "router_sim":
        return math.ceil(n_chosen / cfg.group_size)
    return min(cfg.n_clusters, n_chosen)


def plan_selection(stats: Sequence[LayerStats], dims: Sequence[tuple[int, int, int]], cfg: LightMoEConfig,
                   top_k: int) -> list[list[int]]:
    """Experts chosen per layer so that at least `cfg.ratio` is reached, in `cfg.ratio_unit`.

    experts: the fraction of routed experts (all layers) replaced / dropped / merged away. params: the
    fraction of expert parameters removed; replacing costs r(2H + 3I) parameters per expert plus one dense
    base per group, pruning and merging free a whole expert each. Candidates are taken in the order of
    `cfg.selection` (see `_order`) until the target is met; a layer's cap (all experts for replacing, all but
    top-k for pruning and merging) skips further candidates of that layer [ours]. Uniform selection takes
    experts round-robin over layers, so per-layer counts differ by at most one.

    Returns
    -------
    list (per layer) of expert indices to replace / drop / merge away.
    """
    replace = cfg.method in ("lightmoe", "naive_replace")
    cap = [E if replace else E - max(cfg.min_kept or top_k, 1) for E, _, _ in dims]
    if cfg.ratio_unit == "experts":
        total = sum(E for E, _, _ in dims)
        target = math.ceil(cfg.ratio * total - 1e-9)
    else:
        total = sum(E * 3 * H * I for E, H, I in dims)
        target = cfg.ratio * total

    def saved(chosen: list[list[int]]) -> float:
        if cfg.ratio_unit == "experts":
            return sum(map(len, chosen))
        s = 0.0
        for (E, H, I), c in zip(dims, chosen):
            pe = 3 * H * I
            if not replace:
                s += len(c) * pe
            elif c:
                s += len(c) * (pe - cfg.rank * (2 * H + 3 * I)) - _n_bases(cfg, len(c)) * pe
        return s

    factors = None
    if cfg.selection == "threshold":
        factors = layer_threshold_factors([s.router_norm for s in stats], cfg.threshold_alpha, cfg.threshold_clamp)
    chosen: list[list[int]] = [[] for _ in dims]
    order = _order(_scores(stats, cfg.score), cfg.selection, factors)
    for l, e in order:  # uniform: round-robin over layers, so per-layer counts differ by at most one
        if saved(chosen) >= target:
            break
        if len(chosen[l]) < cap[l]:
            chosen[l].append(e)
    if saved(chosen) < target:
        raise UserError(f"Invalid ratio: {cfg.ratio} ({cfg.ratio_unit}) cannot be reached with method="
                        f"{cfg.method!r}, rank={cfg.rank} (at most {saved(chosen) / total:.3f} can be removed)")
    return chosen


# ---- compress -----------------------------------------------------------------------------------------
@torch.no_grad()
def _replace_layer(block, chosen: list[int], st: LayerStats, cfg: LightMoEConfig) -> CompressedExperts:
    # bases and SVD factors are computed in fp32, then stored in the source weights' dtype and device
    src_gu, src_dn = (t.detach() for t in expert_weights(block.experts))
    gu, dn = src_gu.float(), src_dn.float()
    E, H, I = gu.shape[0], gu.shape[2], gu.shape[1] // 2
    r = cfg.rank
    if r > min(H, I):
        raise UserError(f"Invalid rank: {r} is larger than the expert matrices allow (min(H, I) = {min(H, I)})")
    kept = [e for e in range(E) if e not in chosen]
    groups: list[int] = [-1] * len(chosen)
    bases_gu, bases_dn = [], []
    if cfg.base == "cluster" and chosen:
        imp = _scores([st], cfg.score)[0].detach().double().cpu()
        if cfg.grouping == "router_sim":
            groups = group_experts(chosen, imp, st.logit_sim.detach().cpu(), cfg.group_size)
        else:
            flat = torch.cat([gu[chosen].reshape(len(chosen), -1), dn[chosen].reshape(len(chosen), -1)], 1)
            groups = kmeans(flat, min(cfg.n_clusters, len(chosen)))
        for g in sorted(set(groups)):
            members = [c for c, gg in zip(chosen, groups) if gg == g]
            if cfg.base_weighting == "mean":  # the earlier rule, bit for bit
                bases_gu.append(gu[members].mean(0)); bases_dn.append(dn[members].mean(0))
            else:
                w = base_weights(imp[members], cfg.base_weighting).to(gu)[:, None, None]
                bases_gu.append((w * gu[members]).sum(0)); bases_dn.append((w * dn[members]).sum(0))
        remap = {g: i for i, g in enumerate(sorted(set(groups)))}
        groups = [remap[g] for g in groups]
    kind, index = [0] * E, [0] * E
    for i, e in enumerate(kept):
        kind[e], index[e] = DENSE, i
    for j, e in enumerate(chosen):
        kind[e], index[e] = LOWRANK, j
    mod = CompressedExperts(H, I, kind, index, groups, len(kept), len(bases_gu), r, **_gate_kwargs(block.experts),
                            **_like(block.experts))
    mod.dense_gate_up.copy_(gu[kept]); mod.dense_down.copy_(dn[kept])
    if bases_gu:
        mod.base_gate_up.copy_(torch.stack(bases_gu)); mod.base_down.copy_(torch.stack(bases_dn))
    for j, (e, g) in enumerate(zip(chosen, groups)):
        b_gu, a_gu = _svd_factors(gu[e] - (bases_gu[g] if g >= 0 else 0), r)
        b_dn, a_dn = _svd_factors(dn[e] - (bases_dn[g] if g >= 0 else 0), r)
        mod.lr_gu_a[j], mod.lr_gu_b[j], mod.lr_dn_a[j], mod.lr_dn_b[j] = a_gu, b_gu, a_dn, b_dn
    if cfg.anneal != "none" and chosen:
        # the originals in their own dtype: at lam = 0 a slot reproduces the original expert bit for bit
        mod.teacher_gate_up, mod.teacher_down = src_gu[chosen].clone(), src_dn[chosen].clone()
        mod.lam.zero_()
    return mod


@torch.no_grad()
def _prune_layer(block, chosen: list[int], router_attr: str = "gate") -> tuple[CompressedExperts, SubsetRouter]:
    """Drop `chosen`; the router is the family's own on the kept experts (mask mode when group-limited)."""
    gu, dn = (t.detach() for t in expert_weights(block.experts))
    E, H, I = gu.shape[0], gu.shape[2], gu.shape[1] // 2
    kept = [e for e in range(E) if e not in chosen]
    router = getattr(block, router_attr)
    n_group = group_limited(router)
    mode = "mask" if n_group > 1 and chosen else "slice"
    if mode == "mask":
        why = check_mask_groups(kept, E, n_group, router.top_k, int(getattr(router, "topk_group", 1) or 1))
        if why:
            raise UserError(f"Unsupported pruning of a group-limited router ({type(router).__name__}, n_group="
                            f"{n_group}): {why}; raise min_kept or use a replacing method")
    kind = [REMOVED] * E
    index = [0] * E
    for i, e in enumerate(kept):
        kind[e], index[e] = DENSE, i
    mod = CompressedExperts(H, I, kind, index, [], len(kept), 0, 1, **_gate_kwargs(block.experts),
                            **_like(block.experts))
    mod.dense_gate_up.copy_(gu[kept]); mod.dense_down.copy_(dn[kept])
    return mod, SubsetRouter(router, kept, E, mode)


@torch.no_grad()
def _merge_layer(block, chosen: list[int], st: LayerStats) -> CompressedExperts:
    """MC-SMoE-lite: the kept (most used) experts are dominant; each chosen expert joins the dominant expert
    with the most similar router logits; each group's weights are averaged, weighted by routing frequency."""
    gu, dn = (t.detach().float() for t in expert_weights(block.experts))  # averaged in fp32
    E, H, I = gu.shape[0], gu.shape[2], gu.shape[1] // 2
    dom = [e for e in range(E) if e not in chosen]
    owner = {e: e for e in dom}
    for e in chosen:
        owner[e] = max(dom, key=lambda d: float(st.logit_sim[e, d]))
    f = st.freq.float().to(gu.device) + 1e-6
    mod = CompressedExperts(H, I, [DENSE] * E, [dom.index(owner[e]) for e in range(E)], [], len(dom), 0, 1,
                            **_gate_kwargs(block.experts), **_like(block.experts))
    for i, d in enumerate(dom):
        members = [e for e in range(E) if owner[e] == d]
        w = (f[members] / f[members].sum())[:, None, None]
        mod.dense_gate_up[i] = (w * gu[members]).sum(0)
        mod.dense_down[i] = (w * dn[members]).sum(0)
    return mod


def compress(model: nn.Module, ratio: float, method: str = "lightmoe", *, stats: Sequence[LayerStats],
             config: LightMoEConfig | None = None, **overrides) -> tuple[nn.Module, dict]:
    """Compress every MoE layer of `model` in place by module swaps.

    Parameters
    ----------
    model : nn.Module
        An HF MoE causal LM (e.g. `Qwen2MoeForCausalLM`) with 3-D expert stores.
    ratio : float
        Compression ratio, 0 < ratio < 1, in `ratio_unit`: by default the fraction of routed experts replaced or
        removed (the paper's unit, fidelity note §6.5); `ratio_unit="params"`: the fraction of expert parameters
        removed. The achieved ratio is >= this; the plan reports both (`expert_ratio`, `param_ratio`).
    method : {"lightmoe", "prune", "merge", "naive_replace"}, default="lightmoe"
    stats : sequence of LayerStats
        Calibration statistics from `tenfold.moe.stats.expert_stats(model, batches)`.
    config : LightMoEConfig, optional
        Defaults for the remaining choices; `method_defaults(method)` then `overrides` are applied on top.

    Returns
    -------
    (model, plan) : the same model object, and a JSON-ready dict with the config, the chosen experts per
        layer, the fraction of routed experts replaced/removed (`expert_ratio`) and the exact fraction of expert
        parameters removed (`param_ratio`, also under its earlier name `removed_ratio`).

    Examples
    --------
    >>> from tenfold.models.hf_tiny import tiny_moe
    >>> from tenfold.moe import compress, expert_stats
    >>> m, _ = tiny_moe("debug")
    >>> st = expert_stats(m, [torch.randint(0, 256, (2, 16))])
    >>> _, plan = compress(m, 0.5, "prune", stats=st)
    >>> plan["removed_ratio"]
    0.5
    """
    check_choice("method", method, METHODS)
    cfg = dataclasses.replace(config or LightMoEConfig(), **{**method_defaults(method), **overrides},
                              method=method, ratio=ratio)
    _validate(cfg)
    layers = require_moe(model)
    if len(stats) != len(layers) or any(s.name != l.name for s, l in zip(stats, layers)):
        raise UserError("Invalid stats: they do not match the model's MoE layers; compute them with "
                        "expert_stats(model, batches) on this model")
    dims = [(l.num_experts, l.hidden, l.inter) for l in layers]
    if cfg.method in ("lightmoe", "naive_replace") and cfg.rank > min(min(H, I) for _, H, I in dims):
        raise UserError(f"Invalid rank: {cfg.rank} is larger than the expert matrices allow "
                        f"(min(H, I) = {min(min(H, I) for _, H, I in dims)})")
    top_k = max(l.top_k for l in layers)
    before = expert_param_count(model)
    chosen = plan_selection(stats, dims, cfg, top_k)
    swaps: dict[str, nn.Module] = {}
    for layer, c, st in zip(layers, chosen, stats):
        name, block = layer.name, layer.block
        if cfg.method == "prune":
            swaps[f"{name}.experts"], swaps[f"{name}.{layer.router_attr}"] = _prune_layer(block, c, layer.router_attr)
        elif cfg.method == "merge":
            swaps[f"{name}.experts"] = _merge_layer(block, c, st)
        else:
            swaps[f"{name}.experts"] = _replace_layer(block, c, st, cfg)
    swap_modules(model, swaps)
    after = expert_param_count(model)
    n_experts = sum(l.num_experts for l in layers)
    plan = {"config": dataclasses.asdict(cfg), "chosen": chosen, "ratio_unit": cfg.ratio_unit,
            "expert_params_before": before, "expert_params_after": after,
            "expert_ratio": round(sum(map(len, chosen)) / n_experts, 6),  # routed experts replaced/removed
            "param_ratio": round(1 - after / before, 6),  # expert parameters removed
            "removed_ratio": round(1 - after / before, 6)}  # = param_ratio (kept for earlier readers)
    return model, plan


# ---- counting, annealing, recovery --------------------------------------------------------------------
def expert_param_count(model: nn.Module) -> int:
    """Parameters held by the expert stores of every MoE layer (teacher copies excluded)."""
    return sum(p.numel() for l in require_moe(model) for p in l.experts.parameters())


def param_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and persistent buffer (tied weights counted once): the model's memory."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def compressed_experts(model: nn.Module) -> list[CompressedExperts]:
    return [m for m in model.modules() if isinstance(m, CompressedExperts)]


def anneal_lambda(step: int, total: int, schedule: str = "linear", frac: float = 0.3) -> float:
    """Weight of the replacement at `step` of `total`: 0 -> 1 over the first `frac` of steps, then 1.

    The original expert's weight is 1 - lambda: linear from 1 to 0 [paper-summary §6.3], ending at `frac` of
    training (the paper searched 0.1-0.5; 0.3 is ours). `schedule="cosine"`, `frac=0.5` is the earlier rule."""
    check_choice("anneal", schedule, ANNEALS)
    span = frac * total
    if schedule == "none" or span <= 0 or step >= span:
        return 1.0
    t = step / span
    return t if schedule == "linear" else 0.5 * (1 - math.cos(math.pi * t))


def set_anneal(model: nn.Module, lam: float) -> None:
    for m in compressed_experts(model):
        m.lam.fill_(lam)


def finish_recovery(model: nn.Module) -> nn.Module:
    """Drop the original experts kept for annealing; replacements alone from now on (lam = 1)."""
    for m in compressed_experts(model):
        m.teacher_gate_up = m.teacher_down = None
        m.lam.fill_(1.0)
    return model


@dataclass
class RecoveryConfig:
    """Fine-tuning after compression (the same budget for every arm)."""

    steps: int = field(100, help="optimizer steps")
    lr: float = field(3e-3, help="AdamW learning rate (LoRA and replacement factors)")
    lora_rank: int = field(8, help="LoRA rank on the attention projections (PEFT)")
    lora_targets: tuple[str, ...] = field(("q_proj", "k_proj", "v_proj", "o_proj"), help="PEFT target modules")
    lora_expert_rank: int = field(0, help="also LoRA every original 3-D expert store at this rank per expert (PEFT "
                                  "target_parameters; 0 = off)")
    anneal: str = field("none", help="anneal schedule of replaced experts (set from the compression config)")
    anneal_frac: float = field(0.3, help="fraction of steps over which replacements anneal in [paper-summary §6.3 "
                               "searched 0.1-0.5; 0.3 is ours]; earlier 0.5")
    train_base: bool = field(False, help="also train shared bases")
    train_factors: bool = field(True, help="train the replacement low-rank factors")
    checkpoint_every: int = field(0, help="steps between checkpoints (0 = never)")


def add_lora(model: nn.Module, rcfg: RecoveryConfig) -> nn.Module:
    """Wrap with PEFT LoRA on `lora_targets`, then unfreeze the replacement factors (and bases if asked)."""
    from peft import LoraConfig, get_peft_model

    kw = {}
    if rcfg.lora_expert_rank:
        stores = [f"{l.name}.experts" for l in require_moe(model) if hasattr(l.experts, "gate_up_proj")]
        if not stores:
            raise UserError("Invalid lora_expert_rank: the model has no original 3-D expert stores to adapt")
        kw["target_parameters"] = [f"{s}.{w}" for s in stores for w in ("gate_up_proj", "down_proj")]
        kw["rank_pattern"] = {t: rcfg.lora_expert_rank for t in kw["target_parameters"]}
        kw["alpha_pattern"] = {t: 2 * rcfg.lora_expert_rank for t in kw["target_parameters"]}
    peft_model = get_peft_model(model, LoraConfig(r=rcfg.lora_rank, lora_alpha=2 * rcfg.lora_rank, lora_dropout=0.0,
                                                  target_modules=list(rcfg.lora_targets), **kw))
    for n, p in peft_model.named_parameters():
        if (rcfg.train_factors and ".lr_" in n) or (rcfg.train_base and ".base_" in n):
            p.requires_grad_(True)
    return peft_model


def trainable_count(model: nn.Module, rcfg: RecoveryConfig) -> int:
    """Parameters `recover` trains: LoRA A/B on every `nn.Linear` named by `lora_targets`, plus the
    replacement factors (and the shared bases when `train_base`)."""
    n = 0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and name.rpartition(".")[2] in rcfg.lora_targets:
            n += rcfg.lora_rank * (mod.in_features + mod.out_features)
    if rcfg.lora_expert_rank:
        for l in require_moe(model):
            if hasattr(l.experts, "gate_up_proj"):
                E, two_i, h = l.experts.gate_up_proj.shape
                n += rcfg.lora_expert_rank * E * (h + two_i) + rcfg.lora_expert_rank * E * (two_i // 2 + h)
    for name, p in model.named_parameters():
        if (rcfg.train_factors and ".lr_" in name) or (rcfg.train_base and ".base_" in name):
            n += p.numel()
    return n


def recover(model: nn.Module, batch_fn: Callable[[int], tuple[Tensor, Tensor]], rcfg: RecoveryConfig, *,
            progress: Callable = lambda it, **kw: it, ckpt: str | Path | None = None) -> tuple[nn.Module, list[float]]:
    """LoRA fine-tuning with annealed recovery of replaced experts; returns (merged model, losses).

    Parameters
    ----------
    model : nn.Module
        A (compressed or original) HF causal LM.
    batch_fn : callable step -> (input_ids (B, T), labels (B, T))
        Deterministic in `step`, so that a resumed run sees the same batches.
    rcfg : RecoveryConfig
    progress : callable, optional
        Wraps the step range (a progress bar).
    ckpt : path, optional
        Checkpoint file; training resumes from it when it exists.

    Returns
    -------
    (model, losses) : the model with LoRA merged into its weights and the teachers dropped, and the
        per-step training losses.
    """
    if rcfg.steps < 1:
        raise UserError(f"Invalid steps: {rcfg.steps!r}; expected an integer >= 1")
    pm = add_lora(model, rcfg)
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=rcfg.lr, weight_decay=0.0, foreach=False)
    start, losses = 0, []
    state = load_checkpoint(ckpt) if ckpt is not None else None
    if state is not None:
        pm.load_state_dict(state["model"]); opt.load_state_dict(state["optimizer"])
        start, losses = state["step"], state["losses"]
    pm.train()
    for step in progress(range(start, rcfg.steps), desc="recovery"):
        set_anneal(pm, anneal_lambda(step, rcfg.steps, rcfg.anneal, rcfg.anneal_frac))
        x, y = batch_fn(step)
        loss = pm(input_ids=x, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if ckpt is not None and rcfg.checkpoint_every and (step + 1) % rcfg.checkpoint_every == 0 \
                and step + 1 < rcfg.steps:
            save_checkpoint(ckpt, model=pm.state_dict(), optimizer=opt.state_dict(), step=step + 1, losses=losses,
                            config=dataclasses.asdict(rcfg))
    merged = pm.merge_and_unload()
    return finish_recovery(merged), losses


# ---- save / load ----------------------------------------------------------------------------------------
PLAN_NAME, WEIGHTS_NAME, CONFIG_NAME = "moe_compression.json", "model.pt", "config.json"


def _main_dtype(model: nn.Module) -> torch.dtype:
    """The dtype most floating-point parameters have (a bf16 model may keep fp32 routers)."""
    count: dict[torch.dtype, int] = {}
    for p in model.parameters():
        if p.is_floating_point():
            count[p.dtype] = count.get(p.dtype, 0) + p.numel()
    return max(count, key=count.get) if count else torch.float32


def save_compressed(model: nn.Module, path: str | Path) -> Path:
    """Write the HF config (`config.json`, as `save_pretrained` writes it), the swapped modules' structure and
    the state dict into folder `path`."""
    if any(m.teacher_gate_up is not None for m in compressed_experts(model)):
        raise UserError("Invalid model: annealing teachers are still attached; call finish_recovery(model) first")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    swaps = {}
    for n, m in model.named_modules():
        if isinstance(m, (CompressedExperts, SubsetRouter)):
            swaps[n] = {"type": type(m).__name__, "spec": m.spec()}
    # the config's own JSON (not to_dict() through AutoConfig.for_model, which breaks strict or nested configs)
    atomic_write_text(path / CONFIG_NAME, model.config.to_json_string())
    atomic_write_json(path / PLAN_NAME, {"model_type": model.config.model_type,
                                         "config_class": type(model.config).__name__,
                                         "model_class": type(model).__name__, "swaps": swaps,
                                         "dtype": str(_main_dtype(model)).removeprefix("torch.")})
    atomic_write(path / WEIGHTS_NAME, lambda fh: torch.save(model.state_dict(), fh), mode="wb")
    return path


def load_compressed(path: str | Path) -> nn.Module:
    """Rebuild a model written by `save_compressed` (random init, swaps, then the saved weights in their dtype)."""
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if not (path / PLAN_NAME).exists():
        raise UserError(f"Invalid path: {path} holds no {PLAN_NAME} (write it with save_compressed)")
    meta = json.loads((path / PLAN_NAME).read_text())
    if (path / CONFIG_NAME).exists():
        cfg_cls = getattr(transformers, meta.get("config_class", ""), None)
        cfg = (cfg_cls or AutoConfig).from_pretrained(path)
    else:  # written before config.json was saved
        cfg = AutoConfig.for_model(meta["model_type"], **{k: v for k, v in meta["config"].items() if k != "model_type"})
    model_cls = getattr(transformers, meta.get("model_class", ""), None)
    model = model_cls._from_config(cfg) if model_cls is not None else AutoModelForCausalLM.from_config(cfg)
    swaps = {}
    for n, s in meta["swaps"].items():
        if s["type"] == "CompressedExperts":
            swaps[n] = CompressedExperts.from_spec(s["spec"], model.get_submodule(n))
        elif s["type"] == "SubsetRouter":  # around the fresh model's own router, then its weights are loaded
            sp = s["spec"]
            swaps[n] = SubsetRouter(model.get_submodule(n), sp["kept"], sp["num_experts"], sp["mode"])
        else:  # PrunedRouter, written before the family's own router was used
            raise UserError(f"Invalid path: {path} holds a {s['type']} that this version cannot load; recompress")
    swap_modules(model, swaps)
    if meta.get("dtype"):  # non-persistent buffers (rotary inv_freq) follow the model's cast, as they did
        model.to(getattr(torch, meta["dtype"]))
    state = torch.load(path / WEIGHTS_NAME, map_location="cpu")
    own = dict(model.named_parameters(remove_duplicate=False)) | dict(model.named_buffers(remove_duplicate=False))
    for k, v in state.items():  # the saved dtypes (bf16 models, fp32 routers in them) win over the config's
        if k in own and own[k] is not None and own[k].dtype != v.dtype:
            own[k].data = own[k].data.to(v.dtype)
    model.load_state_dict(state, strict=True)
    return model.eval()
