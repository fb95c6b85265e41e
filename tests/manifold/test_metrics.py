"""Manifold metrics against naive loop references on tiny arrays, plus their error handling."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from tenfold.common.errors import UserError
from tenfold.manifold import (bilipschitz_constants, continuity, density_kl, evaluate_embedding, knn_recall, mrre,
                              reconstruction_mse, spearman_distances, trustworthiness)

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
    m = evaluate_embedding(X, Z, X_hat=X, ks=(3, 5), k=3)
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
])
def test_metric_errors(call, match):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(UserError, match=match):
        call(X)
