"""Manifold-preservation metrics between data X (n, D) and an embedding Z (n, d).

The set follows the BLAE reference code (utils/measures.py, itself from the TopoAE/GRAE evaluations): k-NN
recall averaged over k, trustworthiness and continuity, MRRE, Spearman correlation of pairwise distances, the
density KL at several bandwidths, reconstruction MSE, and empirical bi-Lipschitz constants of a map.
All functions take numpy arrays and use exact (dense) distances: meant for n up to a few thousand.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.distance import pdist, squareform

from tenfold.common.errors import UserError


def _check(X, Z, k: int | None = None):
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Z = np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
    if len(X) != len(Z):
        raise UserError(f"Invalid Z: {len(Z)} rows; expected as many as X ({len(X)})")
    if not (np.isfinite(X).all() and np.isfinite(Z).all()):
        raise UserError("Invalid X or Z: contains NaN or inf")
    if k is not None and not 1 <= k < len(X) - 1:
        raise UserError(f"Invalid k: {k}; expected 1 <= k < n_samples - 1 ({len(X) - 1})")
    return X, Z


def _ranks(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour order without self (n, n-1), rank matrix (n, n) with rank 0 = self)."""
    order = np.argsort(D + np.diag(np.full(len(D), -np.inf)), axis=1, kind="stable")  # self first
    ranks = np.empty_like(order)
    rows = np.arange(len(D))[:, None]
    ranks[rows, order] = np.arange(len(D))[None, :]
    return order[:, 1:], ranks


def knn_recall(X, Z, ks: Sequence[int] = tuple(range(5, 50, 5))) -> float:
    """Mean over k of the fraction of each point's k nearest neighbours in X that are also among its k in Z.

    Parameters
    ----------
    X : ndarray of shape (n, D)
    Z : ndarray of shape (n, d)
    ks : sequence of int, default=(5, 10, ..., 45)
        The reference code's range; values >= n - 1 are dropped.

    Returns
    -------
    float in [0, 1].
    """
    X, Z = _check(X, Z)
    ks = [k for k in ks if 1 <= k < len(X) - 1]
    if not ks:
        raise UserError(f"Invalid ks: no k in [1, n_samples - 1) for n_samples={len(X)}")
    nx, _ = _ranks(squareform(pdist(X)))
    nz, _ = _ranks(squareform(pdist(Z)))
    out = []
    for k in ks:
        a, b = np.sort(nx[:, :k], 1), np.sort(nz[:, :k], 1)
        hits = sum(np.intersect1d(a[i], b[i], assume_unique=True).size for i in range(len(X)))
        out.append(hits / (len(X) * k))
    return float(np.mean(out))


def trustworthiness(X, Z, k: int = 10) -> float:
    """Trustworthiness (Venna & Kaski): are Z's neighbours true neighbours in X? sklearn's implementation.

    Returns
    -------
    float in [0, 1] (1 is best).
    """
    from sklearn.manifold import trustworthiness as _tw

    X, Z = _check(X, Z, k)
    if k >= len(X) / 2:
        raise UserError(f"Invalid k: {k}; trustworthiness needs k < n_samples / 2 ({len(X) / 2:g})")
    return float(_tw(X, Z, n_neighbors=k))


def continuity(X, Z, k: int = 10) -> float:
    """Continuity: are X's neighbours kept as neighbours in Z? (trustworthiness with the roles swapped)."""
    return trustworthiness(Z, X, k)


def mrre(X, Z, k: int = 10) -> tuple[float, float]:
    """Mean relative rank errors (Lee & Verleysen), as in the reference code.

    Returns
    -------
    (mrre_zx, mrre_xz) : tuple of float
        Error of Z's neighbourhoods measured in X, and of X's neighbourhoods measured in Z (0 is best).
    """
    X, Z = _check(X, Z, k)
    n = len(X)
    nx, rx = _ranks(squareform(pdist(X)))
    nz, rz = _ranks(squareform(pdist(Z)))
    rows = np.arange(n)[:, None]
    a, b = rx[rows, nz[:, :k]], rz[rows, nz[:, :k]]
    zx = np.sum(np.abs(a - b) / b)
    a, b = rx[rows, nx[:, :k]], rz[rows, nx[:, :k]]
    xz = np.sum(np.abs(a - b) / a)
    c = n * sum(abs(2 * j - n - 1) / j for j in range(1, k + 1))
    return float(zx / c), float(xz / c)


def spearman_distances(X, Z, *, max_points: int = 1000, random_state: int = 0) -> float:
    """Spearman rank correlation between the pairwise distances in X and in Z (on at most max_points points)."""
    from scipy.stats import spearmanr

    X, Z = _check(X, Z)
    if len(X) > max_points:
        idx = np.random.default_rng(random_state).choice(len(X), max_points, replace=False)
        X, Z = X[idx], Z[idx]
    return float(spearmanr(pdist(X), pdist(Z)).statistic)


def density_kl(X, Z, sigma: float = 0.1) -> float:
    """KL(p_X || p_Z) between Gaussian-kernel densities on max-normalised pairwise distances.

    p_X(i) is proportional to sum_j exp(-(d_X(i, j) / max d_X)^2 / sigma), likewise p_Z (reference code's
    density_kl_global; small sigma is local, sigma=1 global).

    Returns
    -------
    float >= 0 (0 is best).
    """
    if not sigma > 0:
        raise UserError(f"Invalid sigma: {sigma!r}; expected a number > 0")
    X, Z = _check(X, Z)

    def dens(A):
        d = squareform(pdist(A))
        d = d / d.max()
        p = np.exp(-(d ** 2) / sigma).sum(1)
        return p / p.sum()

    px, pz = dens(X), dens(Z)
    return float(np.sum(px * (np.log(px) - np.log(pz))))


def reconstruction_mse(X, X_hat) -> float:
    """Mean squared error per coordinate between X and its reconstruction."""
    X, X_hat = _check(X, X_hat)
    if X.shape != X_hat.shape:
        raise UserError(f"Invalid X_hat: shape {X_hat.shape}; expected {X.shape}")
    return float(np.mean((X - X_hat) ** 2))


def bilipschitz_constants(D_in, D_out, *, quantile: float = 0.0) -> tuple[float, float, float]:
    """Empirical bi-Lipschitz constants of a map from its input and output distance matrices.

    With r = D_out / D_in over distinct pairs, returns (lower, upper, distortion) where lower and upper
    are the `quantile` and `1 - quantile` quantiles of r (the min and max with quantile=0), and
    distortion = upper / lower, which is scale-free (1 for an isometry up to scale).

    Parameters
    ----------
    D_in, D_out : ndarray of shape (n, n)
        Distances before and after the map (e.g. geodesic and latent).
    quantile : float, default=0.0
        Trim this fraction at each end (robust constants); must be in [0, 0.5).
    """
    D_in, D_out = np.asarray(D_in, dtype=np.float64), np.asarray(D_out, dtype=np.float64)
    if D_in.shape != D_out.shape or D_in.ndim != 2 or D_in.shape[0] != D_in.shape[1]:
        raise UserError(f"Invalid D_in/D_out: shapes {D_in.shape} and {D_out.shape}; expected equal (n, n)")
    if not 0 <= quantile < 0.5:
        raise UserError(f"Invalid quantile: {quantile!r}; expected a number in [0, 0.5)")
    iu = np.triu_indices(len(D_in), 1)
    din, dout = D_in[iu], D_out[iu]
    keep = din > 0
    r = dout[keep] / din[keep]
    lo, hi = np.quantile(r, quantile), np.quantile(r, 1 - quantile)
    return float(lo), float(hi), float(hi / lo) if lo > 0 else float("inf")


def evaluate_embedding(X, Z, *, X_hat=None, ks: Sequence[int] = tuple(range(5, 50, 5)), k: int = 10,
                       sigmas: Sequence[float] = (0.01, 0.1, 1.0)) -> dict[str, float]:
    """All the metrics above in one dict: knn, trust, cont, mrre_zx, mrre_xz, spear, kl<sigma>, mse.

    Parameters
    ----------
    X : ndarray of shape (n, D)
    Z : ndarray of shape (n, d)
    X_hat : ndarray of shape (n, D) or None
        Reconstruction; "mse" is left out when None.
    """
    out = {"knn": knn_recall(X, Z, ks), "trust": trustworthiness(X, Z, k), "cont": continuity(X, Z, k)}
    out["mrre_zx"], out["mrre_xz"] = mrre(X, Z, k)
    out["spear"] = spearman_distances(X, Z)
    for s in sigmas:
        out[f"kl{s:g}"] = density_kl(X, Z, s)
    if X_hat is not None:
        out["mse"] = reconstruction_mse(X, X_hat)
    return out
