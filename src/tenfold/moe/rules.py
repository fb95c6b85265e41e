"""LightMoE's rules on tiny tensors: per-layer threshold factors, router-similarity grouping, base weights, and
the earlier k-means grouping (used by `tenfold.moe.lightmoe`; sources in the fidelity note's LightMoE part, §6).

Tags: [paper-summary §x] = section x of ../shared/research/fidelity/elas-lightmoe.md (a detailed third-party
summary of arXiv 2603.12645's full text); [ours] = a choice the summary leaves open.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from tenfold.common.errors import UserError


def layer_threshold_factors(norms: Sequence[float], alpha: float = 1.0,
                            clamp: tuple[float, float] = (0.8, 1.2)) -> list[float]:
    """Per-layer threshold factors clip(exp(-alpha * z_l), lo, hi), z_l the standardised router-output norm.

    Layers with a larger router-output norm (deeper ones, per the paper's summary §6.1) get a smaller threshold,
    so fewer of their experts are replaced. All layers get 1.0 when the norms do not vary.
    """
    n = torch.tensor([float(v) for v in norms], dtype=torch.float64)
    if not torch.isfinite(n).all():
        raise UserError("Invalid stats: router-output norms are missing; recompute them with expert_stats")
    sd = n.std(unbiased=False) if len(n) > 1 else torch.tensor(0.0, dtype=torch.float64)
    z = (n - n.mean()) / sd if sd > 0 else torch.zeros_like(n)
    return torch.exp(-alpha * z).clamp(clamp[0], clamp[1]).tolist()


def group_experts(chosen: Sequence[int], importance: Tensor, sim: Tensor, group_size: int = 3) -> list[int]:
    """Group index (0..n_groups-1) of each chosen expert, by router-output similarity [paper-summary §6.2].

    The ceil(n / group_size) most important chosen experts are the representatives (group g = the g-th most
    important); the other chosen experts, most important first [ours], each join the representative with the
    highest `sim` (cosine similarity of router outputs) among the groups that still have room.
    Ties in importance: lower expert index first [ours].
    """
    chosen = list(chosen)
    if not chosen:
        return []
    ranked = sorted(chosen, key=lambda e: (-float(importance[e]), e))
    n_g = math.ceil(len(chosen) / group_size)
    reps = ranked[:n_g]
    group = {r: g for g, r in enumerate(reps)}
    size = [1] * n_g
    for e in ranked[n_g:]:
        open_ = [g for g in range(n_g) if size[g] < group_size]
        g = max(open_, key=lambda g: (float(sim[e, reps[g]]), -g))
        group[e] = g
        size[g] += 1
    return [group[e] for e in chosen]


def kmeans(x: Tensor, k: int, iters: int = 20) -> list[int]:
    """Deterministic k-means (farthest-point init) on rows of x (n, d) -> cluster id per row."""
    n = x.shape[0]
    if k >= n:
        return list(range(n))
    cent = [0]
    for _ in range(1, k):
        d = torch.cdist(x, x[cent]).min(1).values
        cent.append(int(d.argmax()))
    c = x[cent].clone()
    for _ in range(iters):
        a = torch.cdist(x, c).argmin(1)
        c = torch.stack([x[a == j].mean(0) if (a == j).any() else c[j] for j in range(k)])
    return torch.cdist(x, c).argmin(1).tolist()


def base_weights(importance: Tensor, weighting: str = "importance") -> Tensor:
    """Weights of a group's members in its shared base: importance / sum [paper-summary §6.2], or uniform for
    `weighting="mean"` and for a group whose importances are all zero [ours]."""
    w = importance.double()
    if weighting == "mean" or float(w.sum()) <= 0:
        return torch.full_like(w, 1.0 / len(w))
    return w / w.sum()
