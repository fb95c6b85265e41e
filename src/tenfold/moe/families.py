"""Which transformers MoE families LightMoE supports, and the family's own routing rule on a subset of experts.

One place that knows the HF layouts (transformers >= 5). A supported MoE block has an `experts` child that is a
`@use_experts_implementation` store in the default layout (concatenated `gate_up_proj (E, 2I, H)` and
`down_proj (E, H, I)`, gated, no biases, no post-expert norm; the gated activation is the store's own
`_apply_gate`) and a router child named `gate` or `router` whose forward returns `(logits (N, E), weights (N, k),
indices (N, k))`, possibly taking an expert-indexed bias from the block as a second argument (MiniMax-M2,
LFM2-MoE). Everything else is refused with a `UserError` naming the family and the unsupported part, before any
work. `SubsetRouter` runs a deep copy of the family's router on the kept experts only (slice mode) or with the
removed experts masked out of the selection (mask mode, for group-limited routers).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from tenfold.common.errors import UserError

ROUTER_NAMES = ("gate", "router")
# families whose block passes the layout checks but whose routing we cannot reproduce, and why
REFUSED = {
    "deepseek_v4": "hash-routed layers (DeepseekV4HashRouter picks experts from the token id, not a router)",
    "inkling": "the router returns more than (logits, weights, indices)",
    "inkling2": "the router returns more than (logits, weights, indices)",
    "inkling2_loop": "the router returns more than (logits, weights, indices)",
    "zaya": "the router returns more than (logits, weights, indices)",
}
_LAYOUT = {"is_transposed": (False, "transposed expert weights (E, H, 2I)"),
           "is_concatenated": (True, "interleaved gate/up rows"),
           "has_bias": (False, "expert biases"),
           "has_gate": (True, "ungated experts (up_proj only)"),
           "has_post_expert_norm": (False, "a norm after each expert")}


def family_of(model: nn.Module) -> str:
    """The HF `model_type` (e.g. "qwen2_moe"), or the class name when the model has no config."""
    return getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__


@dataclass
class MoELayer:
    """One supported MoE block.

    Attributes
    ----------
    name : str
        Fully-qualified name of the block.
    block : nn.Module
    router_attr : {"gate", "router"}
        Name of the router child.
    num_experts, hidden, inter, top_k : int
        E, H, I and k of the block.
    n_group : int
        Expert groups of a group-limited router (DeepSeek-V2/V3 style), 1 otherwise.
    """

    name: str
    block: nn.Module
    router_attr: str
    num_experts: int
    hidden: int
    inter: int
    top_k: int
    n_group: int = 1

    @property
    def router(self) -> nn.Module:
        return getattr(self.block, self.router_attr)

    @property
    def experts(self) -> nn.Module:
        return self.block.experts


def group_limited(router: nn.Module) -> int:
    """Number of expert groups when the router restricts top-k to the best groups, else 1."""
    n = getattr(router, "num_group", None) or getattr(router, "n_group", None) or 1
    if getattr(router, "topk_method", None) == "greedy":
        return 1
    return int(n)


def _check_experts(family: str, name: str, experts: nn.Module) -> None:
    if hasattr(experts, "dense_weights"):  # already compressed by us
        return
    gu, dn = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not (isinstance(gu, Tensor) and isinstance(dn, Tensor) and gu.dim() == 3 and dn.dim() == 3):
        what = "up_proj only (ungated experts)" if hasattr(experts, "up_proj") else \
            f"{type(experts).__name__} without 3-D gate_up_proj/down_proj"
        raise UserError(f"Unsupported MoE family {family!r}: {name}.experts is {what}; LightMoE needs 3-D "
                        "gate_up_proj (E, 2I, H) and down_proj (E, H, I)")
    if not hasattr(experts, "has_gate"):
        raise UserError(f"Unsupported MoE family {family!r}: {name}.experts ({type(experts).__name__}) is not a "
                        "transformers @use_experts_implementation store, so its layout and dispatch are unknown")
    bad = [why for flag, (want, why) in _LAYOUT.items() if getattr(experts, flag) != want]
    if bad:
        raise UserError(f"Unsupported MoE family {family!r}: {name}.experts has {', '.join(bad)}; LightMoE supports "
                        "concatenated gate_up_proj (E, 2I, H) + down_proj (E, H, I), gated, without biases")


def find_moe_layers(model: nn.Module) -> list[MoELayer]:
    """Every MoE block of `model` (a module with an `experts` child), checked for support.

    Raises `UserError` naming the family and the unsupported part when any block cannot be handled; returns
    an empty list when the model has no `experts` child at all.
    """
    family = family_of(model)
    out = []
    for name, mod in model.named_modules():
        experts = getattr(mod, "experts", None)
        if not isinstance(experts, nn.Module):
            continue
        base = family.removesuffix("_text")  # text sub-configs of composite models: inkling_text, ...
        if base in REFUSED:
            raise UserError(f"Unsupported MoE family {family!r}: {REFUSED[base]}")
        _check_experts(family, name, experts)
        rname = next((r for r in ROUTER_NAMES if isinstance(getattr(mod, r, None), nn.Module)), None)
        if rname is None:
            raise UserError(f"Unsupported MoE family {family!r}: block {name} ({type(mod).__name__}) has no router "
                            f"child named {' or '.join(ROUTER_NAMES)}")
        router = getattr(mod, rname)
        inner = router.inner if isinstance(router, SubsetRouter) else router
        top_k = getattr(inner, "top_k", None)
        if not isinstance(top_k, int):
            raise UserError(f"Unsupported MoE family {family!r}: router {name}.{rname} ({type(router).__name__}) has "
                            "no integer top_k (the block, not the router, picks the experts)")
        if hasattr(experts, "dense_weights"):
            E, H, I = experts.num_experts, experts.hidden_dim, experts.intermediate_dim
        else:
            E, H, I = experts.gate_up_proj.shape[0], experts.gate_up_proj.shape[2], experts.gate_up_proj.shape[1] // 2
        out.append(MoELayer(name, mod, rname, E, H, I, top_k, group_limited(inner)))
    return out


# ---- the family's router on a subset of experts ------------------------------------------------------------
def _expert_dim(t: Tensor, E: int) -> int | None:
    """First dimension of size E (the expert axis of a router weight, bias or correction), else None."""
    return next((d for d, s in enumerate(t.shape) if s == E), None)


def _is_bias(name: str, t: Tensor) -> bool:
    return t.is_floating_point() and "bias" in name and t.numel() == max(t.shape, default=1)


class SubsetRouter(nn.Module):
    """The family's own router restricted to the kept experts (`Qwen2MoeTopKRouter`-style contract).

    slice mode: a deep copy of the router whose every expert-indexed parameter, buffer (weight rows, bias,
    `e_score_correction_bias`, `moe_statics`) and expert-count attribute is cut to the kept experts along the
    dimension of size E; expert-indexed tensors passed by the block (a block-level bias) are cut the same way.
    The router's own forward runs, so renormalisation, sigmoid scoring, bias-corrected selection and scaling
    are the family's. mask mode (group-limited routers, where cutting would break the group layout): the copy
    keeps all E experts and the removed experts' selection bias is set to -inf. Either way the returned indices
    are slot ids of the full block and the logits of removed slots are -inf.

    Parameters
    ----------
    router : nn.Module
        The block's router; it is copied, not changed.
    kept : sequence of int
        Kept expert ids (sorted).
    num_experts : int
        E of the block.
    mode : {"slice", "mask"}, default="slice"
    """

    def __init__(self, router: nn.Module, kept: Sequence[int], num_experts: int, mode: str = "slice"):
        super().__init__()
        E = num_experts
        kept = sorted(int(k) for k in kept)
        self.num_experts, self.mode = E, mode
        self.inner = copy.deepcopy(router)
        self.top_k = self.inner.top_k
        self.register_buffer("kept", torch.tensor(kept, dtype=torch.long))
        removed = [e for e in range(E) if e not in kept]
        self.register_buffer("removed", torch.tensor(removed, dtype=torch.long))
        with torch.no_grad():
            if mode == "slice":
                self._slice(E)
            elif mode == "mask":
                self._mask(E, removed)
            else:
                raise UserError(f"Invalid mode: {mode!r}; expected one of slice, mask")

    def _slice(self, E: int) -> None:
        kept, n = self.kept, len(self.kept)
        for mod in self.inner.modules():
            for pname, p in list(mod.named_parameters(recurse=False)):
                d = _expert_dim(p, E)
                if d is not None:
                    setattr(mod, pname, nn.Parameter(p.index_select(d, kept.to(p.device)).clone(),
                                                     requires_grad=p.requires_grad))
            for bname, b in list(mod.named_buffers(recurse=False)):
                d = None if b is None else _expert_dim(b, E)
                if d is not None:
                    mod._buffers[bname] = b.index_select(d, kept.to(b.device)).clone()
            for k, v in list(vars(mod).items()):  # out_features, num_experts, n_routed_experts, ...
                if type(v) is int and v == E and ("expert" in k or k == "out_features") \
                        and "per_tok" not in k and "top" not in k:
                    setattr(mod, k, n)

    def _mask(self, E: int, removed: list[int]) -> None:
        biases = [(n, b) for n, b in self.inner.named_buffers() if b is not None and _is_bias(n, b) and b.numel() == E]
        biases += [(n, p) for n, p in self.inner.named_parameters() if _is_bias(n, p) and p.numel() == E]
        if not biases:
            raise UserError(f"Unsupported pruning for router {type(self.inner).__name__}: it is group-limited "
                            "(n_group > 1) and has no expert selection bias to mask removed experts with; keep "
                            "every expert of this family's layers or use a replacing method")
        for _, b in biases:
            b.view(-1)[removed] = float("-inf")

    def spec(self) -> dict:
        """What `load_compressed` needs to rebuild this router around a fresh copy of the family's router."""
        return {"kept": self.kept.tolist(), "num_experts": self.num_experts, "mode": self.mode}

    def forward(self, hidden_states: Tensor, *args, **kwargs):
        E = self.num_experts

        def cut(t):
            if not torch.is_tensor(t) or _expert_dim(t, E) is None:
                return t
            d = _expert_dim(t, E)
            if self.mode == "slice":
                return t.index_select(d, self.kept.to(t.device))
            t = t.clone()
            t.index_fill_(d, self.removed.to(t.device), float("-inf"))
            return t

        out = self.inner(hidden_states, *map(cut, args), **{k: cut(v) for k, v in kwargs.items()})
        if not (isinstance(out, tuple) and len(out) == 3):
            raise UserError(f"Unsupported router {type(self.inner).__name__}: its forward does not return "
                            "(logits, weights, indices)")
        logits, weights, idx = out
        if self.mode == "slice":
            full = logits.new_full((logits.shape[0], E), float("-inf"))
            full[:, self.kept.to(logits.device)] = logits
            return full, weights, self.kept.to(idx.device)[idx]
        full = logits.index_fill(-1, self.removed.to(logits.device), float("-inf"))
        if len(self.removed) and torch.isin(idx, self.removed.to(idx.device)).any():
            raise RuntimeError("a removed expert was selected: too few kept experts in the chosen groups")
        return full, weights, idx


def check_mask_groups(kept: Sequence[int], E: int, n_group: int, top_k: int, topk_group: int) -> str | None:
    """Why masking cannot guarantee top-k over kept experts in a group-limited router (None when it can).

    A group's score is the sum of its two best experts (DeepSeek-V3 rule), so a group with fewer than two
    kept experts scores -inf and is never chosen; every group that can be chosen must then hold enough kept
    experts for the top-k to be filled from the `topk_group` chosen groups."""
    size = E // n_group
    counts = [sum(1 for k in kept if k // size == g) for g in range(n_group)]
    live = [c for c in counts if c >= 2]
    need = math.ceil(top_k / topk_group)
    if len(live) < topk_group:
        return f"only {len(live)} groups keep two or more experts, fewer than topk_group={topk_group}"
    if min(live) < need:
        return f"a group keeps {min(live)} experts, fewer than top_k / topk_group = {need}"
    return None
