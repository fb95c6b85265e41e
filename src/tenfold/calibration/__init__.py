"""Calibration: generative cross-entropy (GCE) and its baseline losses (AdaFocal among them), temperature
scalers (TS and the adaptive piecewise ATS) and calibration metrics (paper 6, arXiv 2604.06689). See docs/gce.md."""

from tenfold.calibration.gce import (
    ATS_GRID, TS_ECE_GRID, AdaptiveTemperatureScaling, GCELoss, TemperatureScaling, gce_loss,
)
from tenfold.calibration.losses import (
    LOSSES, AdaFocalLoss, CrossEntropyLoss, DualFocalLoss, FLSD53Loss, FocalLoss, LabelSmoothingLoss, LossInfo,
    make_loss,
)
from tenfold.calibration.metrics import (
    adaece, brier, calibration_metrics, check_logits_labels, classwise_ece, ece, mce, nll, plot_reliability,
    reliability_bins,
)

__all__ = [
    "GCELoss", "gce_loss", "TemperatureScaling", "AdaptiveTemperatureScaling", "TS_ECE_GRID", "ATS_GRID",
    "LOSSES", "LossInfo", "make_loss", "CrossEntropyLoss", "FocalLoss", "FLSD53Loss", "DualFocalLoss",
    "LabelSmoothingLoss", "AdaFocalLoss", "ece", "adaece", "classwise_ece", "mce", "nll", "brier",
    "calibration_metrics", "reliability_bins", "plot_reliability", "check_logits_labels",
]
