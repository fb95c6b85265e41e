"""BLAE and the baseline autoencoders: losses vs naive references, the scikit-learn contract, resume, errors."""

import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from tenfold.common.errors import UserError
from tenfold.data import swiss_roll
from tenfold.manifold import (AE, BLAE, GeoAE, IsoAE, bilipschitz_loss, decoder_jacobian, geodesic_distances,
                              geodesic_mse_loss, injective_loss, isometry_loss)
from tenfold.manifold.blae import _mlp

TINY = dict(hidden=16, epochs=4, batch_size=64, random_state=0)
CLASSES = [AE, BLAE, GeoAE, IsoAE]


@pytest.fixture(scope="module")
def roll():
    X, t = swiss_roll(160, hole=True, seed=0)
    return X, t


# ------------------------------------------------------------------------------------------ losses vs naive

@pytest.mark.parametrize("form,alpha", [("paper", 5.0), ("paper", 2.0), ("separation", 5.0)])
@pytest.mark.parametrize("eps,delta_rel", [(0.3, 0.05), (0.8, 0.3), (1.0, 0.0)])
def test_injective_loss_matches_naive(form, alpha, eps, delta_rel):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 3, generator=g)
    D = torch.cdist(x, x)
    z = torch.randn(9, 2, generator=g) * 0.5
    terms = []
    for i in range(9):
        for j in range(i + 1, 9):
            dm, dn = D[i, j].item(), (z[i] - z[j]).norm().item()
            if dm > delta_rel * D.max().item() and dn > 0:
                t = max(0.0, math.log(eps * dm / dn))  # ReLU(log(eps d_M / d_N)), the separation criterion
                if form == "paper":  # + alpha ReLU(d_N / d_M - 1), the paper's non-expansion penalty
                    t += alpha * max(0.0, dn / dm - 1)
                terms.append(t)
    got = injective_loss(D, z, eps=eps, delta_rel=delta_rel, form=form, alpha=alpha).item()
    assert got == pytest.approx(np.mean(terms), rel=1e-5, abs=1e-6)


def test_jacobian_and_jacobian_losses_match_naive():
    torch.manual_seed(0)
    dec = _mlp(2, 8, 2, 5)
    z = torch.randn(4, 2)
    J = decoder_jacobian(dec, z)
    ref = torch.stack([torch.autograd.functional.jacobian(dec, zi) for zi in z])
    assert J.shape == (4, 5, 2)
    torch.testing.assert_close(J, ref, rtol=1e-5, atol=1e-6)
    for kappa in (1.0, 2.0):
        naive = []
        for Ji in J.detach().numpy():
            s = np.linalg.svd(Ji, compute_uv=False)
            naive.append(max(0, 1 / kappa - s[-1]) ** 2 + max(0, s[0] - kappa) ** 2)
        assert bilipschitz_loss(J, kappa=kappa).item() == pytest.approx(np.mean(naive), rel=1e-5)
        naive = []
        for Ji in J.detach().numpy():
            G = Ji.T @ Ji
            naive.append(2 * G[0, 1] ** 2 + sum(max(0, G[a, a] - kappa) ** 2 for a in range(2)))
        assert bilipschitz_loss(J, kappa=kappa, form="code").item() == pytest.approx(np.mean(naive), rel=1e-5)
    naive = np.mean([((Ji.T @ Ji - np.eye(2)) ** 2).sum() for Ji in J.detach().numpy()])
    assert isometry_loss(J).item() == pytest.approx(naive, rel=1e-5)
    # an isometric linear decoder (orthonormal columns) has zero penalty in every form
    Q = torch.linalg.qr(torch.randn(5, 2))[0]
    Jq = Q.expand(3, 5, 2)
    assert bilipschitz_loss(Jq).item() == pytest.approx(0, abs=1e-10)
    assert isometry_loss(Jq).item() == pytest.approx(0, abs=1e-10)


def test_geodesic_mse_and_geodesic_distances(roll):
    from sklearn.manifold import Isomap

    X = roll[0]
    D = geodesic_distances(X, 6)
    ref = Isomap(n_neighbors=6, n_components=2).fit(X).dist_matrix_
    np.testing.assert_allclose(D, ref, rtol=1e-5)
    z = torch.randn(5, 2)
    Dt = torch.as_tensor(D[:5, :5])
    naive = np.mean([((z[i] - z[j]).norm().item() - D[i, j]) ** 2 for i in range(5) for j in range(i + 1, 5)])
    assert geodesic_mse_loss(Dt, z).item() == pytest.approx(naive, rel=1e-5)


def test_disconnected_graph_is_refused_or_connected():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(20, 3)), 100 + rng.normal(size=(20, 3))])
    with pytest.raises(UserError, match="2 connected components.*larger n_neighbors"):
        geodesic_distances(X, 3)
    D = geodesic_distances(X, 3, connect_components=True)
    assert np.isfinite(D).all() and D[0, 30] > 90
    with pytest.raises(UserError, match="connected components"):
        BLAE(**TINY, connect_components=False).fit(X)
    with pytest.warns(UserWarning, match="2 connected components; linking them"):  # the default, as Isomap does
        assert BLAE(**TINY).fit(X).transform(X).shape == (40, 2)


# ------------------------------------------------------------------------------------------ the estimator contract

# Default parameters except the size of the networks and of training (hidden 8, 2 epochs: the checks fit dozens of
# times), n_components=2 included: a latent as wide as two-feature data is accepted, as KernelPCA and Isomap accept
# it. Most of scikit-learn's checks fit on two tight blobs or on iris, whose 5-NN graphs have two components; the
# geodesic estimators link them and warn by default (connect_components=True), as Isomap does.
@parametrize_with_checks([AE(hidden=8, epochs=2, random_state=0),
                          BLAE(hidden=8, epochs=2, random_state=0),
                          GeoAE(hidden=8, epochs=2, random_state=0),
                          IsoAE(hidden=8, epochs=2, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", CLASSES)
def test_fit_transform_inverse_clone_pickle(cls, roll):
    X = roll[0]
    est = cls(**TINY)
    Z = est.fit_transform(X)
    assert Z.shape == (160, 2) and Z.dtype == np.float32
    assert est.inverse_transform(Z).shape == (160, 3)
    assert len(est.loss_curve_) == est.n_iter_ == 4 and est.validation_scores_ == []  # no early stopping by default
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "encoder_")
    np.testing.assert_array_equal(c.fit_transform(X), Z)  # same random_state: same result
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X), Z)


def test_training_lowers_reconstruction_and_early_stopping(roll):
    X = roll[0]
    short = AE(**{**TINY, "epochs": 1, "validation_fraction": 0.0}).fit(X)
    longer = AE(**{**TINY, "epochs": 40, "validation_fraction": 0.0}).fit(X)
    mse = lambda m: float(np.mean((m.inverse_transform(m.transform(X)) - X) ** 2))  # noqa: E731
    assert mse(longer) < mse(short)
    es = AE(**{**TINY, "epochs": 200, "patience": 1, "lr": 0.5, "validation_fraction": 0.1}).fit(X)  # stalls, stops
    assert es.n_iter_ < 200 and 1 <= es.best_epoch_ <= es.n_iter_


def test_regulariser_forms_change_training(roll):
    X = roll[0]
    base = BLAE(**TINY).fit_transform(X)


    for kw in ({"bilipschitz": "code"}, {"lam_inj": 0.0}, {"lam_bilip": 0.0}):
        assert not np.array_equal(BLAE(**TINY, **kw).fit_transform(X), base), kw


def test_non_expansion_penalty_pulls_the_largest_distance_ratio_down(roll):
    X = roll[0]
    # the paper's non-expansion term only acts once some latent distance exceeds its geodesic one (ratio r > 1);
    # lr=0.05 gets there within 4 epochs on this roll without it
    kw = {**TINY, "lr": 0.05}
    paper = BLAE(**kw).fit(X)
    sep = BLAE(**kw, injective="separation").fit(X)
    Zp, Zs = paper.transform(X), sep.transform(X)
    assert paper.n_iter_ == 4 and np.isfinite(Zp).all() and np.isfinite(paper.loss_curve_).all()
    assert not np.array_equal(Zs, Zp) and sep.loss_curve_ != paper.loss_curve_
    D = geodesic_distances(X, 5)
    far = D > 0.05 * D.max()
    ratio = lambda Z: np.linalg.norm(Z[:, None] - Z[None], axis=-1)[far] / D[far]  # noqa: E731
    assert ratio(Zs).max() > 1  # without the penalty the encoder expands some pairs
    assert ratio(Zp).max() <= ratio(Zs).max() + 1e-3  # the penalty pulls the largest ratio down, not up


def test_conv28_architecture_and_wide_latents():
    rng = np.random.default_rng(0)
    imgs = rng.random((40, 784)).astype(np.float32)
    est = BLAE(architecture="conv28", epochs=2, random_state=0, connect_components=True).fit(imgs)
    Z = est.transform(imgs)
    assert Z.shape == (40, 2) and est.inverse_transform(Z).shape == (40, 784)
    assert type(est.encoder_).__name__ == "_ConvEncoder28"
    recon = est.inverse_transform(Z)
    assert recon.min() >= 0 and recon.max() <= 1  # the reference decoder ends in a sigmoid
    with pytest.raises(UserError, match="Invalid X for architecture='conv28': 3 features"):
        AE(architecture="conv28", **TINY).fit(rng.random((20, 3)))
    assert AE(n_components=3, **TINY).fit_transform(rng.random((20, 3))).shape == (20, 3)  # no bottleneck, allowed


def test_verbose_shows_a_progress_bar_on_stderr(roll, capsys):
    X = roll[0]
    quiet = BLAE(**TINY).fit(X)
    assert capsys.readouterr().err == ""
    est = BLAE(**TINY, verbose=True).fit(X)
    err = capsys.readouterr().err
    assert "BLAE" in err  # tqdm's bar, labelled with the class name
    np.testing.assert_array_equal(est.transform(X), quiet.transform(X))  # the bar does not change training


def test_early_stopping_restores_the_best_weights(roll):
    import copy

    import torch.nn.functional as F
    from sklearn.utils import check_random_state

    X = roll[0]
    snaps = []  # the weights after every epoch
    est = AE(**{**TINY, "epochs": 300, "patience": 5, "lr": 0.02, "lr_schedule": "constant",
                "validation_fraction": 0.2})
    est.fit(X, callback=lambda e, m: snaps.append((copy.deepcopy(m.encoder_.state_dict()),
                                                    copy.deepcopy(m.decoder_.state_dict()))))
    assert est.n_iter_ < 300 and est.n_iter_ == len(snaps) == len(est.validation_scores_)  # it stopped early
    assert est.n_iter_ - est.best_epoch_ == est.patience  # after `patience` epochs without improvement
    assert est.best_epoch_ == int(np.argmin(est.validation_scores_)) + 1
    best, last = snaps[est.best_epoch_ - 1], snaps[-1]
    for net, b in ((est.encoder_, best[0]), (est.decoder_, best[1])):
        assert all(torch.equal(got, want) for got, want in zip(net.state_dict().values(), b.values()))
    assert not all(torch.equal(a, b) for a, b in zip(best[1].values(), last[1].values()))  # not the last epoch's
    # the restored weights give the best validation objective (AE: reconstruction MSE on the validation split,
    # which is fit's first 20% of a permutation drawn from its generator, seeded from random_state)
    seed = int(check_random_state(0).randint(np.iinfo(np.int32).max))
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    xv = torch.tensor(X, dtype=torch.float32)[order[:round(0.2 * len(X))]]
    with torch.no_grad():
        v = F.mse_loss(est.decoder_(est.encoder_(xv)), xv).item()
    assert v == pytest.approx(min(est.validation_scores_), rel=1e-5)


def test_resume_is_bit_identical(roll, tmp_path):
    X = roll[0]
    full = BLAE(**{**TINY, "epochs": 6}).fit(X)

    class Stop(Exception):
        pass

    def interrupt(epoch, est):
        if epoch == 3:
            raise Stop

    path = tmp_path / "blae.pt"
    with pytest.raises(Stop):
        BLAE(**{**TINY, "epochs": 6}).fit(X, checkpoint_path=path, checkpoint_every=3, callback=interrupt)
    seen = []
    resumed = BLAE(**{**TINY, "epochs": 6}).fit(X, checkpoint_path=path, checkpoint_every=3,
                                                 callback=lambda e, _: seen.append(e))
    assert seen == [4, 5, 6]  # it restarted from epoch 3
    for a, b in zip(full.encoder_.state_dict().values(), resumed.encoder_.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.loss_curve_ == full.loss_curve_
    # a checkpoint for other parameters is ignored, not loaded
    seen.clear()
    BLAE(**{**TINY, "epochs": 6, "eps": 0.5}).fit(X, checkpoint_path=path, callback=lambda e, _: seen.append(e))
    assert seen == [1, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("kw,Xfn,match", [
    ({}, lambda X: np.where(X > 5, np.nan, X), "NaN"),
    ({}, lambda X: np.where(X > 5, np.inf, X), "infinity"),
    ({"n_components": 0}, lambda X: X, "Invalid n_components: 0; expected an integer >= 1"),
    ({"architecture": "cnn"}, lambda X: X, "Invalid architecture: 'cnn'; expected one of mlp, conv28"),
    ({"alpha": -1.0}, lambda X: X, "Invalid alpha"),
    ({"n_neighbors": 10}, lambda X: X[:8], "Invalid n_neighbors: 10; expected fewer than n_samples=8"),
    ({"injective": "both"}, lambda X: X, "Invalid injective: 'both'; expected one of paper, separation"),
    ({"bilipschitz": "x"}, lambda X: X, "Invalid bilipschitz"),
    ({"epochs": 0}, lambda X: X, "Invalid epochs"),
    ({"lr": -1.0}, lambda X: X, "Invalid lr"),
    ({"kappa": 0.5}, lambda X: X, "Invalid kappa"),
    ({"eps": 0.0}, lambda X: X, "Invalid eps"),
    ({"jac_fraction": 0.0}, lambda X: X, "Invalid jac_fraction"),
    ({"validation_fraction": 0.7}, lambda X: X, "Invalid validation_fraction"),
    ({"lr_schedule": "cosine"}, lambda X: X, "Invalid lr_schedule"),
])
def test_bad_input_is_refused(kw, Xfn, match, roll):
    with pytest.raises(ValueError, match=match):
        BLAE(**{**TINY, **kw}).fit(Xfn(roll[0]))


def test_unfitted_and_wrong_shapes(roll):
    X = roll[0]
    with pytest.raises(NotFittedError):
        BLAE().transform(X)
    est = AE(**TINY).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :2])
    with pytest.raises(UserError, match="Invalid Z"):
        est.inverse_transform(np.zeros((3, 3)))
    with pytest.raises(UserError, match="Invalid lam_geo"):
        GeoAE(**TINY, lam_geo=-1).fit(X)
    with pytest.raises(UserError, match="Invalid lam_iso"):
        IsoAE(**TINY, lam_iso=-1).fit(X)


def test_docs_and_readme_examples_run():
    """The Component API example of docs/blae.md and the README's BLAE snippet run as written."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    docs = re.findall(r"```python\n(.*?)```", (root / "docs" / "blae.md").read_text(), re.S)
    readme = [b for b in re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
              if "from tenfold.manifold import" in b]
    assert docs and readme
    for block in (docs[0], readme[0]):
        scope: dict = {}
        exec(compile(block, "<example>", "exec"), scope)  # noqa: S102 - our own documentation
        assert scope["Z"].shape[1] == 2 and np.isfinite(scope["Z"]).all()
