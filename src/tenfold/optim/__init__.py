"""Optimizers: MoLS (module-wise Adam learning-rate scaling by SNR, paper 2) and LORO (low-rank Riemannian)."""

from tenfold.optim.loro import LORO, loro_exact_update, loro_lr_lambda
from tenfold.optim.mols import DEFAULT_RULES, MoLS, half_batch_snr, module_key, module_scales, module_snr, spearman

__all__ = ["MoLS", "DEFAULT_RULES", "module_key", "module_snr", "module_scales", "half_batch_snr", "spearman",
           "LORO", "loro_exact_update", "loro_lr_lambda"]
