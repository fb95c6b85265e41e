"""Manifold-preservation metrics between data X (n, D) and an embedding Z (n, d).

The set follows the BLAE reference code (utils/measures.py, itself from the TopoAE/GRAE evaluations): k-NN
recall averaged over k, trustworthiness and continuity, MRRE, Spearman correlation of pairwise distances, the
density KL at several bandwidths, reconstruction MSE, and empirical bi-Lipschitz constants of a map.

Two families of distances:

* Euclidean (`knn_recall`, `density_kl`, and trust/cont/mrre/spear): `pdist` in X and in Z.
* k-NN-graph geodesic (`knn_graph_distances`, `geodesic_knn_recall`, `geodesic_density_kl`): shortest paths on
  the 10-NN graph in X and in Z. This is what the paper's tables use: the reference `MeasureCalculator` builds
  both distance matrices with utils/functionals.py:compute_euclidean_knn_distance_matrix (k = 10). The
  reference's Spearman metric (`spearman_metric`) uses raw Euclidean distances, so our "spear" matches it
  in kind (it samples 1000 points with replacement, seed 42; we sample without replacement, seed 0).

All functions take numpy arrays and use exact (dense) distances: meant for n up to a few thousand.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.spatial.distance import pdist, squareform

from tenfold.common.errors import UserError, check_choice


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
    return _kl_from_distances(squareform(pdist(X)), squareform(pdist(Z)), sigma)


# ------------------------------------------------------------------------- k-NN-graph geodesic variants

DISCONNECTED = ("connect", "limit", "raise")
REFERENCE_LIMIT = 1e4  # compute_euclidean_knn_distance_matrix's Dijkstra `limit`, also its value for unreachable


def _as_points(A, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim < 2 or len(A) < 2:
        raise UserError(f"Invalid {name}: shape {A.shape}; expected (n_samples >= 2, n_features, ...)")
    A = A.reshape(len(A), -1)
    if not np.isfinite(A).all():
        raise UserError(f"Invalid {name}: contains NaN or inf")
    return A


def _link_components(g, A: np.ndarray, labels: np.ndarray):
    """Add shortest Euclidean edges from point 0's growing component outwards until connected (blae._connect's rule)."""
    # Prim on components: keep each point's distance to the nearest point inside, so the cost is O(n^2 D) in all.
    from scipy.sparse import coo_matrix
    from scipy.spatial.distance import cdist

    n = len(A)
    inside = labels == labels[0]
    d_in = cdist(A[inside], A)                                   # (|inside|, n)
    best, src = d_in.min(0), np.flatnonzero(inside)[d_in.argmin(0)]  # nearest inside point for every point
    rows, cols, w = [], [], []
    while not inside.all():
        cand = np.where(inside, np.inf, best)
        j = int(np.argmin(cand))                                 # closest outside point; ties -> lowest index
        rows.append(int(src[j]))
        cols.append(j)
        w.append(max(float(best[j]), 1e-12))                     # a 0 weight would vanish from the sparse graph
        new = (labels == labels[j]) & ~inside
        inside |= new
        d_new = cdist(A[new], A)
        closer = d_new.min(0) < best
        src = np.where(closer, np.flatnonzero(new)[d_new.argmin(0)], src)
        best = np.minimum(best, d_new.min(0))
    g = g.tocoo()  # concatenating (not adding) keeps explicit zero edges (duplicate points), which Dijkstra uses
    return coo_matrix((np.r_[g.data, w], (np.r_[g.row, rows], np.r_[g.col, cols])), shape=(n, n)).tocsr()


def knn_graph_distances(A, n_neighbors: int = 10, *, disconnected: str = "connect") -> np.ndarray:
    """Shortest-path distances on the k-NN graph of A, as the reference metrics compute them.

    Mirrors utils/functionals.py:compute_euclidean_knn_distance_matrix (used by utils/measures.py:
    MeasureCalculator with k = 10 in X and in Z): sklearn `kneighbors_graph(A, k, mode="distance",
    include_self=False)`, i.e. a directed graph with Euclidean edge weights, then scipy Dijkstra with
    `directed=False`, so an edge exists when either end lists the other ("or" symmetrisation, same weight both
    ways). Images (n, H, W) or (n, C, H, W) are flattened.

    Parameters
    ----------
    A : ndarray of shape (n, ...)
    n_neighbors : int, default=10
        k of the k-NN graph (the reference metrics use 10; the BLAE training geodesics use 5).
    disconnected : {"connect", "limit", "raise"}, default="connect"
        What to do when the graph has several connected components.
        "connect" (OUR CHOICE, the default): add the shortest Euclidean edge between components until the
        graph is connected, the rule of `tenfold.manifold.blae.geodesic_distances(connect_components=True)`.
        "limit": the reference's behaviour: Dijkstra with `limit=1e4`, and every path longer than 1e4 or
        unreachable set to 1e4. That constant is absolute, so after max-normalisation (KL) the within-component
        distances shrink towards 0, and on data with large raw scale (e.g. 0-255 pixels) long true geodesics
        are capped too. "raise": raise UserError.

    Returns
    -------
    D : ndarray of shape (n, n), float32 (as the reference's tensor), symmetric with zero diagonal.

    Examples
    --------
    >>> D = knn_graph_distances(np.arange(5.0)[:, None], n_neighbors=1)
    >>> float(D[0, 4])
    4.0
    """
    from scipy.sparse.csgraph import connected_components, dijkstra
    from sklearn.neighbors import kneighbors_graph

    check_choice("disconnected", disconnected, DISCONNECTED)
    A = _as_points(A, "A")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) \
            or not 1 <= n_neighbors < len(A):
        raise UserError(f"Invalid n_neighbors: {n_neighbors!r}; expected an integer in [1, n_samples) "
                        f"with n_samples={len(A)}")
    g = kneighbors_graph(A, int(n_neighbors), mode="distance", include_self=False)  # (n, n) directed, csr
    limit = np.inf
    if disconnected == "limit":
        limit = REFERENCE_LIMIT
    else:
        n_comp, labels = connected_components(g, directed=False)
        if n_comp > 1 and disconnected == "raise":
            raise UserError(f"The {n_neighbors}-NN graph has {n_comp} connected components, so geodesic distances "
                            f"are infinite; use a larger n_neighbors or disconnected='connect'")
        if n_comp > 1:
            g = _link_components(g, A, labels)
    D = dijkstra(g, directed=False, limit=limit)
    if disconnected == "limit":
        D[~np.isfinite(D)] = REFERENCE_LIMIT
    return D.astype(np.float32)


def _valid_ks(ks, n: int) -> list[int]:
    out = [int(k) for k in ks if 1 <= k < n - 1]
    if not out:
        raise UserError(f"Invalid ks: no k in [1, n_samples - 1) for n_samples={n}")
    return out


def _recall_from_distances(DX: np.ndarray, DZ: np.ndarray, ks: Sequence[int]) -> float:
    """Mean over ks of the k-NN overlap fraction, vectorised: j is among i's k nearest in X iff rank_X[i, j] <= k."""
    _, rx = _ranks(DX)  # (n, n); self has rank 0, so a neighbour's rank is in 1..n-1
    nz, _ = _ranks(DZ)  # (n, n-1) neighbour order in Z
    rows = np.arange(len(DX))[:, None]
    return float(np.mean([np.count_nonzero(rx[rows, nz[:, :k]] <= k) / (len(DX) * k) for k in ks]))


def _kl_from_distances(DX: np.ndarray, DZ: np.ndarray, sigma: float) -> float:
    """KL(p_X || p_Z) of the Gaussian-kernel densities on max-normalised distance matrices."""
    if not sigma > 0:
        raise UserError(f"Invalid sigma: {sigma!r}; expected a number > 0")

    def dens(D):
        D = np.asarray(D, dtype=np.float64)
        p = np.exp(-((D / D.max()) ** 2) / sigma).sum(1)  # (n,), the self term exp(0) included
        return p / p.sum()

    px, pz = dens(DX), dens(DZ)
    return float(np.sum(px * (np.log(px) - np.log(pz))))


def geodesic_knn_recall(X, Z, ks: Sequence[int] = tuple(range(5, 50, 5)), n_neighbors: int = 10, *,
                        disconnected: str = "connect") -> float:
    """k-NN recall (as `knn_recall`) on k-NN-graph geodesic distances in X and in Z: the paper's "kNN" metric.

    Reference: utils/measures.py:MeasureCalculator.knn_recall averaged over k by MetricsEvaluator.compute_knn:
    for each k, (number of pairs (i, j) with j among i's k nearest in X and in Z) / (n k).

    Parameters
    ----------
    X : ndarray of shape (n, D)
    Z : ndarray of shape (n, d)
    ks : sequence of int, default=(5, 10, ..., 45)
        The reference's range for the swiss roll and dSprites; it uses (2, 4, 6, 8, 10) for rotating MNIST
        (MetricsEvaluator.evaluate_all). Values >= n - 1 are dropped.
    n_neighbors, disconnected
        Passed to `knn_graph_distances` for both X and Z.

    Returns
    -------
    float in [0, 1] (1 is best).

    Notes
    -----
    Differences from the reference beyond the distance (they hold for `knn_recall` too): the reference takes
    `torch.topk` of the k + 1 smallest distances and drops the first, which is the point itself unless another
    point is at distance 0, and orders ties as topk happens to; we always drop the point itself and break ties
    by lower index (stable sort). Its `kNN_graph` hard-codes graph k = 10 whatever `k_graph` is. Results are equal
    when there are no exact ties (ties are common only under disconnected="limit", where every cross-component
    distance is 1e4).
    """
    X, Z = _check(X, Z)
    ks = _valid_ks(ks, len(X))
    DX = knn_graph_distances(X, n_neighbors, disconnected=disconnected)
    DZ = knn_graph_distances(Z, n_neighbors, disconnected=disconnected)
    return _recall_from_distances(DX, DZ, ks)


def geodesic_density_kl(X, Z, sigma: float = 0.1, n_neighbors: int = 10, *, disconnected: str = "connect") -> float:
    """Density KL (as `density_kl`) on k-NN-graph geodesic distances in X and in Z: the paper's "KL_sigma".

    Reference: utils/measures.py:MeasureCalculator.density_kl_global: each distance matrix divided by its own
    max, p_X(i) proportional to sum_j exp(-d_X(i, j)^2 / sigma) (self term included), likewise p_Z, and
    KL(p_X || p_Z) = sum_i p_X(i) (log p_X(i) - log p_Z(i)). The paper reports sigma in {0.01, 0.1, 1}.
    Beyond the distance, `density_kl` and this function match the reference's formula exactly; the reference
    works in float32 and we in float64 (on the float32 distances).

    Returns
    -------
    float >= 0 (0 is best).
    """
    if not sigma > 0:
        raise UserError(f"Invalid sigma: {sigma!r}; expected a number > 0")
    X, Z = _check(X, Z)
    DX = knn_graph_distances(X, n_neighbors, disconnected=disconnected)
    DZ = knn_graph_distances(Z, n_neighbors, disconnected=disconnected)
    return _kl_from_distances(DX, DZ, sigma)


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
                       sigmas: Sequence[float] = (0.01, 0.1, 1.0), geodesic: bool = True,
                       n_graph_neighbors: int = 10) -> dict[str, float]:
    """All the metrics above in one dict.

    Keys: knn, trust, cont, mrre_zx, mrre_xz, spear, kl<sigma> (Euclidean distances), mse (when X_hat is
    given), and with `geodesic` also geo_knn and geo_kl<sigma> (k-NN-graph geodesic distances in X and Z, the
    paper's metrics; sigma formatted with `:g`, e.g. "geo_kl0.01").

    Parameters
    ----------
    X : ndarray of shape (n, D)
    Z : ndarray of shape (n, d)
    X_hat : ndarray of shape (n, D) or None
        Reconstruction; "mse" is left out when None.
    ks : sequence of int, default=(5, 10, ..., 45)
        k values averaged by knn and geo_knn.
    k : int, default=10
        Neighbourhood size of trust, cont and mrre.
    sigmas : sequence of float, default=(0.01, 0.1, 1.0)
        Bandwidths of kl and geo_kl.
    geodesic : bool, default=True
        Also compute the geodesic keys (the two graph distance matrices are built once; a few seconds at n=3000).
    n_graph_neighbors : int, default=10
        k of the k-NN graphs (the reference's 10); disconnected graphs are joined (see `knn_graph_distances`).
    """
    out = {"knn": knn_recall(X, Z, ks), "trust": trustworthiness(X, Z, k), "cont": continuity(X, Z, k)}
    out["mrre_zx"], out["mrre_xz"] = mrre(X, Z, k)
    out["spear"] = spearman_distances(X, Z)
    for s in sigmas:
        out[f"kl{s:g}"] = density_kl(X, Z, s)
    if X_hat is not None:
        out["mse"] = reconstruction_mse(X, X_hat)
    if geodesic:
        Xc, Zc = _check(X, Z)
        DX = knn_graph_distances(Xc, n_graph_neighbors)
        DZ = knn_graph_distances(Zc, n_graph_neighbors)
        out["geo_knn"] = _recall_from_distances(DX, DZ, _valid_ks(ks, len(Xc)))
        for s in sigmas:
            out[f"geo_kl{s:g}"] = _kl_from_distances(DX, DZ, s)
    return out
