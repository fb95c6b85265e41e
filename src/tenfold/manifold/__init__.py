"""Manifold learning: the bi-Lipschitz autoencoder (BLAE), baseline autoencoders in the same
scikit-learn shell, and manifold-preservation metrics."""

from tenfold.manifold.blae import (AE, BLAE, AutoencoderShell, GeoAE, IsoAE, bilipschitz_loss, decoder_jacobian,
                                   geodesic_distances, geodesic_mse_loss, injective_loss, isometry_loss)
from tenfold.manifold.metrics import (bilipschitz_constants, continuity, density_kl, evaluate_embedding, knn_recall,
                                      mrre, reconstruction_mse, spearman_distances, trustworthiness)

__all__ = ["AE", "BLAE", "AutoencoderShell", "GeoAE", "IsoAE", "bilipschitz_constants", "bilipschitz_loss",
           "continuity", "decoder_jacobian", "density_kl", "evaluate_embedding", "geodesic_distances",
           "geodesic_mse_loss", "injective_loss", "isometry_loss", "knn_recall", "mrre", "reconstruction_mse",
           "spearman_distances", "trustworthiness"]
