"""The BLAE paper's baseline autoencoders: each regulariser against a naive reference on tiny tensors and at its
minimum, then the estimators (fit, determinism, conv28, errors, scikit-learn's checks)."""

import importlib.util

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from tenfold.common.errors import UserError
from tenfold.data import swiss_roll
from tenfold.manifold.blae import AE, _mlp, geodesic_distances
from tenfold.manifold.baselines import (GGAE, GRAE, IRAE, SPAE, TopoAE, _mst_edges, ggae_laplacian, ggae_loss,
                                        isomap_embedding, mix_latents, relaxed_distortion, spae_loss, topo_loss)

TINY = dict(hidden=8, epochs=2, batch_size=64, random_state=0)
CLASSES = [SPAE, TopoAE, GRAE, IRAE, GGAE]
OWN = {SPAE: {"lam_spae": 2.0}, TopoAE: {"lam_topo": 5.0, "form": "edges"},
       GRAE: {"lam_grae": 100.0, "target": "isomap"},
       IRAE: {"lam_irae": 0.01, "eta": 0.0}, GGAE: {"lam_ggae": 1.0, "bandwidth": 2.0, "dist_neighbors": 10}}


@pytest.fixture(scope="module")
def roll():
    return swiss_roll(120, seed=0)[0]


def _rotated_copy(n=12, seed=0):
    """2-D points x, their distances D, and a rotated (isometric) copy z of x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    c, s = np.cos(0.7), np.sin(0.7)
    return x, torch.cdist(x, x), x @ torch.tensor([[c, -s], [s, c]], dtype=torch.float32)


# ------------------------------------------------------------------------------------------ SPAE

def test_spae_loss_matches_naive_and_vanishes_on_a_scaled_copy():
    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(7, 3, generator=g), torch.randn(7, 2, generator=g)
    D = torch.cdist(x, x)
    naive = []
    for i in range(7):
        logs = [np.log((torch.norm(z[i] - z[j]).item() + 1e-12) / (D[i, j].item() + 1e-12)) for j in range(7) if j != i]
        naive.append(np.var(logs, ddof=1))  # the reference's torch.var: unbiased
    assert spae_loss(D, z).item() == pytest.approx(np.mean(naive), rel=1e-5)
    x, D, z = _rotated_copy()
    assert spae_loss(D, 3.0 * z).item() == pytest.approx(0, abs=1e-8)  # one ratio (3) for every pair
    assert spae_loss(D[:2, :2], z[:2]).item() == 0.0  # too few points for a row variance


# ------------------------------------------------------------------------------------------ TopoAE

def test_mst_edges_form_a_minimum_spanning_tree_and_drop_zero_edges():
    from scipy.sparse.csgraph import minimum_spanning_tree

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    A = np.linalg.norm(x[:, None] - x[None], axis=-1)
    e = _mst_edges(A)
    assert e.shape == (39, 2) and len({tuple(sorted(p)) for p in e.tolist()}) == 39
    assert A[e[:, 0], e[:, 1]].sum() == pytest.approx(minimum_spanning_tree(A).sum(), rel=1e-12)
    xd = np.concatenate([x, x[:1]])  # a duplicate point: its zero-length edge has zero persistence, gudhi drops it
    Ad = np.linalg.norm(xd[:, None] - xd[None], axis=-1)
    assert len(_mst_edges(Ad)) == 39


@pytest.mark.parametrize("form", ["code", "edges"])
def test_topo_loss_matches_the_reference_computation(form):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 3, generator=g)
    D = torch.cdist(x, x)
    z = torch.randn(10, 2, generator=g, requires_grad=True)
    P = torch.cdist(z, z)
    ex = torch.as_tensor(_mst_edges(D.double().numpy()))
    ez = torch.as_tensor(_mst_edges(P.detach().double().numpy()))
    if form == "code":  # the reference TopoLoss literally: A[pi] with an (m, 2) index picks whole rows
        want = 0.5 * torch.norm(D[ex] - P[ex]) ** 2 + 0.5 * torch.norm(P[ez] - D[ez]) ** 2
    else:  # Moor et al.'s matching of the edge entries
        want = 0.5 * sum(((D[i, j] - P[i, j]) ** 2) for e in (ex, ez) for i, j in e.tolist())
    got = topo_loss(D, z, form=form)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0  # gradients flow through the chosen distances


@pytest.mark.parametrize("form", ["code", "edges"])
def test_topo_loss_is_zero_on_an_isometric_copy(form):
    x, D, z = _rotated_copy(30)
    assert topo_loss(D, z, form=form).item() == pytest.approx(0, abs=1e-8)
    assert topo_loss(D, 2 * z, form=form).item() > 1e-2


# ------------------------------------------------------------------------------------------ IRAE

def test_relaxed_distortion_matches_the_reference_double_backward_form():
    torch.manual_seed(0)
    dec = _mlp(2, 8, 2, 5)
    z = torch.randn(6, 2, requires_grad=True)
    v = torch.randn(6, 2)
    got = relaxed_distortion(dec, z, v)
    # reference utils/functionals.py:relaxed_distortion_measure, with its probe v given
    Jv = torch.autograd.functional.jvp(dec, z, v=v, create_graph=True)[1]
    JtJv = torch.autograd.functional.vjp(dec, z, v=Jv, create_graph=True)[1]
    want = (JtJv ** 2).sum(1).mean() / (Jv ** 2).sum(1).mean() ** 2
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    wrt = [z, *dec.parameters()]  # the output bias does not enter J: no gradient for it in either
    g_got = torch.autograd.grad(got, wrt, allow_unused=True, materialize_grads=True)
    g_want = torch.autograd.grad(want, wrt, allow_unused=True, materialize_grads=True)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_relaxed_distortion_is_scale_free_and_minimal_on_a_scaled_isometry():
    Q = torch.linalg.qr(torch.randn(5, 2, generator=torch.Generator().manual_seed(0)))[0]
    g = torch.Generator().manual_seed(1)
    z, v = torch.randn(4000, 2, generator=g), torch.randn(4000, 2, generator=g)
    vals = [relaxed_distortion(lambda u: c * u @ Q.T, z, v).item() for c in (0.5, 3.0)]
    assert vals[0] == pytest.approx(vals[1], rel=1e-5)  # scale-free
    assert vals[0] == pytest.approx(1 / (v ** 2).sum(1).mean().item(), rel=1e-5)  # G = c^2 I: 1 / mean ||v||^2
    assert vals[0] == pytest.approx(0.5, rel=0.05)  # about 1/d
    A = torch.tensor([[3.0, 0.0], [0.0, 0.3], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # anisotropic: more distortion
    assert relaxed_distortion(lambda u: u @ A.T, z, v).item() > 1.5 * vals[0]


def test_mix_latents():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 1, generator=g)
    assert mix_latents(z, None, g) is z
    m0 = mix_latents(z, 0.0, g)  # eta=0 (the notebook) still interpolates between random pairs
    assert not torch.equal(m0, z) and m0.min() >= z.min() - 1e-6 and m0.max() <= z.max() + 1e-6
    m1 = mix_latents(z, 1.0, torch.Generator().manual_seed(0))  # eta > 0 extrapolates beyond the pair
    assert m1.min() < z.min() or m1.max() > z.max()


# ------------------------------------------------------------------------------------------ GGAE

def test_ggae_laplacian_and_loss_match_naive():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 3, generator=g)
    D = torch.cdist(x, x)
    z = torch.randn(8, 2, generator=g)
    h = 2.0
    K = np.exp(-D.numpy().astype(np.float64) ** 2 / h)
    k = K.sum(1)
    Kt = K / np.outer(k, k)
    Ln = (Kt / Kt.sum(1, keepdims=True) - np.eye(8)) / (h / 4)
    L = ggae_laplacian(D, h)
    np.testing.assert_allclose(L.numpy(), Ln, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(L.sum(1).numpy(), 0, atol=1e-5)  # rows sum to 0
    Z = z.numpy().astype(np.float64)
    tr, tr2 = [], []
    for i in range(8):
        H = np.empty((2, 2))
        for a in range(2):
            for b in range(2):  # carre du champ: 0.5 (L(z_a z_b) - z_a L z_b - z_b L z_a) at point i
                La, Lb = Ln[i] @ Z[:, a], Ln[i] @ Z[:, b]
                H[a, b] = 0.5 * (Ln[i] @ (Z[:, a] * Z[:, b]) - Z[i, a] * Lb - Z[i, b] * La)
        tr.append(np.trace(H)); tr2.append(np.trace(H @ H))
    assert ggae_loss(L, z).item() == pytest.approx(np.mean(tr2) - 2 * np.mean(tr), rel=1e-4)
    assert ggae_loss(L, torch.ones(8, 2)).item() == pytest.approx(0, abs=1e-6)  # constant latent: H = 0
    assert ggae_loss(L, 10 * z).item() >= -2  # Tr(H^2) - 2 Tr(H) >= -d, equality at H = I


# ------------------------------------------------------------------------------------------ GRAE

def test_grae_target_is_the_standardised_isomap_embedding(roll):
    from sklearn.manifold import Isomap

    D = geodesic_distances(roll, 5)
    E = isomap_embedding(D, 2, random_state=0)
    ref = Isomap(n_neighbors=5, n_components=2).fit_transform(roll)
    for j in range(2):  # equal up to each column's sign
        assert min(np.abs(E[:, j] - ref[:, j]).max(), np.abs(E[:, j] + ref[:, j]).max()) < 1e-4 * np.abs(ref).max()
    est = GRAE(**TINY)
    T = est._targets(roll, torch.as_tensor(D)).numpy()
    np.testing.assert_allclose(T.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(T.std(0), 1, rtol=1e-4)  # z-scored as the reference notebook (scipy.stats.zscore)


@pytest.mark.skipif(importlib.util.find_spec("phate") is not None, reason="phate is installed")
def test_grae_phate_target_needs_phate(roll):
    with pytest.raises(UserError, match="Invalid target: 'phate' needs the phate package"):
        GRAE(target="phate", **TINY).fit(roll)


# ------------------------------------------------------------------------------------------ estimators

@pytest.mark.parametrize("cls", CLASSES)
def test_fit_transform_is_deterministic_and_clones(cls, roll):
    est = cls(**TINY)
    Z = est.fit_transform(roll)
    assert Z.shape == (120, 2) and Z.dtype == np.float32 and np.isfinite(Z).all()
    assert est.inverse_transform(Z).shape == (120, 3) and len(est.loss_curve_) == 2
    assert np.isfinite(est.loss_curve_).all()
    params = est.get_params()
    assert {k: params[k] for k in OWN[cls]} == OWN[cls]  # the documented defaults
    c = clone(est)
    assert c.get_params() == params and not hasattr(c, "encoder_")
    np.testing.assert_array_equal(c.fit_transform(roll), Z)  # same random_state: same result
    assert est.encoder_[0].weight.dtype == torch.float32


@pytest.mark.parametrize("cls,off", [(SPAE, {"lam_spae": 0}), (TopoAE, {"lam_topo": 0}), (GRAE, {"lam_grae": 0}),
                                     (GGAE, {"lam_ggae": 0})])
def test_regulariser_weight_zero_is_the_plain_ae_and_nonzero_is_not(cls, off, roll):
    ae = AE(**TINY).fit_transform(roll)
    np.testing.assert_array_equal(cls(**TINY, **off).fit_transform(roll), ae)
    assert not np.array_equal(cls(**TINY).fit_transform(roll), ae)


def test_irae_eta_and_topo_form_change_training(roll):
    base = IRAE(**{**TINY, "lam_irae": 10.0}).fit_transform(roll)
    assert not np.array_equal(IRAE(**{**TINY, "lam_irae": 10.0, "eta": None}).fit_transform(roll), base)
    assert not np.array_equal(TopoAE(**TINY, form="code").fit_transform(roll), TopoAE(**TINY).fit_transform(roll))


@pytest.mark.parametrize("cls", CLASSES)
def test_conv28_architecture(cls):
    imgs = np.random.default_rng(0).random((24, 784)).astype(np.float32)
    est = cls(architecture="conv28", epochs=1, batch_size=12, random_state=0, connect_components=True).fit(imgs)
    Z = est.transform(imgs)
    assert Z.shape == (24, 2) and np.isfinite(Z).all() and np.isfinite(est.loss_curve_).all()


@pytest.mark.parametrize("cls,kw,match", [
    (SPAE, {"lam_spae": -1}, "Invalid lam_spae: -1; expected a number >= 0"),
    (SPAE, {"lam_spae": float("nan")}, "Invalid lam_spae: nan"),
    (TopoAE, {"lam_topo": -0.5}, "Invalid lam_topo: -0.5"),
    (TopoAE, {"form": "rows"}, "Invalid form: 'rows'; expected one of code, edges"),
    (GRAE, {"lam_grae": "big"}, "Invalid lam_grae: 'big'"),
    (GRAE, {"target": "umap"}, "Invalid target: 'umap'; expected one of isomap, phate"),
    (IRAE, {"lam_irae": -1.0}, "Invalid lam_irae"),
    (IRAE, {"eta": -0.1}, "Invalid eta: -0.1"),
    (GGAE, {"lam_ggae": -1}, "Invalid lam_ggae"),
    (GGAE, {"bandwidth": 0}, "Invalid bandwidth: 0; expected a number > 0"),
    (GGAE, {"dist_neighbors": 0}, "Invalid dist_neighbors: 0; expected an integer >= 1"),
    (GGAE, {"dist_neighbors": 500}, "Invalid dist_neighbors: 500; expected fewer than n_samples=120"),
    (SPAE, {"n_neighbors": 200}, "Invalid n_neighbors: 200"),
])
def test_bad_params_raise_user_error_naming_the_param(cls, kw, match, roll):
    with pytest.raises(UserError, match=match):
        cls(**{**TINY, **kw}).fit(roll)


# Default parameters except the network and training size, as in test_blae.py (disconnected k-NN graphs of the
# checks' blobs are linked with a warning by default); GGAE's own graph gets k=5 for the checks' small data sets.
@parametrize_with_checks([SPAE(hidden=8, epochs=2, random_state=0),
                          TopoAE(hidden=8, epochs=2, random_state=0),
                          GRAE(hidden=8, epochs=2, random_state=0),
                          IRAE(hidden=8, epochs=2, random_state=0),
                          GGAE(hidden=8, epochs=2, random_state=0, dist_neighbors=5)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
