"""Expert statistics of an HF MoE model from calibration data (used by LightMoE and its baselines).

For every MoE layer (a module with a `gate` or `router` and an `experts` store of 3-D weights, as in
`Qwen2MoeSparseMoeBlock` / `OlmoeSparseMoeBlock` of transformers >= 5; see `tenfold.moe.families`) this
records, over calibration tokens (in the model's dtype and device; the statistics themselves in fp32):
routing frequency (share of tokens whose top-k holds the expert), gate mass (mean routing weight), the
router-logit similarity between experts (MC-SMoE's grouping signal; LightMoE's router-output similarity), the
mean router-output norm per token (LightMoE's per-layer threshold scale) and the cosine similarity of expert
outputs on a subsample of the layer's tokens (HC-SMoE's signal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tenfold.common.errors import UserError
from tenfold.moe.families import MoELayer, find_moe_layers


def moe_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(fully-qualified name, block) of every MoE block (see `tenfold.moe.families.find_moe_layers`)."""
    return [(l.name, l.block) for l in find_moe_layers(model)]


def require_moe(model: nn.Module) -> list[MoELayer]:
    """`find_moe_layers(model)`, or a `UserError` when the model has none (or an unsupported family)."""
    layers = find_moe_layers(model)
    if not layers:
        raise UserError(f"Invalid model: {type(model).__name__} has no MoE layers (modules with a `gate` or `router` "
                        "and `experts` holding 3-D gate_up_proj/down_proj, e.g. Qwen2MoeSparseMoeBlock)")
    return layers


def expert_weights(experts: nn.Module) -> tuple[Tensor, Tensor]:
    """Per-slot dense weights: gate_up (E, 2I, H) and down (E, H, I), materialised for compressed stores."""
    if hasattr(experts, "dense_weights"):
        return experts.dense_weights()
    return experts.gate_up_proj, experts.down_proj


def swiglu(gate_up: Tensor) -> Tensor:
    """Default gated activation: silu(gate) * up on (N, 2I) -> (N, I)."""
    g, u = gate_up.chunk(2, dim=-1)
    return F.silu(g) * u


def gate_of(experts: nn.Module) -> Callable[[Tensor], Tensor]:
    """The store's own gated activation (N, 2I) -> (N, I): transformers' `_apply_gate` (the family's act_fn,
    clamps and alphas included), or SwiGLU for stores that have none."""
    return getattr(experts, "_apply_gate", None) or getattr(experts, "apply_gate", None) or swiglu


def expert_forward(gate_up: Tensor, down: Tensor, x: Tensor, gate: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """One gated expert: x (N, H), gate_up (2I, H), down (H, I) -> (N, H), in the weights' dtype; `gate` is the
    family's gated activation (`gate_of(experts)`, SwiGLU by default). Same operations as transformers' eager
    experts loop, so a dense slot reproduces the original expert bit for bit."""
    h = (gate or swiglu)(F.linear(x.to(gate_up.dtype), gate_up))
    return F.linear(h, down)


@dataclass
class LayerStats:
    """Statistics of one MoE layer.

    Attributes
    ----------
    name : str
        Fully-qualified name of the MoE block.
    freq : Tensor of shape (E,)
        Share of tokens that route to each expert (sums to top_k).
    gate_mass : Tensor of shape (E,)
        Mean routing weight each expert receives per token (0 where not selected).
    logit_sim : Tensor of shape (E, E)
        Cosine similarity between experts' router-logit columns over the tokens.
    output_sim : Tensor of shape (E, E)
        Cosine similarity between experts' flattened outputs on a token subsample.
    tokens : int
        Calibration tokens seen.
    router_norm : float
        Mean L2 norm of the router's output logits (N, E) per token (removed slots' -inf counted as 0); the
        paper's summary (§6.1) scales each layer's threshold by it [what "router output" is: ours, the logits].
    """

    name: str
    freq: Tensor
    gate_mass: Tensor
    logit_sim: Tensor
    output_sim: Tensor
    tokens: int
    router_norm: float = float("nan")


@torch.no_grad()
def expert_stats(model: nn.Module, batches: Iterable[Tensor], *, sample_tokens: int = 256) -> list[LayerStats]:
    """Run calibration batches through `model` and collect `LayerStats` for every MoE layer.

    Parameters
    ----------
    model : nn.Module
        An HF MoE causal LM (e.g. `Qwen2MoeForCausalLM`), compressed or not.
    batches : iterable of LongTensor of shape (B, T)
        Calibration token ids.
    sample_tokens : int, default=256
        Tokens per layer on which every expert is run to measure output similarity.

    Returns
    -------
    list of LayerStats, in layer order.
    """
    layers = require_moe(model)
    acc = {l.name: {"freq": 0, "mass": 0, "logits": [], "x": [], "n": 0, "norm": 0.0} for l in layers}
    hooks = []
    for layer in layers:
        def hook(mod, args, out, name=layer.name, E=layer.num_experts):
            if not (isinstance(out, tuple) and len(out) == 3 and out[0].shape[-1] == E):
                raise UserError(f"Unsupported router {type(mod).__name__} in {name}: its forward does not return "
                                "(logits (N, E), weights (N, k), indices (N, k))")
            x = args[0].reshape(-1, args[0].shape[-1])
            logits, weights, idx = out  # (N, E), (N, k), (N, k)
            a = acc[name]
            a["freq"] = a["freq"] + F.one_hot(idx, E).sum((0, 1)).float()  # statistics in fp32, on the model's device
            a["mass"] = a["mass"] + torch.zeros(E, device=idx.device).index_add_(0, idx.reshape(-1),
                                                                                 weights.reshape(-1).float())
            lf = logits.float().masked_fill(torch.isinf(logits), 0.0)  # -inf: removed slots
            a["logits"].append(lf)
            a["norm"] = a["norm"] + float(lf.norm(dim=-1).sum())
            if sum(len(t) for t in a["x"]) < sample_tokens:
                a["x"].append(x.detach())  # kept in the model's dtype: the experts run in it below
            a["n"] += x.shape[0]
        hooks.append(layer.router.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        for b in batches:
            model(input_ids=b)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    out = []
    for layer in layers:
        name, block = layer.name, layer.block
        a = acc[name]
        if a["n"] == 0:
            raise UserError("Invalid batches: no calibration tokens were given")
        logits = F.normalize(torch.cat(a["logits"]).T, dim=1)  # (E, N)
        x = torch.cat(a["x"])[:sample_tokens]
        gu, dn = expert_weights(block.experts)
        gate = gate_of(block.experts)
        outs = torch.stack([expert_forward(gu[e], dn[e], x, gate).reshape(-1) for e in range(gu.shape[0])])
        outs = F.normalize(outs.float(), dim=1)
        out.append(LayerStats(name, a["freq"] / a["n"], a["mass"] / a["n"], logits @ logits.T, outs @ outs.T,
                              a["n"], a["norm"] / a["n"]))
    return out


def routing_histogram(model: nn.Module, batches: Iterable[Tensor]) -> dict[str, list[float]]:
    """{layer name: routing frequency per expert slot} on `batches` (JSON-ready, for plots)."""
    return {s.name: s.freq.tolist() for s in expert_stats(model, batches, sample_tokens=1)}


def routing_entropy(freq: Tensor, top_k: int) -> float:
    """Normalised entropy in [0, 1] of a layer's routing distribution (1 = uniform load)."""
    p = freq / freq.sum()
    h = -(p[p > 0] * p[p > 0].log()).sum()
    return float(h / torch.log(torch.tensor(float(len(p))))) if len(p) > 1 else 1.0
