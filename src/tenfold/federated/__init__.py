"""Federated learning on Flower: FedInit (relaxed initialisation) as a switch on FedAvg, FedProx, FedAdam and
SCAFFOLD, the pure aggregation maths, and the Flower apps for simulation and deployment.

`tenfold.federated.maths` is importable without Flower; everything else imports `flwr` lazily.
"""

from tenfold.federated.maths import dispersion, relaxed_start, weighted_average

__all__ = ["relaxed_start", "weighted_average", "dispersion"]
