"""Zeroth-order fine-tuning: MeZO, LeZO, AdaLeZO (paper 4) and the seeded perturbation engine."""

from tenfold.zo.adalezo import AdaLeZO, arm_probabilities, default_k, ipw_weights
from tenfold.zo.engine import SeededPerturbation, ZOOptimizer, arm_name, model_arms
from tenfold.zo.mezo import LeZO, MeZO, MeZOReference

__all__ = ["AdaLeZO", "LeZO", "MeZO", "MeZOReference", "SeededPerturbation", "ZOOptimizer", "model_arms",
           "arm_name", "arm_probabilities", "default_k", "ipw_weights"]
