"""Manifold metrics against naive loop references on tiny arrays, plus their error handling.

The k-NN-graph geodesic variants are also checked against Floyd-Warshall on tiny graphs, on exact isometries,
and on the reference swiss roll (unrolled vs folded embeddings).
"""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tenfold.common.errors import UserError
from tenfold.data.manifolds import reference_swiss_roll
from tenfold.manifold import (bilipschitz_constants, continuity, density_kl, evaluate_embedding, geodesic_distances,
                              knn_recall, mrre, reconstruction_mse, spearman_distances, trustworthiness)
from tenfold.manifold.metrics import (REFERENCE_LIMIT, geodesic_density_kl, geodesic_knn_recall,
                                      knn_graph_distances)

CASES = [(12, 3, 2, 0), (20, 5, 2, 1), (25, 4, 3, 2)]  # (n, D, d, seed)


def _data(n, D, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    Z = X[:, :d] + 0.3 * rng.normal(size=(n, d))
    return X, Z


def _neigh(A, k):
    d = cdist(A, A)
    return [set(np.argsort(d[i], kind="stable")[1:k + 1]) for i in range(len(A))]


def _rank(A):
    d = cdist(A, A)
    r = np.zeros_like(d, dtype=int)
    for i in range(len(A)):
        for pos, j in enumerate(np.argsort(d[i], kind="stable")):
            r[i, j] = pos
    return r


@pytest.mark.parametrize("n,D,d,seed", CASES)
def test_knn_recall_matches_naive(n, D, d, seed):
    X, Z = _data(n, D, d, seed)
    ks = (2, 3, 5)
    naive = np.mean([np.mean([len(a & b) / k for a, b in zip(_neigh(X, k), _neigh(Z, k))]) for k in ks])
    assert knn_recall(X, Z, ks) == pytest.approx(naive)
    assert knn_recall(X, X, ks) == pytest.approx(1.0)


@pytest.mark.parametrize("n,D,d,seed", CASES)
def test_trustworthiness_continuity_match_naive(n, D, d, seed):
    X, Z = _data(n, D, d, seed)
    k = 3

    def naive_tw(A, B):  # Venna & Kaski: neighbours in B that are not neighbours in A, ranked in A
        ra, nb, na = _rank(A), _neigh(B, k), _neigh(A, k)
        s = sum(ra[i, j] - k for i in range(n) for j in nb[i] - na[i])
        return 1 - 2 / (n * k * (2 * n - 3 * k - 1)) * s

    assert trustworthiness(X, Z, k) == pytest.approx(naive_tw(X, Z))
    assert continuity(X, Z, k) == pytest.approx(naive_tw(Z, X))


@pytest.mark.parametrize("n,D,d,seed", CASES)
def test_mrre_matches_reference_loops(n, D, d, seed):
    X, Z = _data(n, D, d, seed)
    k = 3
    rx, rz = _rank(X), _rank(Z)
    nx = [np.argsort(cdist(X, X)[i], kind="stable")[1:k + 1] for i in range(n)]
    nz = [np.argsort(cdist(Z, Z)[i], kind="stable")[1:k + 1] for i in range(n)]
    zx = sum(abs(rx[i, j] - rz[i, j]) / rz[i, j] for i in range(n) for j in nz[i])
    xz = sum(abs(rx[i, j] - rz[i, j]) / rx[i, j] for i in range(n) for j in nx[i])
    c = n * sum(abs(2 * j - n - 1) / j for j in range(1, k + 1))
    assert mrre(X, Z, k) == pytest.approx((zx / c, xz / c))


@pytest.mark.parametrize("sigma", [0.01, 0.1, 1.0])
def test_density_kl_matches_naive(sigma):
    X, Z = _data(15, 4, 2, 3)

    def dens(A):
        d = cdist(A, A)
        d = d / d.max()
        p = np.array([sum(np.exp(-d[i, j] ** 2 / sigma) for j in range(len(A))) for i in range(len(A))])
        return p / p.sum()

    px, pz = dens(X), dens(Z)
    assert density_kl(X, Z, sigma) == pytest.approx(sum(px * np.log(px / pz)))
    assert density_kl(X, 3.0 * X, sigma) == pytest.approx(0.0, abs=1e-12)  # scale-free


def test_spearman_mse_and_lipschitz():
    X, Z = _data(30, 3, 2, 4)
    assert spearman_distances(X, 2 * X + 1) == pytest.approx(1.0)
    assert -1 <= spearman_distances(X, Z) <= 1
    assert reconstruction_mse(X, X + 0.5) == pytest.approx(0.25)
    D = cdist(X, X)
    lo, hi, dist = bilipschitz_constants(D, 2 * D)
    assert (lo, hi, dist) == pytest.approx((2.0, 2.0, 1.0))
    lo, hi, _ = bilipschitz_constants(D, cdist(Z, Z))
    r = cdist(Z, Z)[np.triu_indices(30, 1)] / D[np.triu_indices(30, 1)]
    assert (lo, hi) == pytest.approx((r.min(), r.max()))
    m = evaluate_embedding(X, Z, X_hat=X, ks=(3, 5), k=3, geodesic=False)
    assert set(m) == {"knn", "trust", "cont", "mrre_zx", "mrre_xz", "spear", "kl0.01", "kl0.1", "kl1", "mse"}


@pytest.mark.parametrize("call,match", [
    (lambda X: knn_recall(X, X[:-1]), "Invalid Z"),
    (lambda X: knn_recall(np.where(X > 1, np.nan, X), X), "NaN"),
    (lambda X: knn_recall(X, X, ks=(50,)), "Invalid ks"),
    (lambda X: trustworthiness(X, X, k=6), "Invalid k"),
    (lambda X: mrre(X, X, k=0), "Invalid k"),
    (lambda X: density_kl(X, X, sigma=0), "Invalid sigma"),
    (lambda X: reconstruction_mse(X, X[:, :2]), "Invalid X_hat"),
    (lambda X: bilipschitz_constants(cdist(X, X), cdist(X, X), quantile=0.5), "Invalid quantile"),
    (lambda X: knn_graph_distances(X, n_neighbors=0), "Invalid n_neighbors"),
    (lambda X: knn_graph_distances(X, n_neighbors=10), "Invalid n_neighbors"),
    (lambda X: knn_graph_distances(X, n_neighbors=2.5), "Invalid n_neighbors"),
    (lambda X: knn_graph_distances(X, disconnected="inf"), "Invalid disconnected"),
    (lambda X: knn_graph_distances(X[:, 0]), "Invalid A"),
    (lambda X: knn_graph_distances(np.where(X > 1, np.inf, X), n_neighbors=3), "Invalid A"),
    (lambda X: geodesic_knn_recall(X, X, ks=(50,), n_neighbors=3), "Invalid ks"),
    (lambda X: geodesic_knn_recall(X, X[:-1], n_neighbors=3), "Invalid Z"),
    (lambda X: geodesic_density_kl(X, X, sigma=-1.0, n_neighbors=3), "Invalid sigma"),
    (lambda X: evaluate_embedding(X, X, ks=(2,), k=2, n_graph_neighbors=10), "Invalid n_neighbors"),
])
def test_metric_errors(call, match):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(UserError, match=match):
        call(X)


# ------------------------------------------------------------------------- k-NN-graph geodesic variants

def _floyd(A, k):
    """Naive k-NN graph ("or" symmetrised, Euclidean weights) and Floyd-Warshall shortest paths."""
    d = cdist(A, A)
    n = len(A)
    G = np.full((n, n), np.inf)
    np.fill_diagonal(G, 0.0)
    for i in range(n):
        for j in np.argsort(d[i], kind="stable")[1:k + 1]:
            G[i, j] = G[j, i] = d[i, j]
    for m in range(n):
        G = np.minimum(G, G[:, m:m + 1] + G[m:m + 1, :])
    return G


@pytest.mark.parametrize("n,D,d,seed", CASES)
@pytest.mark.parametrize("k", [3, 5])
def test_knn_graph_distances_match_floyd_warshall(n, D, d, seed, k):
    X, _ = _data(n, D, d, seed)
    G = _floyd(X, k)
    if np.isinf(G).any():
        pytest.skip("graph disconnected")
    assert knn_graph_distances(X, k) == pytest.approx(G, rel=1e-6)


def test_knn_graph_distances_equal_euclidean_on_a_line():
    rng = np.random.default_rng(0)
    s = np.sort(rng.uniform(0, 10, 60))
    direction = rng.normal(size=5)
    A = s[:, None] * direction / np.linalg.norm(direction)  # a straight line in R^5
    for k in (1, 4, 10):
        assert knn_graph_distances(A, k) == pytest.approx(np.abs(s[:, None] - s[None, :]), abs=1e-5)


def test_disconnected_graph_modes():
    rng = np.random.default_rng(1)
    A = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(20, 2)) + 20.0])
    with pytest.raises(UserError, match="connected components"):
        knn_graph_distances(A, 3, disconnected="raise")
    lim = knn_graph_distances(A, 3, disconnected="limit")  # the reference's constant for unreachable pairs
    assert (lim[:30, 30:] == REFERENCE_LIMIT).all() and (lim[:30, :30] < 100).all()
    con = knn_graph_distances(A, 3)
    assert np.isfinite(con).all() and con[:30, 30:].min() >= cdist(A[:30], A[30:]).min() - 1e-5
    assert con == pytest.approx(geodesic_distances(A, 3, connect_components=True), abs=1e-5)  # training geodesics
    assert con[:30, :30] == pytest.approx(lim[:30, :30])


@pytest.mark.parametrize("n,D,d,seed", CASES)
def test_geodesic_recall_and_kl_match_naive(n, D, d, seed):
    X, Z = _data(n, D, d, seed)
    DX, DZ = knn_graph_distances(X, 4).astype(float), knn_graph_distances(Z, 4).astype(float)

    def neigh(Dm, k):
        return [set(np.argsort(Dm[i], kind="stable")[1:k + 1]) for i in range(n)]

    ks = (2, 3, 5)
    naive = np.mean([np.mean([len(a & b) / k for a, b in zip(neigh(DX, k), neigh(DZ, k))]) for k in ks])
    assert geodesic_knn_recall(X, Z, ks, n_neighbors=4) == pytest.approx(naive)

    def dens(Dm, sigma):
        p = np.array([sum(np.exp(-(Dm[i, j] / Dm.max()) ** 2 / sigma) for j in range(n)) for i in range(n)])
        return p / p.sum()

    px, pz = dens(DX, 0.1), dens(DZ, 0.1)
    assert geodesic_density_kl(X, Z, 0.1, n_neighbors=4) == pytest.approx(np.sum(px * np.log(px / pz)))


def test_geodesic_metrics_perfect_on_an_isometry():
    X, _ = reference_swiss_roll(300, seed=2)
    Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    Z = 2.5 * X @ Q + 1.0  # rotation, scale and shift: graph distances scale by 2.5
    assert geodesic_knn_recall(X, Z) == pytest.approx(1.0)
    for s in (0.01, 0.1, 1.0):
        assert geodesic_density_kl(X, Z, s) == pytest.approx(0.0, abs=1e-9)


def test_reference_swiss_roll_unrolled_beats_folded():
    X, u = reference_swiss_roll(500, seed=1)
    unrolled = geodesic_knn_recall(X, u)        # intrinsic (arc length, height): an isometry off the hole
    folded = geodesic_knn_recall(X, X[:, [0, 2]])  # projection along y: the roll's turns overlap
    assert unrolled > 0.9 and unrolled > folded + 0.3


def test_evaluate_embedding_geodesic_keys():
    X, u = reference_swiss_roll(200, seed=4)
    m = evaluate_embedding(X, u, ks=(5, 10), k=5)
    assert {"geo_knn", "geo_kl0.01", "geo_kl0.1", "geo_kl1", "knn", "kl0.1"} <= set(m) and "mse" not in m
    assert m["geo_knn"] == pytest.approx(geodesic_knn_recall(X, u, ks=(5, 10)))
    assert m["geo_kl0.1"] == pytest.approx(geodesic_density_kl(X, u, 0.1))
    assert m["knn"] == pytest.approx(knn_recall(X, u, ks=(5, 10)))  # the Euclidean keys keep their meaning
    m5 = evaluate_embedding(X, u, ks=(5,), k=5, sigmas=(0.5,), n_graph_neighbors=5)
    assert m5["geo_kl0.5"] == pytest.approx(geodesic_density_kl(X, u, 0.5, n_neighbors=5))
