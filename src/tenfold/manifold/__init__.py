"""Manifold learning: the bi-Lipschitz autoencoder (BLAE), the paper's baseline autoencoders in the same
scikit-learn shell, and manifold-preservation metrics (Euclidean and, as the paper computes them, on k-NN-graph
geodesics)."""

from tenfold.manifold.baselines import GGAE, GRAE, IRAE, SPAE, TopoAE
from tenfold.manifold.blae import (AE, BLAE, AutoencoderShell, GeoAE, IsoAE, bilipschitz_loss, decoder_jacobian,
                                   geodesic_distances, geodesic_mse_loss, injective_loss, isometry_loss)
from tenfold.manifold.metrics import (bilipschitz_constants, continuity, density_kl, evaluate_embedding,
                                      geodesic_density_kl, geodesic_knn_recall, knn_graph_distances, knn_recall,
                                      mrre, reconstruction_mse, spearman_distances, trustworthiness)

__all__ = ["AE", "BLAE", "GGAE", "GRAE", "IRAE", "SPAE", "AutoencoderShell", "GeoAE", "IsoAE", "TopoAE",
           "bilipschitz_constants", "bilipschitz_loss", "continuity", "decoder_jacobian", "density_kl",
           "evaluate_embedding", "geodesic_density_kl", "geodesic_distances", "geodesic_knn_recall",
           "geodesic_mse_loss", "injective_loss", "isometry_loss", "knn_graph_distances", "knn_recall", "mrre",
           "reconstruction_mse", "spearman_distances", "trustworthiness"]
