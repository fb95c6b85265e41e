"""Generative cross-entropy (GCE) and adaptive piecewise temperature scaling (ATS).

Paper: Qipeng Zhan, Zhuoping Zhou, Li Shen, "Towards Accurate and Calibrated Classification: Regularizing
Cross-Entropy From A Generative Perspective", arXiv 2604.06689 (v1, 2026; v2 retitled "Generative
Cross-Entropy: A Strictly Proper Loss for Data-Efficient Classification", acronym GenCE). No public code.

Implemented: `GCELoss`, a drop-in for `nn.CrossEntropyLoss` that maximises p(x|y) by Bayes' rule over the
batch, i.e. CE plus a class-level confidence regulariser; `TemperatureScaling` (Guo et al. 2017) and
`AdaptiveTemperatureScaling` (one temperature per equal-mass confidence bin, fitted by NLL), both
scikit-learn-style post-hoc calibrators on logits. Not implemented: the paper's OOD experiments, the
GenCE-v2 "completeness condition" analysis. What is reconstruction (the paper body was not available):

* the regulariser's exact form: with the empirical p(x) = 1/B over a batch and p(y) estimated by
  (1/B) sum_j p(y|x_j), -log p(x_i|y_i) = CE_i + log sum_j p(y_i|x_j) (the abstract's "CE augmented with a
  class-level confidence regularizer"); its weight `reg_weight`, its normaliser (`normalizer`) and the
  class-prior estimate (`prior`: this batch only, or a running average across batches) are parameters;
* ATS: the binning variable, the bin count, equal-mass bins and the NLL objective are our choices.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from tenfold.calibration.metrics import _as_tensor, check_logits_labels
from tenfold.common.errors import UserError, check_choice

PRIORS = ("batch", "ema")
NORMALIZERS = ("sum", "mean")
REDUCTIONS = ("mean", "sum", "none")


def _check_batch(input: torch.Tensor, target: torch.Tensor) -> None:
    """Cheap shape and label-range checks for the training-time losses (no NaN scan: like CE)."""
    if input.ndim != 2:
        raise UserError(f"Invalid input shape: {tuple(input.shape)}; expected logits (B, C)")
    if target.ndim != 1 or target.shape[0] != input.shape[0]:
        raise UserError(f"Shape mismatch: input {tuple(input.shape)} and target {tuple(target.shape)}; "
                        "expected (B, C) and (B,)")
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise UserError(f"Invalid target dtype: {target.dtype}; expected integer class indices")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= input.shape[1]):
        raise UserError(f"Invalid target: labels out of range; expected integers in [0, {input.shape[1] - 1}]")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


# ------------------------------------------------------------------------------------------------ the loss
def gce_loss(input: torch.Tensor, target: torch.Tensor, *, reg_weight: float = 1.0, normalizer: str = "sum",
             log_prior: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Functional GCE over one batch: CE_i + reg_weight * log-normaliser of class y_i.

    Parameters
    ----------
    input : Tensor of shape (B, C)
        Logits.
    target : Tensor of shape (B,)
        Class indices.
    reg_weight : float, default=1.0
        lambda; 1 is the exact -log p(x|y) of the Bayes derivation, 0 is plain CE.
    normalizer : {"sum", "mean"}, default="sum"
        "sum": log sum_j p(y_i|x_j) (the derivation; the loss is >= 0); "mean": log of the batch mean,
        i.e. minus log B, a constant shift with the same gradient.
    log_prior : Tensor of shape (C,) or None
        When given, the log of an externally estimated mean class mass (1/B) sum_j p(c|x_j) to use instead
        of this batch's (what `GCELoss(prior="ema")` passes); must carry the gradient it should.
    reduction : {"mean", "sum", "none"}, default="mean"

    Returns
    -------
    Tensor: scalar, or shape (B,) with reduction="none" (each sample's term depends on the whole batch).
    """
    logp = F.log_softmax(input, dim=1)                         # (B, C)
    ce = -logp.gather(1, target[:, None]).squeeze(1)           # (B,)
    log_b = math.log(input.shape[0])
    if log_prior is None:
        log_prior = torch.logsumexp(logp, dim=0) - log_b       # (C,) log of the batch-mean p(c|x)
    reg = log_prior[target]                                    # (B,) classes absent from target add nothing
    if normalizer == "sum":
        reg = reg + log_b
    return _reduce(ce + reg_weight * reg, reduction)


class GCELoss(nn.Module):
    """Generative cross-entropy: -log p(x|y) with p(y) estimated from the model's own predictions.

    By Bayes' rule with p(x) = 1/B over the batch and p(y) = (1/B) sum_j p_theta(y|x_j),

        L = -(1/B) sum_i log[ p(y_i|x_i) / sum_j p(y_i|x_j) ]
          = CE + (1/B) sum_i log sum_j p(y_i|x_j),

    the second term is a class-level confidence regulariser: it penalises a high *average* predicted mass
    on each label class across the batch. Drop it in where `nn.CrossEntropyLoss` is used.

    Parameters
    ----------
    reg_weight : float, default=1.0
        lambda >= 0 on the regulariser (1 = the derivation, which lists no extra hyperparameter).
    prior : {"batch", "ema"}, default="batch"
        How p(y) is estimated. "batch": from this batch only, so a class with no sample in the batch
        contributes no term (its mass is not penalised) and small batches make the estimate noisy. "ema":
        a mixture (1 - momentum) * batch mean + momentum * running mean over earlier batches (the running
        part is a buffer, without gradient); needs `n_classes`. Reconstruction: the paper's choice is unknown.
    normalizer : {"sum", "mean"}, default="sum"
        Whether the 1/B of p(x) is kept inside the log; a constant shift (log B), same gradients.
    momentum : float, default=0.9
        Weight of the running prior for prior="ema", in [0, 1).
    n_classes : int or None, default=None
        Number of classes; required for prior="ema" (size of the running prior).
    reduction : {"mean", "sum", "none"}, default="mean"

    Attributes
    ----------
    running_prior : Tensor of shape (n_classes,)
        Only for prior="ema": running mean of the batch-mean softmax, updated in train mode.

    Shape
    -----
    input (B, C) logits, target (B,) int64; output scalar or (B,) for reduction="none".

    References
    ----------
    Zhan, Zhou, Shen. Towards Accurate and Calibrated Classification: Regularizing Cross-Entropy From A
    Generative Perspective. arXiv 2604.06689, 2026.

    Examples
    --------
    >>> z, y = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    >>> ce = nn.functional.cross_entropy(z, y)
    >>> round(float(GCELoss(reg_weight=0.0)(z, y) - ce), 6)
    0.0
    >>> bool(GCELoss()(z, y) > 0)
    True
    """

    def __init__(self, reg_weight: float = 1.0, *, prior: str = "batch", normalizer: str = "sum",
                 momentum: float = 0.9, n_classes: int | None = None, reduction: str = "mean"):
        super().__init__()
        if not (isinstance(reg_weight, (int, float)) and reg_weight >= 0 and math.isfinite(reg_weight)):
            raise UserError(f"Invalid reg_weight: {reg_weight!r}; expected a finite number >= 0")
        check_choice("prior", prior, PRIORS)
        check_choice("normalizer", normalizer, NORMALIZERS)
        check_choice("reduction", reduction, REDUCTIONS)
        if not 0 <= momentum < 1:
            raise UserError(f"Invalid momentum: {momentum!r}; expected a number in [0, 1)")
        if prior == "ema" and (n_classes is None or n_classes < 2):
            raise UserError(f"Invalid n_classes: {n_classes!r}; prior='ema' needs the number of classes (>= 2)")
        self.reg_weight, self.prior, self.normalizer = float(reg_weight), prior, normalizer
        self.momentum, self.n_classes, self.reduction = float(momentum), n_classes, reduction
        if prior == "ema":
            self.register_buffer("running_prior", torch.full((n_classes,), 1.0 / n_classes))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_batch(input, target)
        log_prior = None
        if self.prior == "ema":
            if input.shape[1] != self.n_classes:
                raise UserError(f"Invalid input shape: {tuple(input.shape)}; GCELoss was built for "
                                f"n_classes={self.n_classes}")
            batch_mean = torch.softmax(input, 1).mean(0)                       # (C,), with gradient
            running = self.running_prior.to(batch_mean.dtype)
            mix = (1 - self.momentum) * batch_mean + self.momentum * running   # (C,)
            log_prior = mix.clamp_min(1e-30).log()
            if self.training:
                with torch.no_grad():
                    self.running_prior.copy_(mix.detach().to(self.running_prior.dtype))
        return gce_loss(input, target, reg_weight=self.reg_weight, normalizer=self.normalizer,
                        log_prior=log_prior, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reg_weight={self.reg_weight}, prior={self.prior!r}, normalizer={self.normalizer!r}"


# --------------------------------------------------------------------------------------- post-hoc calibrators
def _like_input(out: torch.Tensor, original: Any):
    """Return numpy when the caller passed numpy, else a tensor in the input's dtype."""
    if isinstance(original, torch.Tensor):
        return out.to(original.dtype if original.is_floating_point() else torch.float32)
    return out.float().numpy()


def _fit_log_temperature(z: torch.Tensor, y: torch.Tensor, bins: torch.Tensor, n_bins: int,
                         init: torch.Tensor, free: torch.Tensor, prior_std: float | None,
                         max_iter: int) -> torch.Tensor:
    """MAP fit of log T_b (one per bin; bins where `free` is False stay at `init`) with L-BFGS.

    Objective: mean NLL + sum_b (log T_b - init_b)^2 / (2 prior_std^2 N), i.e. the posterior under a
    Gaussian prior on each log T_b centred at `init`; prior_std None is plain maximum likelihood.
    z (N, C) float64, y (N,), bins (N,) in [0, n_bins); returns log T (n_bins,).
    """
    log_t = init.clone().requires_grad_(True)
    anchor = init.detach()
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)
    free_f = free.to(z.dtype)

    def closure():
        opt.zero_grad()
        eff = free_f * log_t + (1 - free_f) * anchor                          # (n_bins,)
        loss = F.cross_entropy(z * torch.exp(-eff[bins])[:, None], y)
        if prior_std is not None:
            loss = loss + ((eff - anchor) ** 2 * free_f).sum() / (2 * prior_std ** 2 * len(y))
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return free_f * log_t + (1 - free_f) * anchor


class TemperatureScaling(BaseEstimator):
    """Temperature scaling (Guo et al. 2017): one T > 0 fitted by NLL on held-out logits; p = softmax(z / T).

    Parameters
    ----------
    max_iter : int, default=200
        L-BFGS iterations (strong-Wolfe line search) on log T.

    Attributes
    ----------
    temperature_ : float
        The fitted temperature (> 1 softens over-confident models).
    n_classes_ : int

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> z = 5 * torch.randn(500, 3, generator=g); y = torch.distributions.Categorical(logits=z / 5).sample()
    >>> ts = TemperatureScaling().fit(z, y)
    >>> 3.5 < ts.temperature_ < 7.0
    True
    """

    def __init__(self, *, max_iter: int = 200):
        self.max_iter = max_iter

    def fit(self, logits: Any, y: Any) -> "TemperatureScaling":
        """Fit T on validation logits (N, C) and labels (N,); returns self."""
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise UserError(f"Invalid max_iter: {self.max_iter!r}; expected an integer >= 1")
        z, y = check_logits_labels(logits, y)
        z = z.double()
        zero = torch.zeros(len(z), dtype=torch.long)
        log_t = _fit_log_temperature(z, y, zero, 1, torch.zeros(1, dtype=z.dtype), torch.ones(1, dtype=torch.bool),
                                     None, self.max_iter)
        self.temperature_ = float(log_t.exp())
        self.n_classes_ = z.shape[1]
        return self

    def transform(self, logits: Any):
        """Calibrated logits z / T, shape (N, C), same type (numpy or tensor) as the input."""
        check_is_fitted(self, "temperature_")
        z = _as_tensor("logits", logits, floating=True)
        _check_logits_only(z, self.n_classes_)
        return _like_input(z.double() / self.temperature_, logits)

    def predict_proba(self, logits: Any):
        """softmax(transform(logits)), shape (N, C)."""
        z = _as_tensor("logits", self.transform(logits), floating=True)
        return _like_input(torch.softmax(z.double(), 1), logits)


def _check_logits_only(z: torch.Tensor, n_classes: int) -> None:
    if z.ndim != 2 or z.shape[1] != n_classes:
        raise UserError(f"Invalid logits shape: {tuple(z.shape)}; expected (N, {n_classes}) as in fit")
    if not bool(torch.isfinite(z).all()):
        raise UserError("Invalid logits: contains NaN or inf")


class AdaptiveTemperatureScaling(BaseEstimator):
    """Adaptive piecewise temperature scaling (ATS): one temperature per confidence bin.

    Samples are grouped by a binning variable of their *uncalibrated* logits (by default the max softmax
    probability) into `n_bins` bins, equal-mass by default (quantiles of the validation set). Bin m gets
    its own T_m > 0, fitted jointly by minimising the validation NLL of softmax(z / T_{m(z)}) with L-BFGS
    on log T, under a Gaussian prior that keeps each log T_m near the global temperature (`prior_std`). Because each sample's logits are divided by one positive number, the arg-max (and so the
    accuracy) never changes. Bins with fewer than `min_samples_per_bin` validation samples (possible with
    ties or equal-width bins) fall back to the single global temperature. Confidences of samples in
    adjacent bins may cross after scaling; this is not prevented. This is our reconstruction of the
    paper's ATS (see the module docstring); Bin-wise TS (Ji et al. 2019, arXiv 1908.11528) is the closest
    published form.

    Parameters
    ----------
    n_bins : int, default=10
        Number of bins M.
    mode : {"equal_mass", "equal_width"}, default="equal_mass"
        Bin edges at validation quantiles, or evenly spaced (over [0, 1] for confidence, over the
        validation range for logit_norm).
    bin_by : {"confidence", "logit_norm"}, default="confidence"
        The binning variable: max softmax probability, or the L2 norm of the logit vector.
    min_samples_per_bin : int, default=20
        A bin needs this many validation samples to get its own temperature; fit refuses validation
        sets smaller than n_bins * min_samples_per_bin.
    prior_std : float or None, default=0.5
        Standard deviation of a Gaussian prior on each log T_m, centred at the global temperature's log:
        the fit maximises the posterior (NLL summed over the validation set plus
        sum_m (log T_m - log T_global)^2 / (2 prior_std^2)). None is plain maximum likelihood, which diverges
        (T_m -> 0) in any bin whose validation samples are all correctly classified; 0.5 lets a bin's
        temperature differ from the global one by a factor e^0.5 = 1.65 at one standard deviation.
    max_iter : int, default=200
        L-BFGS iterations.

    Attributes
    ----------
    edges_ : ndarray of shape (n_bins - 1,)
        Interior bin edges on the binning variable.
    temperatures_ : ndarray of shape (n_bins,)
        T_m per bin (the global temperature where a bin fell back).
    bin_counts_ : ndarray of shape (n_bins,)
        Validation samples per bin.
    temperature_ : float
        The global (plain TS) temperature, fitted first and used as fallback and initial value.
    n_classes_ : int

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> z = 4 * torch.randn(1000, 5, generator=g); y = torch.randint(0, 5, (1000,), generator=g)
    >>> ats = AdaptiveTemperatureScaling(n_bins=5).fit(z, y)
    >>> bool((ats.transform(z).argmax(1) == z.argmax(1)).all())
    True
    """

    def __init__(self, n_bins: int = 10, *, mode: str = "equal_mass", bin_by: str = "confidence",
                 min_samples_per_bin: int = 20, prior_std: float | None = 0.5, max_iter: int = 200):
        self.n_bins = n_bins
        self.mode = mode
        self.bin_by = bin_by
        self.min_samples_per_bin = min_samples_per_bin
        self.prior_std = prior_std
        self.max_iter = max_iter

    def _score(self, z: torch.Tensor) -> torch.Tensor:
        """The binning variable of each row of z (N, C) -> (N,)."""
        if self.bin_by == "confidence":
            return torch.softmax(z, 1).max(1).values
        return z.norm(dim=1)

    def _bins(self, z: torch.Tensor) -> torch.Tensor:
        edges = torch.as_tensor(self.edges_, dtype=torch.float64)
        return torch.bucketize(self._score(z.double()), edges, right=False)

    def fit(self, logits: Any, y: Any) -> "AdaptiveTemperatureScaling":
        """Fit bin edges and per-bin temperatures on validation logits (N, C) and labels (N,); returns self."""
        for name in ("n_bins", "min_samples_per_bin", "max_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise UserError(f"Invalid {name}: {v!r}; expected an integer >= 1")
        check_choice("mode", self.mode, ("equal_mass", "equal_width"))
        check_choice("bin_by", self.bin_by, ("confidence", "logit_norm"))
        if self.prior_std is not None and not (isinstance(self.prior_std, (int, float)) and self.prior_std > 0):
            raise UserError(f"Invalid prior_std: {self.prior_std!r}; expected a number > 0 or None")
        z, y = check_logits_labels(logits, y)
        need = self.n_bins * self.min_samples_per_bin
        if len(z) < need:
            raise UserError(f"Validation set too small: {len(z)} samples for n_bins={self.n_bins} with "
                            f"min_samples_per_bin={self.min_samples_per_bin}; need at least {need} "
                            "(use fewer bins or more validation data)")
        z = z.double()
        s = self._score(z)
        m = self.n_bins
        if self.mode == "equal_mass":
            edges = torch.quantile(s, torch.arange(1, m, dtype=torch.float64) / m)
        elif self.bin_by == "confidence":
            edges = torch.linspace(0, 1, m + 1, dtype=torch.float64)[1:-1]
        else:
            edges = torch.linspace(float(s.min()), float(s.max()), m + 1, dtype=torch.float64)[1:-1]
        self.edges_ = edges.numpy()
        bins = self._bins(z)
        counts = torch.bincount(bins, minlength=m)
        ts = TemperatureScaling(max_iter=self.max_iter).fit(z, y)
        init = torch.full((m,), math.log(ts.temperature_), dtype=torch.float64)
        free = counts >= self.min_samples_per_bin
        log_t = _fit_log_temperature(z, y, bins, m, init, free, self.prior_std, self.max_iter)
        self.temperature_ = ts.temperature_
        self.temperatures_ = log_t.exp().numpy()
        self.bin_counts_ = counts.numpy()
        self.n_classes_ = z.shape[1]
        return self

    def transform(self, logits: Any):
        """Calibrated logits z / T_{m(z)}, shape (N, C), same type (numpy or tensor) as the input."""
        check_is_fitted(self, "temperatures_")
        z = _as_tensor("logits", logits, floating=True)
        _check_logits_only(z, self.n_classes_)
        t = torch.as_tensor(self.temperatures_, dtype=torch.float64)[self._bins(z)]    # (N,)
        return _like_input(z.double() / t[:, None], logits)

    def predict_proba(self, logits: Any):
        """softmax(transform(logits)), shape (N, C)."""
        z = _as_tensor("logits", self.transform(logits), floating=True)
        return _like_input(torch.softmax(z.double(), 1), logits)
