"""Train-time calibration baselines as drop-in `nn.Module` losses, and the registry of every loss.

* `FocalLoss`: -(1 - p_y)^gamma log p_y (Lin et al. 2017; for calibration Mukhoti et al. 2020,
  arXiv 2002.09437, who use gamma = 3).
* `FLSD53Loss`: focal loss with sample-dependent gamma = 5 when p_y < 0.2, else 3 (Mukhoti et al. 2020).
* `DualFocalLoss`: -(1 - p_y + p_j)^gamma log p_y, p_j the largest probability below p_y (Tao, Dong, Xu,
  "Dual Focal Loss for Calibration", ICML 2023, arXiv 2305.13665; p_j as in the official code
  Linwei94/ICML2023-DualFocalLoss:Losses/dual_focal_loss.py, 0 when p_y is the smallest; gamma = 5).
* `LabelSmoothingLoss`: CE against (1 - alpha) one-hot + alpha / C (Szegedy et al. 2016; alpha = 0.05 as
  in Mukhoti et al. 2020).

All take logits (B, C) and int64 targets (B,) and support reduction "mean" | "sum" | "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.calibration.gce import REDUCTIONS, GCELoss, _check_batch, _reduce
from tenfold.common.errors import UserError, check_choice
from tenfold.common.registry import Registry


def _check_gamma(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or value < 0:
        raise UserError(f"Invalid {name}: {value!r}; expected a number >= 0")


def _logp_target(input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log-softmax (B, C) and log p_y (B,)."""
    logp = F.log_softmax(input, dim=1)
    return logp, logp.gather(1, target[:, None]).squeeze(1)


class FocalLoss(nn.Module):
    """Focal loss -(1 - p_y)^gamma log p_y; gamma = 0 is cross-entropy.

    Parameters
    ----------
    gamma : float, default=3.0
    reduction : {"mean", "sum", "none"}, default="mean"

    Examples
    --------
    >>> z, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    >>> bool(FocalLoss(gamma=0.0)(z, y) == F.cross_entropy(z, y))
    True
    """

    def __init__(self, gamma: float = 3.0, *, reduction: str = "mean"):
        super().__init__()
        _check_gamma("gamma", gamma)
        check_choice("reduction", reduction, REDUCTIONS)
        self.gamma, self.reduction = float(gamma), reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        _, logpt = _logp_target(input, target)
        return _reduce(-((1 - logpt.exp()) ** self.gamma) * logpt, self.reduction)


class FLSD53Loss(nn.Module):
    """Focal loss with sample-dependent gamma (FLSD-53): gamma_hi where p_y < threshold, else gamma_lo.

    Parameters
    ----------
    gamma_lo : float, default=3.0
    gamma_hi : float, default=5.0
    threshold : float, default=0.2
    reduction : {"mean", "sum", "none"}, default="mean"
    """

    def __init__(self, gamma_lo: float = 3.0, gamma_hi: float = 5.0, threshold: float = 0.2, *,
                 reduction: str = "mean"):
        super().__init__()
        _check_gamma("gamma_lo", gamma_lo)
        _check_gamma("gamma_hi", gamma_hi)
        if not 0 < threshold < 1:
            raise UserError(f"Invalid threshold: {threshold!r}; expected a number in (0, 1)")
        check_choice("reduction", reduction, REDUCTIONS)
        self.gamma_lo, self.gamma_hi, self.threshold, self.reduction = gamma_lo, gamma_hi, threshold, reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        _, logpt = _logp_target(input, target)
        pt = logpt.exp()
        gamma = torch.where(pt.detach() < self.threshold, self.gamma_hi, self.gamma_lo)   # (B,), no gradient
        return _reduce(-((1 - pt) ** gamma) * logpt, self.reduction)


class DualFocalLoss(nn.Module):
    """Dual focal loss -(1 - p_y + p_j)^gamma log p_y, p_j = the largest class probability below p_y.

    Parameters
    ----------
    gamma : float, default=5.0
    reduction : {"mean", "sum", "none"}, default="mean"
    """

    def __init__(self, gamma: float = 5.0, *, reduction: str = "mean"):
        super().__init__()
        _check_gamma("gamma", gamma)
        check_choice("reduction", reduction, REDUCTIONS)
        self.gamma, self.reduction = float(gamma), reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        logp, logpt = _logp_target(input, target)
        p, pt = logp.exp(), logpt.exp()
        below = p < pt[:, None]                                        # (B, C) classes strictly below p_y
        pj = torch.where(below, p, torch.zeros_like(p)).max(1).values  # (B,), 0 if none is below
        return _reduce(-((1 - pt + pj) ** self.gamma) * logpt, self.reduction)


class LabelSmoothingLoss(nn.Module):
    """Cross-entropy against the smoothed target (1 - alpha) one-hot + alpha / C.

    Parameters
    ----------
    alpha : float, default=0.05
        Smoothing in [0, 1).
    reduction : {"mean", "sum", "none"}, default="mean"
    """

    def __init__(self, alpha: float = 0.05, *, reduction: str = "mean"):
        super().__init__()
        if not 0 <= alpha < 1:
            raise UserError(f"Invalid alpha: {alpha!r}; expected a number in [0, 1)")
        check_choice("reduction", reduction, REDUCTIONS)
        self.alpha, self.reduction = float(alpha), reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        return F.cross_entropy(input, target, label_smoothing=self.alpha, reduction=self.reduction)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """`nn.CrossEntropyLoss` with the same input checks as the other losses (the reference arm)."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        return super().forward(input, target)


@dataclass(frozen=True)
class LossInfo:
    """A registered loss: how to build it and where it comes from.

    `hyper` maps a constructor keyword to its default, so experiments can expose them as config fields.
    """

    name: str
    label: str
    build: Callable[..., nn.Module]
    reference: str
    hyper: dict[str, Any] = field(default_factory=dict)


LOSSES: Registry[LossInfo] = Registry("calibration loss")
for _info in (
    LossInfo("ce", "CE", CrossEntropyLoss, "cross-entropy"),
    LossInfo("ls", "Label smoothing", LabelSmoothingLoss, "Szegedy et al. 2016", {"alpha": 0.05}),
    LossInfo("focal", "Focal", FocalLoss, "Mukhoti et al. 2020, arXiv 2002.09437", {"gamma": 3.0}),
    LossInfo("flsd53", "FLSD-53", FLSD53Loss, "Mukhoti et al. 2020, arXiv 2002.09437"),
    LossInfo("dual_focal", "Dual focal", DualFocalLoss, "Tao et al. 2023, arXiv 2305.13665", {"gamma": 5.0}),
    LossInfo("gce", "GCE", GCELoss, "Zhan et al. 2026, arXiv 2604.06689", {"reg_weight": 1.0}),
):
    LOSSES.register(_info.name, _info)


def make_loss(name: str, **kwargs: Any) -> nn.Module:
    """A fresh loss module by registry name (ce, ls, focal, flsd53, dual_focal, gce) with keyword overrides.

    Examples
    --------
    >>> make_loss("focal", gamma=2.0)
    FocalLoss()
    """
    return LOSSES.get(name).build(**kwargs)
