"""Pure aggregation and initialisation maths over state dicts (name -> tensor); no Flower needed.

FedInit (Sun, Shen, Tao, "Understanding How Consistency Works in Federated Learning via Stage-wise Relaxed
Initialization", NeurIPS 2023, arXiv 2306.05706): client i starts local training from

    w_i^{t,0} = w^t + beta * (w^t - w_i^last)                                         (relaxed start)

where w_i^last is the model client i ended its previous local stage with. With beta = 0 this is FedAvg's start.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

StateDict = Mapping[str, torch.Tensor]


def _float_keys(sd: StateDict):
    return [k for k, v in sd.items() if torch.is_floating_point(v)]


def relaxed_start(global_sd: StateDict, last_sd: StateDict | None, beta: float) -> dict[str, torch.Tensor]:
    """FedInit's start w + beta * (w - last); `last_sd=None` (first participation) or beta = 0 returns a copy of w.

    Non-float entries (counters, masks) are copied from `global_sd` unchanged.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"Invalid beta: {beta}; expected 0 <= beta < 1")
    out = {k: v.detach().clone() for k, v in global_sd.items()}
    if last_sd is None or beta == 0.0:
        return out
    if set(last_sd) != set(global_sd):
        raise ValueError("last_sd and global_sd have different keys")
    for k in _float_keys(global_sd):
        out[k].add_(global_sd[k] - last_sd[k], alpha=beta)
    return out


def weighted_average(sds: Sequence[StateDict], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """sum_i w_i * sd_i / sum_i w_i, key by key (float entries; others taken from the first)."""
    if not sds or len(sds) != len(weights):
        raise ValueError(f"need as many weights as state dicts (got {len(sds)} and {len(weights)})")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"Invalid weights: sum {total}; expected > 0")
    out = {k: v.detach().clone() for k, v in sds[0].items()}
    for k in _float_keys(sds[0]):
        out[k] = sum(sd[k].double() * (w / total) for sd, w in zip(sds, weights)).to(sds[0][k].dtype)
    return out


def delta_equivalent(global_sd: StateDict, start_sd: StateDict, local_sd: StateDict) -> dict[str, torch.Tensor]:
    """w + (w_K - w_start): the upload that makes a model average equal to averaging updates from each start."""
    out = {k: v.detach().clone() for k, v in local_sd.items()}
    for k in _float_keys(global_sd):
        out[k] = global_sd[k] + (local_sd[k] - start_sd[k])
    return out


def dispersion(sds: Sequence[StateDict], weights: Sequence[float] | None = None) -> float:
    """Weighted mean of ||sd_i - mean||^2 over float entries: how far client uploads are from their average."""
    weights = list(weights) if weights is not None else [1.0] * len(sds)
    mean = weighted_average(sds, weights)
    total = float(sum(weights))
    acc = 0.0
    for sd, w in zip(sds, weights):
        acc += (w / total) * sum(float((sd[k].double() - mean[k].double()).pow(2).sum()) for k in _float_keys(mean))
    return acc


def sq_distance(a: StateDict, b: StateDict) -> float:
    """||a - b||^2 over float entries."""
    return sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in _float_keys(a))
