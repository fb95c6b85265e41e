"""Optimizers: MoLS (module-type Adam learning rates calibrated from gradient SNRs, paper 2), its earlier dynamic
variant (MoLSDynamic), and LORO (low-rank Riemannian, the optimizer of paper 3's low-rank arms)."""

from tenfold.optim.loro import LORO, loro_exact_update, loro_lr_lambda
from tenfold.optim.mols import TYPE_RULES, TYPES, MoLS, calibration_snr, module_type, snr_multipliers
from tenfold.optim.mols_dynamic import (DEFAULT_RULES, MoLSDynamic, half_batch_snr, module_key, module_scales,
                                        module_snr, spearman)

__all__ = ["MoLS", "TYPES", "TYPE_RULES", "module_type", "calibration_snr", "snr_multipliers", "MoLSDynamic",
           "DEFAULT_RULES", "module_key", "module_snr", "module_scales", "half_batch_snr", "spearman",
           "LORO", "loro_exact_update", "loro_lr_lambda"]
