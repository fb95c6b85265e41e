"""Calibration metrics (ECE, AdaECE, classwise ECE, MCE, NLL, Brier), input checks and a reliability diagram.

The metrics follow the protocol of the calibration literature that paper 6 (GCE, arXiv 2604.06689) reports:
top-label ECE with 15 equal-width bins (Guo et al. 2017; identical to `torchmetrics` `CalibrationError`
with ``norm="l1"``), AdaECE with 15 equal-mass bins (Mukhoti et al. 2020, arXiv 2002.09437), classwise ECE
(Kull et al. 2019, arXiv 1910.12656), MCE (``norm="max"``), NLL and the multi-class Brier score.
Every metric takes probabilities ``(N, C)`` and integer labels ``(N,)`` and returns a Python float as a
fraction (not a percentage); `calibration_metrics` takes logits and returns them all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from tenfold.common.errors import UserError, check_choice

BIN_SCHEMES = ("equal_width", "equal_mass")


# ----------------------------------------------------------------------------------------------- input checks
def _as_tensor(name: str, x: Any, *, floating: bool) -> torch.Tensor:
    """Tensor view of `x` (tensor, numpy array or nested list), without copying tensors."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise UserError(f"Invalid {name}: cannot convert {type(x).__name__} to a tensor ({err})") from None
    if floating and not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def check_logits_labels(logits: Any, labels: Any, *, name: str = "logits",
                        n_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch of scores and labels; return them as tensors.

    Parameters
    ----------
    logits : array-like of shape (N, C)
        Real-valued scores (logits or probabilities, see `name`); must be finite.
    labels : array-like of shape (N,)
        Integer class indices in ``[0, C)``.
    name : str, default="logits"
        What `logits` is called in error messages.
    n_classes : int or None, default=None
        When given, `logits` must have exactly this many columns.

    Returns
    -------
    logits : Tensor of shape (N, C), floating point
    labels : Tensor of shape (N,), int64

    Raises
    ------
    UserError
        On a wrong number of dimensions, a length mismatch, fewer than 2 classes, non-integer or
        out-of-range labels, or NaN/inf scores.
    """
    z = _as_tensor(name, logits, floating=True)
    y = _as_tensor("labels", labels, floating=False)
    if z.ndim != 2:
        raise UserError(f"Invalid {name} shape: {tuple(z.shape)}; expected (N, C)")
    if z.shape[1] < 2:
        raise UserError(f"Invalid {name} shape: {tuple(z.shape)}; expected at least 2 classes (columns)")
    if n_classes is not None and z.shape[1] != n_classes:
        raise UserError(f"Invalid {name} shape: {tuple(z.shape)}; expected {n_classes} classes (columns)")
    if y.ndim != 1:
        raise UserError(f"Invalid labels shape: {tuple(y.shape)}; expected (N,)")
    if y.shape[0] != z.shape[0]:
        raise UserError(f"Shape mismatch: {name} has {z.shape[0]} rows but labels has {y.shape[0]}")
    if z.shape[0] == 0:
        raise UserError(f"Invalid {name}: empty (0 samples)")
    if y.is_floating_point() or y.dtype == torch.bool:
        if y.is_floating_point() and bool((y == y.round()).all()):
            y = y.long()
        else:
            raise UserError(f"Invalid labels dtype: {y.dtype}; expected integer class indices")
    y = y.long()
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= z.shape[1]:
        bad = lo if lo < 0 else hi
        raise UserError(f"Invalid labels: value {bad} out of range; expected integers in [0, {z.shape[1] - 1}]")
    if not bool(torch.isfinite(z).all()):
        raise UserError(f"Invalid {name}: contains NaN or inf")
    return z, y


def check_probs_labels(probs: Any, labels: Any, *, atol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """`check_logits_labels` plus: entries in [0, 1] and rows summing to 1 (within `atol`)."""
    p, y = check_logits_labels(probs, labels, name="probs")
    if bool((p < 0).any()) or bool((p > 1).any()):
        raise UserError("Invalid probs: entries outside [0, 1]; pass softmax probabilities (or use "
                        "calibration_metrics(logits, labels))")
    if bool(((p.sum(1) - 1).abs() > atol).any()):
        raise UserError("Invalid probs: rows do not sum to 1; pass softmax probabilities (or use "
                        "calibration_metrics(logits, labels))")
    return p, y


def _check_bins(n_bins: int, n: int | None = None) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise UserError(f"Invalid n_bins: {n_bins!r}; expected an integer >= 1")
    if n is not None and n < n_bins:
        raise UserError(f"Invalid n_bins: {n_bins} equal-mass bins need at least {n_bins} samples, got {n}")


# ----------------------------------------------------------------------------------------------- binning
def _bin_ids(conf: torch.Tensor, n_bins: int, scheme: str) -> torch.Tensor:
    """Bin index in [0, n_bins) for every confidence (N,).

    equal_width: bins [k/M, (k+1)/M), the last one closed, exactly as torchmetrics' `bucketize(right=True)`.
    equal_mass: sort (stably) and cut into `n_bins` runs of sizes differing by at most one, so every bin
    holds N/M samples even when confidences tie (ties may straddle a cut).
    """
    if scheme == "equal_width":
        edges = torch.linspace(0, 1, n_bins + 1, dtype=conf.dtype)
        return (torch.bucketize(conf, edges, right=True) - 1).clamp(0, n_bins - 1)
    order = torch.sort(conf, stable=True).indices
    sizes = [len(c) for c in np.array_split(np.arange(len(conf)), n_bins)]
    ids = torch.empty(len(conf), dtype=torch.long)
    ids[order] = torch.repeat_interleave(torch.arange(n_bins), torch.tensor(sizes))
    return ids


def binned_stats(conf: torch.Tensor, correct: torch.Tensor, n_bins: int = 15,
                 scheme: str = "equal_width") -> dict[str, torch.Tensor]:
    """Per-bin mean confidence, accuracy and count.

    Parameters
    ----------
    conf : Tensor of shape (N,)
        Confidence of each prediction, in [0, 1].
    correct : Tensor of shape (N,)
        1 where the prediction is right (or, for classwise ECE, where the label is the class), else 0.
    n_bins : int, default=15
    scheme : {"equal_width", "equal_mass"}, default="equal_width"

    Returns
    -------
    dict with "confidence", "accuracy", "count" (each a float64 Tensor of shape (n_bins,); empty bins have
    count 0 and mean 0) and "edges" (n_bins + 1,) for equal_width bins or the bins' (min, max) for
    equal_mass bins, as a Tensor of shape (n_bins, 2).
    """
    check_choice("scheme", scheme, BIN_SCHEMES)
    _check_bins(n_bins, len(conf) if scheme == "equal_mass" else None)
    conf = conf.double().contiguous()
    ids = _bin_ids(conf, n_bins, scheme)
    count = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, ids, torch.ones_like(conf))
    csum = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, ids, conf)
    asum = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, ids, correct.double())
    safe = count.clamp_min(1)
    out = {"confidence": csum / safe, "accuracy": asum / safe, "count": count}
    if scheme == "equal_width":
        out["edges"] = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    else:
        lo = torch.full((n_bins,), math.inf, dtype=torch.float64).scatter_reduce(0, ids, conf, "amin")
        hi = torch.full((n_bins,), -math.inf, dtype=torch.float64).scatter_reduce(0, ids, conf, "amax")
        out["edges"] = torch.stack([lo, hi], 1)
    return out


def _gap(stats: dict[str, torch.Tensor], norm: str) -> float:
    count, gap = stats["count"], (stats["accuracy"] - stats["confidence"]).abs()
    if norm == "max":
        return float(gap[count > 0].max())
    return float((count / count.sum() * gap).sum())


def _top_label(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    conf, pred = probs.max(1)
    return conf.contiguous(), (pred == labels).double()


# ----------------------------------------------------------------------------------------------- metrics
def ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error of the top label, equal-width bins (fraction in [0, 1]).

    ECE = sum_b (n_b / N) |acc_b - conf_b| over `n_bins` bins [k/M, (k+1)/M) of the max probability.
    Matches ``torchmetrics.classification.MulticlassCalibrationError(n_bins, norm="l1")``.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Softmax probabilities.
    labels : array-like of shape (N,)
    n_bins : int, default=15

    Examples
    --------
    >>> round(ece(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0])), 4)  # (0.1 + 0.8) / 2
    0.45
    """
    p, y = check_probs_labels(probs, labels)
    return _gap(binned_stats(*_top_label(p, y), n_bins, "equal_width"), "l1")


def adaece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Adaptive ECE: like `ece` but with equal-mass bins (each holds N / n_bins samples, +-1)."""
    p, y = check_probs_labels(probs, labels)
    return _gap(binned_stats(*_top_label(p, y), n_bins, "equal_mass"), "l1")


def mce(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Maximum calibration error: the largest |acc_b - conf_b| over non-empty equal-width bins."""
    p, y = check_probs_labels(probs, labels)
    return _gap(binned_stats(*_top_label(p, y), n_bins, "equal_width"), "max")


def classwise_ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Classwise ECE: the mean over classes c of the equal-width ECE of p(c|x) against 1[y = c].

    For class c, samples are binned by p_c; bin b contributes (n_b / N) |freq_b(y = c) - mean_b(p_c)|.
    This is the "SCE" of Nixon et al. 2019 and the classwise-ECE of Kull et al. 2019.
    """
    p, y = check_probs_labels(probs, labels)
    _check_bins(n_bins)
    total = 0.0
    for c in range(p.shape[1]):
        total += _gap(binned_stats(p[:, c], (y == c).double(), n_bins, "equal_width"), "l1")
    return total / p.shape[1]


def nll(probs: Any, labels: Any, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood -log p(y|x) in nats (probabilities clamped at `eps`)."""
    p, y = check_probs_labels(probs, labels)
    return float(-p.double().gather(1, y[:, None]).clamp_min(eps).log().mean())


def brier(probs: Any, labels: Any) -> float:
    """Multi-class Brier score: mean over samples of sum_c (p_c - 1[y = c])^2, in [0, 2]."""
    p, y = check_probs_labels(probs, labels)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    return float(((p.double() - onehot) ** 2).sum(1).mean())


def calibration_metrics(logits: Any, labels: Any, n_bins: int = 15) -> dict[str, float]:
    """Every metric of this module, from logits.

    Parameters
    ----------
    logits : array-like of shape (N, C)
    labels : array-like of shape (N,)
    n_bins : int, default=15
        Bins for ECE, AdaECE, classwise ECE and MCE.

    Returns
    -------
    dict with "accuracy", "ece", "adaece", "classwise_ece", "mce", "brier" (fractions) and "nll" (nats).
    NLL is computed from the log-softmax directly, so it stays finite for saturated softmaxes.
    """
    z, y = check_logits_labels(logits, labels)
    logp = torch.log_softmax(z.double(), 1)
    p = logp.exp()
    conf, correct = _top_label(p, y)
    return {
        "accuracy": float(correct.mean()),
        "ece": _gap(binned_stats(conf, correct, n_bins, "equal_width"), "l1"),
        "adaece": _gap(binned_stats(conf, correct, n_bins, "equal_mass"), "l1"),
        "classwise_ece": classwise_ece(p, y, n_bins),
        "mce": _gap(binned_stats(conf, correct, n_bins, "equal_width"), "max"),
        "nll": float(-logp.gather(1, y[:, None]).mean()),
        "brier": brier(p, y),
    }


def reliability_bins(logits: Any, labels: Any, n_bins: int = 15) -> dict[str, list[float]]:
    """JSON-ready equal-width top-label bins of a model's logits: confidence, accuracy, count per bin."""
    z, y = check_logits_labels(logits, labels)
    s = binned_stats(*_top_label(torch.softmax(z.double(), 1), y), n_bins, "equal_width")
    return {k: s[k].tolist() for k in ("confidence", "accuracy", "count")}


def plot_reliability(ax, bins: dict[str, list[float]], title: str = "") -> None:
    """Draw a reliability diagram on a matplotlib `ax` from `reliability_bins` output (or pooled sums).

    Bars are the accuracy per equal-width confidence bin; the red hatched part is the gap to the bin's mean
    confidence (above the bar: over-confident, inside it: under-confident); the diagonal is perfect
    calibration. The ECE of these bins is printed in the corner (for bins pooled over seeds, that is the
    ECE of the pooled predictions, not the mean of per-seed ECEs).
    """
    count = np.asarray(bins["count"], float)
    acc, conf = np.asarray(bins["accuracy"], float), np.asarray(bins["confidence"], float)
    m = len(count)
    centres = (np.arange(m) + 0.5) / m
    nz = count > 0
    ax.bar(centres[nz], acc[nz], width=1 / m, edgecolor="k", linewidth=0.4, color="C0", label="accuracy")
    lo, gap = np.minimum(acc, conf), np.abs(conf - acc)
    ax.bar(centres[nz], gap[nz], bottom=lo[nz], width=1 / m, fill=False, hatch="///", edgecolor="C3",
           linewidth=0.4, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    e = float((count / max(count.sum(), 1) * np.abs(acc - conf)).sum())
    ax.text(0.04, 0.9, f"ECE {100 * e:.2f}%", transform=ax.transAxes, fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
