"""One-shot federated learning: FedMITR (sparse model inversion + token relabel), the DENSE generator baseline,
and their Flower round.

`fedmitr` and `dense` need only torch and transformers; `flower` imports `flwr` lazily inside its functions.
"""

from tenfold.federated.oneshot.dense import ConvGenerator, DenseSynthesizer, feature_stats
from tenfold.federated.oneshot.fedmitr import (SparseInverter, SyntheticSet, TokenRelabelLoss, evaluate_accuracy,
                                               one_shot_distill, vit_forward)

__all__ = ["SparseInverter", "SyntheticSet", "TokenRelabelLoss", "one_shot_distill", "vit_forward",
           "evaluate_accuracy", "DenseSynthesizer", "ConvGenerator", "feature_stats"]
