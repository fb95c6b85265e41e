"""Train-time calibration baselines as drop-in `nn.Module` losses, and the registry of every loss.

* `FocalLoss`: -(1 - p_y)^gamma log p_y (Lin et al. 2017; for calibration Mukhoti et al. 2020,
  arXiv 2002.09437, who use gamma = 3).
* `FLSD53Loss`: focal loss with sample-dependent gamma = 5 when p_y < 0.2, else 3 (Mukhoti et al. 2020).
* `DualFocalLoss`: -(1 - p_y + p_j)^gamma log p_y, p_j the largest probability below p_y (Tao, Dong, Xu,
  "Dual Focal Loss for Calibration", ICML 2023, arXiv 2305.13665; p_j as in the official code
  Linwei94/ICML2023-DualFocalLoss:Losses/dual_focal_loss.py, 0 when p_y is the smallest; gamma = 5).
* `LabelSmoothingLoss`: CE against (1 - alpha) one-hot + alpha / C (Szegedy et al. 2016; alpha = 0.05 as
  in Mukhoti et al. 2020).
* `AdaFocalLoss`: focal loss with one gamma per validation confidence bin, updated once per epoch from the
  validation calibration gap of the bin, switching to inverse-focal loss for under-confident bins (Ghosh,
  Schaaf, Gormley, "AdaFocal: Calibration-aware Adaptive Focal Loss", NeurIPS 2022, arXiv 2211.11838;
  official code 3mcloud/adafocal: losses/adafocal.py, utils/train_utils.py, main.py).

All take logits (B, C) and int64 targets (B,) and support reduction "mean" | "sum" | "none". The registry
`LOSSES` also holds `GCELoss` (gce.py), which takes every `nn.CrossEntropyLoss` argument and shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.calibration.gce import REDUCTIONS, GCELoss, _check_batch, _reduce
from tenfold.calibration.metrics import check_logits_labels
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


class AdaFocalLoss(nn.Module):
    """AdaFocal: focal loss whose gamma is chosen per confidence bin and adapted to validation calibration.

    A training sample whose true-class probability p_y falls in bin b gets gamma_b; its loss is
    -(1 - p_y)^gamma_b log p_y when gamma_b > 0 (focal) and -(1 + p_y)^|gamma_b| log p_y when gamma_b < 0
    (inverse focal, which raises confidence). Once per epoch the training loop calls
    `update_from_validation(val_logits, val_labels)`: the validation set is cut into `n_bins` equal-mass
    bins of its top-label confidence, and with the gap E_b = mean confidence - accuracy of bin b,

        gamma_b <- gamma_b * exp(+lam * E_b)   if gamma_b > 0
        gamma_b <- gamma_b * exp(-lam * E_b)   otherwise,

    so an over-confident bin (E_b > 0) gets a larger focal gamma or a weaker inverse-focal one, and an
    under-confident bin the opposite. If the new |gamma_b| < switch_pt, it jumps to -switch_pt (from focal
    to inverse focal) or +switch_pt (back to focal); then it is clipped to [gamma_min, gamma_max]. The bins'
    edges become the new validation edges; bins keep their index, as in the official code. Before the first
    update every bin has gamma_init on equal-width edges k / n_bins. The gammas are chosen without gradient.

    Details follow the official code (3mcloud/adafocal, read in full; the paper body was not): training
    samples are binned by p_y (losses/adafocal.py, `get_gamma_per_sample`), validation samples by their
    max softmax (utils/metrics.py, `adaECE_error_mukhoti`, 15 equal-mass bins with edges interpolated
    between sorted confidences); a training p_y below the first interior edge is in bin 0, one above the
    last is in the last bin, one on an edge is in the upper bin; 1e-20 is added inside the power for
    stability. Our one deviation: the smallest validation confidence is counted in bin 0 (the official
    bins are open on the left, so that one sample falls in no bin). Every default below is the official
    code's (main.py); only the paper's abstract was read here, not its hyperparameter section.

    Parameters
    ----------
    n_bins : int, default=15
        Number of bins (official code `--num-bins` 15, Mukhoti et al.'s AdaECE bins).
    lam : float, default=1.0
        lambda, the update's step size (official code `--adafocal-lambda` 1.0).
    gamma_init : float, default=1.0
        Every bin's gamma before the first update (official code `--adafocal-gamma-initial` 1.0).
    gamma_max : float, default=20.0
        Upper clip of gamma (official code `--adafocal-gamma-max` 20.0).
    gamma_min : float, default=-2.0
        Lower clip of gamma, i.e. the strongest inverse-focal loss (official code `--adafocal-gamma-min`).
    switch_pt : float, default=0.2
        |gamma| below which the loss switches between focal and inverse focal (official code
        `--adafocal-switch-pt` 0.2).
    reduction : {"mean", "sum", "none"}, default="mean"
        "mean", like the other losses here (ours); the official code sums over the batch.

    Attributes
    ----------
    gammas : Tensor of shape (n_bins,), float64 buffer
        Current gamma per bin.
    edges : Tensor of shape (n_bins - 1,), float64 buffer
        Interior bin edges on p_y used by `forward`.
    n_updates : Tensor, int64 buffer
        Number of `update_from_validation` calls so far.

    All three are buffers, so `state_dict`/`load_state_dict` resume the schedule exactly. The official
    loop updates once per epoch (`--update-gamma-every -1`), after the epoch's last batch and on the same
    validation split that is later used for temperature scaling.

    References
    ----------
    Ghosh, Schaaf, Gormley. AdaFocal: Calibration-aware Adaptive Focal Loss. NeurIPS 2022, arXiv 2211.11838.

    Examples
    --------
    >>> z, y = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> bool(torch.allclose(AdaFocalLoss(gamma_init=3.0)(z, y), FocalLoss(3.0)(z, y)))
    True
    >>> loss = AdaFocalLoss(n_bins=1)
    >>> _ = loss.update_from_validation(torch.tensor([[4.0, 0.0], [0.0, 4.0]]), torch.tensor([1, 0]))
    >>> bool(loss.gammas[0] > 1)   # confident and always wrong: over-confident, so more focal
    True
    """

    def __init__(self, n_bins: int = 15, *, lam: float = 1.0, gamma_init: float = 1.0, gamma_max: float = 20.0,
                 gamma_min: float = -2.0, switch_pt: float = 0.2, reduction: str = "mean"):
        super().__init__()
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise UserError(f"Invalid n_bins: {n_bins!r}; expected an integer >= 1")
        for name, v in (("lam", lam), ("gamma_init", gamma_init), ("gamma_max", gamma_max),
                        ("gamma_min", gamma_min), ("switch_pt", switch_pt)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UserError(f"Invalid {name}: {v!r}; expected a finite number")
        if lam < 0:
            raise UserError(f"Invalid lam: {lam!r}; expected a number >= 0")
        if switch_pt < 0:
            raise UserError(f"Invalid switch_pt: {switch_pt!r}; expected a number >= 0")
        if not gamma_min <= gamma_init <= gamma_max:
            raise UserError(f"Invalid gamma_init: {gamma_init!r}; expected gamma_min <= gamma_init <= gamma_max "
                            f"({gamma_min} <= ... <= {gamma_max})")
        check_choice("reduction", reduction, REDUCTIONS)
        self.n_bins, self.lam, self.switch_pt = int(n_bins), float(lam), float(switch_pt)
        self.gamma_max, self.gamma_min, self.reduction = float(gamma_max), float(gamma_min), reduction
        self.register_buffer("gammas", torch.full((n_bins,), float(gamma_init), dtype=torch.float64))
        self.register_buffer("edges", torch.arange(1, n_bins, dtype=torch.float64) / n_bins)
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    def gamma_of(self, p_true: torch.Tensor) -> torch.Tensor:
        """gamma (B,) float64 of each sample from its true-class probability p_y (B,): its bin's gamma."""
        p = p_true.detach().double()
        bins = torch.bucketize(p, self.edges.to(p.device), right=True)
        return self.gammas.to(p.device)[bins]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        _, logpt = _logp_target(input, target)
        pt = logpt.exp()
        gamma = self.gamma_of(pt).to(pt.dtype)                                 # (B,), no gradient
        sign, mag = gamma.sign(), gamma.abs()
        return _reduce(-((1 - sign * pt + 1e-20) ** mag) * logpt, self.reduction)

    @torch.no_grad()
    def update_from_validation(self, val_logits: Any, val_labels: Any) -> dict[str, list[float]]:
        """One AdaFocal update from the validation logits (N, C) and labels (N,), N >= n_bins.

        Returns the bins it used, JSON-ready: "gap" (mean confidence - accuracy), "count", "edges"
        (interior, n_bins - 1) and the new "gamma" per bin.
        """
        z, y = check_logits_labels(val_logits, val_labels, name="val_logits")
        z, y = z.detach().cpu(), y.cpu()                                       # the bins' statistics, on the CPU
        m = self.n_bins
        if len(z) < m:
            raise UserError(f"Invalid val_logits: {len(z)} samples for n_bins={m}; need at least {m}")
        conf, pred = torch.softmax(z.double(), 1).max(1)                       # (N,)
        correct = (pred == y).double()
        ordered = np.sort(conf.numpy())
        n = len(ordered)
        # equal-mass edges: the sorted confidences interpolated at positions k * n / m (official code)
        inner = torch.from_numpy(np.interp(np.linspace(0, n, m + 1), np.arange(n), ordered)[1:-1].copy())
        bins = torch.bucketize(conf, inner, right=False)                       # bins (e_b, e_{b+1}], bin 0 closed
        count = torch.bincount(bins, minlength=m).double()
        conf_sum = torch.zeros(m, dtype=torch.float64).index_add_(0, bins, conf)
        acc_sum = torch.zeros(m, dtype=torch.float64).index_add_(0, bins, correct)
        gap = torch.where(count > 0, (conf_sum - acc_sum) / count.clamp_min(1), torch.zeros(()))   # (m,)
        new = []
        for g, e in zip(self.gammas.tolist(), gap.tolist()):
            g = g * math.exp(self.lam * e) if g > 0 else g * math.exp(-self.lam * e)
            if abs(g) < self.switch_pt:                                        # focal <-> inverse focal
                g = -self.switch_pt if g > 0 else self.switch_pt
            new.append(min(max(g, self.gamma_min), self.gamma_max))
        self.gammas.copy_(torch.tensor(new, dtype=torch.float64))             # copy_ keeps the buffers' device
        self.edges.copy_(inner)
        self.n_updates += 1
        return {"gap": gap.tolist(), "count": count.tolist(), "edges": inner.tolist(), "gamma": new}

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, lam={self.lam}, gamma_min={self.gamma_min}, gamma_max={self.gamma_max}"


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """`nn.CrossEntropyLoss` with the same input checks as the other losses (the reference arm)."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        return super().forward(input, target)


@dataclass(frozen=True)
class LossInfo:
    """A registered loss: how to build it and where it comes from.

    `hyper` maps a constructor keyword to its default, so experiments can expose them as config fields.
    `needs_validation` marks losses whose state the training loop must update from validation logits
    once per epoch (`loss.update_from_validation(val_logits, val_labels)`).
    """

    name: str
    label: str
    build: Callable[..., nn.Module]
    reference: str
    hyper: dict[str, Any] = field(default_factory=dict)
    needs_validation: bool = False


LOSSES: Registry[LossInfo] = Registry("calibration loss")
for _info in (
    LossInfo("ce", "CE", CrossEntropyLoss, "cross-entropy"),
    LossInfo("ls", "Label smoothing", LabelSmoothingLoss, "Szegedy et al. 2016", {"alpha": 0.05}),
    LossInfo("focal", "Focal", FocalLoss, "Mukhoti et al. 2020, arXiv 2002.09437", {"gamma": 3.0}),
    LossInfo("flsd53", "FLSD-53", FLSD53Loss, "Mukhoti et al. 2020, arXiv 2002.09437"),
    LossInfo("dual_focal", "Dual focal", DualFocalLoss, "Tao et al. 2023, arXiv 2305.13665", {"gamma": 5.0}),
    LossInfo("adafocal", "AdaFocal", AdaFocalLoss, "Ghosh et al. 2022, arXiv 2211.11838",
             {"n_bins": 15, "lam": 1.0, "gamma_init": 1.0, "gamma_max": 20.0, "gamma_min": -2.0, "switch_pt": 0.2},
             needs_validation=True),
    LossInfo("gce", "GCE", GCELoss, "Zhan et al. 2026, arXiv 2604.06689", {"reg_weight": 1.0}),
):
    LOSSES.register(_info.name, _info)


def make_loss(name: str, **kwargs: Any) -> nn.Module:
    """A fresh loss module by registry name (ce, ls, focal, flsd53, dual_focal, adafocal, gce) with overrides.

    Examples
    --------
    >>> make_loss("focal", gamma=2.0)
    FocalLoss()
    """
    return LOSSES.get(name).build(**kwargs)
