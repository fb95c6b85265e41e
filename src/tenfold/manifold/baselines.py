"""The BLAE paper's autoencoder baselines (SPAE, TopoAE, GRAE, IRAE, GGAE) in the `AutoencoderShell` of blae.py.

Paper: Zhan, Zhou, Wang, Long, Shen, "Bi-Lipschitz Autoencoder with Injectivity Guarantee", ICLR 2026,
arXiv 2604.06701, Table 1. Reference code: github.com/qipengz/BLAE (utils/regularizations.py, utils/functionals.py,
trainers/trainers.py, swiss_roll.ipynb cell 4 for the weights), read, not copied. Each loss follows what the
reference code computes; where that differs from the baseline's own paper the docstring says so.

Implemented: the five regularisers and their estimators (reconstruction MSE + lam * regulariser, trained by the
shared shell); TopoAE's persistence pairs come from a minimum spanning tree instead of gudhi (the same 0-dim pairs).
Not implemented: the other Table 1 baselines (Diffusion Net, CAE, GeomAE; the vanilla AE is `AE` in blae.py) and
SPAE's R2/R3 variants. GRAE's notebook target, PHATE, needs the optional phate package, so Isomap is the default.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state

from tenfold.common.errors import UserError, check_choice
from tenfold.manifold.blae import _COMMON_DOC, AE, geodesic_distances

TOPO_FORMS = ("code", "edges")
GRAE_TARGETS = ("isomap", "phate")


def _check_nonneg(name: str, value) -> None:
    """Raise `UserError` unless `value` is a number >= 0 (NaN fails)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value >= 0:
        raise UserError(f"Invalid {name}: {value!r}; expected a number >= 0")


# --------------------------------------------------------------------------------------------- SPAE

def spae_loss(D: torch.Tensor, z: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """SPAE's R1 regulariser: the mean over points of the variance of log(d_N / d_M) to the other points.

    As the reference utils/regularizations.py:SPAELoss (type "R1", its default) computes it: ratios
    (d_N + eps) / (d_M + eps) over all off-diagonal pairs, the unbiased variance of their logs along each row,
    averaged over rows. It is zero exactly when each point sees all others at one common latent/geodesic ratio.

    Parameters
    ----------
    D : Tensor of shape (B, B)
        Geodesic distances between the batch points.
    z : Tensor of shape (B, d)
        Their latent codes.
    eps : float, default=1e-12
        Added to both distances (the reference's epsilon).

    Returns
    -------
    Tensor of shape ().
    """
    n = len(z)
    if n < 3:  # a row variance needs two off-diagonal entries (the reference gives NaN here; our choice: 0)
        return z.sum() * 0.0
    off = ~torch.eye(n, dtype=torch.bool)
    # (B, B) log-ratios with the diagonal zeroed (not gathered into (B, B-1): same maths, no copy)
    log_r = torch.where(off, torch.log((torch.cdist(z, z) + eps) / (D + eps)), torch.zeros((), dtype=z.dtype))
    mean = log_r.sum(1, keepdim=True) / (n - 1)
    var = (torch.where(off, log_r - mean, torch.zeros((), dtype=z.dtype)) ** 2).sum(1) / (n - 2)  # unbiased
    return var.mean()


# --------------------------------------------------------------------------------------------- TopoAE

def _mst_edges(dist: np.ndarray) -> np.ndarray:
    """Edges (m, 2) of a minimum spanning tree of a dense distance matrix (Prim, O(n^2) in numpy).

    These are the death edges of the 0-dimensional persistence pairs of the Vietoris-Rips filtration, which the
    reference gets from gudhi. Zero-length edges are dropped, as gudhi drops pairs of zero persistence.
    """
    n = len(dist)
    best = dist[0].astype(np.float64)  # cheapest link of each vertex into the tree so far
    parent = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    done[0], best[0] = True, np.inf
    edges = np.empty((n - 1, 2), dtype=np.int64)
    for k in range(n - 1):
        j = int(np.argmin(best))
        edges[k] = parent[j], j
        done[j], best[j] = True, np.inf
        closer = (dist[j] < best) & ~done
        best[closer] = dist[j][closer]
        parent[closer] = j
    return edges[dist[edges[:, 0], edges[:, 1]] > 0]


def topo_loss(D: torch.Tensor, z: torch.Tensor, *, form: str = "edges") -> torch.Tensor:
    """The topological regulariser on one batch, with the persistence pairs of both spaces.

    pi_X and pi_Z are the 0-dimensional persistence pairs (minimum spanning tree edges) of the input-space
    distances D and of the latent distances P = cdist(z) (detached: only the indices are chosen there; gradients
    flow through the selected entries of P).

    "code" (default) is what the reference utils/regularizations.py:TopoLoss computes: it indexes the (B, B)
    matrices with the (m, 2) edge tensor, which in torch selects *whole rows* (shape (m, 2, B)), so its loss is
    0.5 * sum over the endpoints i of every edge of ||D_i - P_i||^2, for both edge sets. We compute the same sum
    as a degree-weighted row sum: 0.5 * sum_i (deg_X(i) + deg_Z(i)) * ||D_i - P_i||^2 (diagonal entries are 0 in
    both matrices and are masked out, our choice, to keep cdist's inexact diagonal out of the gradient).
    "edges" selects the edge entries themselves, the matching of Moor et al. (2020, "symmetric"):
    0.5 * (sum_{(i,j) in pi_X} (D_ij - P_ij)^2 + sum_{(i,j) in pi_Z} (D_ij - P_ij)^2), with the reference's
    other conventions kept (geodesic D, no normalisation of D or P, a sum, no division by the batch size).

    Parameters
    ----------
    D : Tensor of shape (B, B)
        Input-space distances; the reference uses the k-NN graph geodesics (Isomap's, k=5), unnormalised.
    z : Tensor of shape (B, d)
    form : {"edges", "code"}, default="edges"

    Returns
    -------
    Tensor of shape ().
    """
    P = torch.cdist(z, z)  # (B, B)
    n = len(z)
    ex = torch.as_tensor(_mst_edges(D.detach().double().numpy()))
    ez = torch.as_tensor(_mst_edges(P.detach().double().numpy()))
    if form == "edges":
        sq = lambda e: ((D[e[:, 0], e[:, 1]] - P[e[:, 0], e[:, 1]]) ** 2).sum()  # noqa: E731
        return 0.5 * (sq(ex) + sq(ez))
    deg = torch.bincount(torch.cat([ex.flatten(), ez.flatten()]), minlength=n).to(P.dtype)  # (B,)
    off = ~torch.eye(n, dtype=torch.bool)
    rows = torch.where(off, (D - P) ** 2, torch.zeros((), dtype=P.dtype)).sum(1)  # (B,)
    return 0.5 * (deg * rows).sum()


# --------------------------------------------------------------------------------------------- GRAE

def _zscore(E: np.ndarray) -> np.ndarray:
    """Standardise each column (population std, as scipy.stats.zscore); a constant column is only centred."""
    E = E - E.mean(0)
    sd = E.std(0)
    return E / np.where(sd > 0, sd, 1.0)


def isomap_embedding(D: np.ndarray, n_components: int, *, random_state=None) -> np.ndarray:
    """Isomap coordinates from geodesic distances: kernel PCA of -D^2/2 (what sklearn's Isomap computes).

    Parameters
    ----------
    D : ndarray of shape (n_samples, n_samples)
    n_components : int
    random_state : int, RandomState or None, default=None
        Seeds the ARPACK start vector (used when n_samples > 200).

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    from sklearn.decomposition import KernelPCA

    D = np.asarray(D, dtype=np.float64)
    kpca = KernelPCA(n_components, kernel="precomputed", random_state=random_state)
    return kpca.fit_transform(-0.5 * D ** 2)


# --------------------------------------------------------------------------------------------- IRAE

def mix_latents(z: torch.Tensor, eta: float | None, gen: torch.Generator) -> torch.Tensor:
    """IRAE's latent augmentation: alpha * z + (1 - alpha) * z[perm], alpha ~ U(-eta, 1 + eta) per point.

    As reference utils/functionals.py:relaxed_distortion_measure: eta=0 still mixes (convex combinations of random
    pairs); only eta=None returns z unchanged.
    """
    if eta is None:
        return z
    perm = torch.randperm(len(z), generator=gen)
    alpha = (torch.rand(len(z), 1, generator=gen) * (1 + 2 * eta) - eta).to(z.dtype)  # (B, 1)
    return alpha * z + (1 - alpha) * z[perm]


def relaxed_distortion(decoder, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """IRAE's relaxed distortion measure E[Tr(G^2)] / E[Tr(G)]^2 of the decoder's pull-back metric G = J^T J.

    Both traces are Hutchinson estimates with one probe v per point, as reference
    utils/functionals.py:relaxed_distortion_measure: Tr(G) ~ ||J v||^2 and Tr(G^2) ~ ||J^T J v||^2, each averaged
    over the batch before the ratio. For a scaled isometry (G = c^2 I) it is 1 / mean ||v||^2, about 1 / d. Here
    J v is a forward-mode product and J^T (J v) a reverse-mode one, both differentiable (the reference builds both
    from double backward passes; the values are the same).

    Parameters
    ----------
    decoder : callable (B, d) -> (B, n_features)
    z : Tensor of shape (B, d)
        Latent points (already augmented, see `mix_latents`).
    v : Tensor of shape (B, d)
        Probe vectors (standard normal in training).

    Returns
    -------
    Tensor of shape ().
    """
    Jv = torch.func.jvp(decoder, (z,), (v,))[1]  # (B, n_features)
    _, pullback = torch.func.vjp(decoder, z)
    JtJv = pullback(Jv)[0]  # (B, d)
    tr_g = (Jv.flatten(1) ** 2).sum(1).mean()
    tr_g2 = (JtJv ** 2).sum(1).mean()
    return tr_g2 / tr_g ** 2


# --------------------------------------------------------------------------------------------- GGAE

def ggae_laplacian(D: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """The diffusion-maps graph Laplacian of one batch, as reference utils/functionals.py:get_laplacian.

    K = exp(-D^2 / bandwidth) (note: bandwidth, not 2 sigma^2), density-normalised K~ = K_ij / (k_i k_j) with
    k_i = sum_j K_ij, then L = (row-normalised K~ - I) / (bandwidth / 4). Rows of L sum to 0.

    Parameters
    ----------
    D : Tensor of shape (B, B)
        Input-space distances (the reference: k-NN graph geodesics, k=10).
    bandwidth : float

    Returns
    -------
    Tensor of shape (B, B).
    """
    K = torch.exp(-D ** 2 / bandwidth)
    k = K.sum(1)
    Kt = K / (k[:, None] * k[None, :])
    P = Kt / Kt.sum(1, keepdim=True)
    return (P - torch.eye(len(D), dtype=D.dtype)) / (0.25 * bandwidth)


def ggae_loss(L: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """GGAE's distortion loss mean Tr(H^2) - 2 mean Tr(H), H the carre du champ of the latent coordinates.

    H_i[a, b] = 0.5 * (L(z_a z_b) - z_a L(z_b) - z_b L(z_a))_i estimates J G^-1 J^T (the latent coordinates'
    metric seen from the data) at point i, as reference utils/functionals.py:get_JGinvJT and
    relaxed_distortion_measure_JGinvJT. Its minimum, -d, is at H = I; a constant latent gives H = 0 and loss 0.

    Parameters
    ----------
    L : Tensor of shape (B, B)
        `ggae_laplacian` of the batch.
    z : Tensor of shape (B, d)

    Returns
    -------
    Tensor of shape ().
    """
    n, d = z.shape
    zz = (z[:, :, None] * z[:, None, :]).reshape(n, d * d)  # (B, d*d) products z_a z_b
    Lzz = (L @ zz).reshape(n, d, d)
    Lz = L @ z  # (B, d)
    H = 0.5 * (Lzz - z[:, :, None] * Lz[:, None, :] - z[:, None, :] * Lz[:, :, None])  # (B, d, d)
    tr_h = torch.diagonal(H, dim1=1, dim2=2).sum(1)
    tr_h2 = (H * H.transpose(1, 2)).sum((1, 2))  # Tr(H @ H)
    return tr_h2.mean() - 2.0 * tr_h.mean()


# --------------------------------------------------------------------------------------------- estimators

class SPAE(AE):
    __doc__ = """Structure-preserving autoencoder: reconstruction + lam_spae * SPAE's R1 log-ratio variance.

    Each minibatch penalises, per point, the variance of log(latent / geodesic distance) to the other batch points
    (`spae_loss`), so distances are preserved up to one scale per point. The reference trains it with
    GeodesicAutoencoderTrainer(regularization='SPAELoss') on the Isomap (k=5) geodesics of the training set.

    Parameters
    ----------
    lam_spae : float, default=2.0
        Weight of the SPAE loss (reference swiss_roll.ipynb cell 4, train_SPAE: lam_geo=2).
    """ + _COMMON_DOC + """
    References
    ----------
    Reference code: qipengz/BLAE utils/regularizations.py:SPAELoss, trainers/trainers.py:GeodesicAutoencoderTrainer.
    Zhan et al. Bi-Lipschitz Autoencoder with Injectivity Guarantee. ICLR 2026, arXiv:2604.06701 (Table 1, "SPAE").

    Examples
    --------
    >>> from tenfold.data import swiss_roll
    >>> X, _ = swiss_roll(300, seed=0)
    >>> SPAE(epochs=2, hidden=16, random_state=0).fit_transform(X).shape
    (300, 2)
    """

    _needs_geodesic = True

    def __init__(self, n_components=2, *, lam_spae=2.0, architecture="mlp", hidden=256, n_layers=2,
                 epochs=3000, batch_size=512, lr=2e-3, weight_decay=1e-5, lr_schedule="step", n_neighbors=5,
                 connect_components=True, jac_fraction=0.3, validation_fraction=0.0, patience=50, random_state=None,
                 verbose=False):
        super().__init__(n_components, architecture=architecture, hidden=hidden, n_layers=n_layers, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                         n_neighbors=n_neighbors, connect_components=connect_components, jac_fraction=jac_fraction,
                         validation_fraction=validation_fraction, patience=patience, random_state=random_state,
                         verbose=verbose)
        self.lam_spae = lam_spae

    def _check_extra(self):
        _check_nonneg("lam_spae", self.lam_spae)

    def _regulariser(self, x, z, D, decoder, gen):
        s = spae_loss(D, z)
        return self.lam_spae * s, {"spae": s.item()}


class TopoAE(AE):
    __doc__ = """Topological autoencoder: reconstruction + lam_topo * distance matching on 0-dim persistence pairs.

    Per minibatch, the minimum-spanning-tree edges of the input-space distances and of the latent distances (the
    0-dimensional persistence pairs of their Rips filtrations) select distances that must agree in both spaces
    (`topo_loss`). As in the reference, the input-space distances are the k-NN graph geodesics (k = n_neighbors,
    5 in the reference), not the Euclidean, max-normalised ones of Moor et al.; the MST replaces the reference's
    gudhi Rips complex (same pairs up to ties; our choice, gudhi is not a dependency).

    Parameters
    ----------
    lam_topo : float, default=5.0
        Weight of the topological loss (reference swiss_roll.ipynb cell 4, train_TopAE: lam_geo=5).
    form : {"edges", "code"}, default="edges"
        "edges": only the edge distances, Moor et al.'s matching (the published TopoAE, our default); "code": the
        reference TopoLoss's computation, which (through torch's row indexing) matches whole distance rows of the
        edge endpoints, so it acts as a distance-preservation loss on those rows. See `topo_loss`.
    """ + _COMMON_DOC + """
    References
    ----------
    Moor, Horn, Rieck, Borgwardt. Topological Autoencoders. ICML 2020, arXiv:1906.00722.
    Reference code: qipengz/BLAE utils/regularizations.py:TopoLoss, trainers/trainers.py:GeodesicAutoencoderTrainer.

    Examples
    --------
    >>> from tenfold.data import swiss_roll
    >>> X, _ = swiss_roll(300, seed=0)
    >>> TopoAE(epochs=2, hidden=16, random_state=0).fit_transform(X).shape
    (300, 2)
    """

    _needs_geodesic = True

    def __init__(self, n_components=2, *, lam_topo=5.0, form="edges", architecture="mlp", hidden=256, n_layers=2,
                 epochs=3000, batch_size=512, lr=2e-3, weight_decay=1e-5, lr_schedule="step", n_neighbors=5,
                 connect_components=True, jac_fraction=0.3, validation_fraction=0.0, patience=50, random_state=None,
                 verbose=False):
        super().__init__(n_components, architecture=architecture, hidden=hidden, n_layers=n_layers, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                         n_neighbors=n_neighbors, connect_components=connect_components, jac_fraction=jac_fraction,
                         validation_fraction=validation_fraction, patience=patience, random_state=random_state,
                         verbose=verbose)
        self.lam_topo = lam_topo
        self.form = form

    def _check_extra(self):
        _check_nonneg("lam_topo", self.lam_topo)
        check_choice("form", self.form, TOPO_FORMS)

    def _regulariser(self, x, z, D, decoder, gen):
        t = topo_loss(D, z, form=self.form)
        return self.lam_topo * t, {"topo": t.item()}


class GRAE(AE):
    __doc__ = """Geometry-regularised autoencoder: reconstruction + lam_grae * MSE(latent, fixed reference embedding).

    Before training, a reference embedding of the training data is computed once and standardised per column
    (z-score, as the reference notebook does); each minibatch pulls its latent codes towards their rows.
    The reference notebook embeds with PHATE (knn=5, t='auto', gamma=0.1). PHATE is an optional package that
    this project does not install, so the default here is Isomap (on the shell's k-NN geodesics), the other
    embedding GRAE's authors propose; `target="phate"` follows the notebook when phate is installed.

    Parameters
    ----------
    lam_grae : float, default=100.0
        Weight of the embedding loss (reference swiss_roll.ipynb cell 4, train_GRAE: lam=100).
    target : {"isomap", "phate"}, default="isomap"
        The reference embedding: "isomap" (kernel PCA of the k-NN geodesics, k = n_neighbors; our default since
        phate is not installed) or "phate" (the notebook's PHATE(knn=n_neighbors, t='auto', gamma=0.1); needs the
        phate package).
    """ + _COMMON_DOC + """
    References
    ----------
    Duque, Morin, Wolf, Moon. Geometry Regularized Autoencoders. IEEE TPAMI 2022, arXiv:2007.07142.
    Reference code: qipengz/BLAE trainers/trainers.py:GRAETrainer; swiss_roll.ipynb cell 4 (train_GRAE).

    Examples
    --------
    >>> from tenfold.data import swiss_roll
    >>> X, _ = swiss_roll(300, seed=0)
    >>> GRAE(epochs=2, hidden=16, random_state=0).fit_transform(X).shape
    (300, 2)
    """

    def __init__(self, n_components=2, *, lam_grae=100.0, target="isomap", architecture="mlp", hidden=256,
                 n_layers=2, epochs=3000, batch_size=512, lr=2e-3, weight_decay=1e-5, lr_schedule="step",
                 n_neighbors=5, connect_components=True, jac_fraction=0.3, validation_fraction=0.0, patience=50,
                 random_state=None, verbose=False):
        super().__init__(n_components, architecture=architecture, hidden=hidden, n_layers=n_layers, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                         n_neighbors=n_neighbors, connect_components=connect_components, jac_fraction=jac_fraction,
                         validation_fraction=validation_fraction, patience=patience, random_state=random_state,
                         verbose=verbose)
        self.lam_grae = lam_grae
        self.target = target

    @property
    def _needs_geodesic(self):
        return self.target == "isomap"  # the shell computes the geodesics Isomap needs; PHATE builds its own graph

    def _check_extra(self):
        _check_nonneg("lam_grae", self.lam_grae)
        check_choice("target", self.target, GRAE_TARGETS)
        if self.target == "phate" and importlib.util.find_spec("phate") is None:
            raise UserError("Invalid target: 'phate' needs the phate package, which is not installed "
                            "(pip install phate); use target='isomap'")

    def _targets(self, X, D_all):
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if self.target == "phate":
            import phate

            if self.n_neighbors >= len(X):
                raise UserError(f"Invalid n_neighbors: {self.n_neighbors}; expected fewer than n_samples={len(X)}")
            op = phate.PHATE(n_components=self.n_components, knn=self.n_neighbors, t="auto", gamma=0.1, n_jobs=1,
                             random_state=seed, verbose=0)
            E = op.fit_transform(np.asarray(X, dtype=np.float64))
        else:
            E = isomap_embedding(D_all.numpy(), self.n_components, random_state=seed)
        return torch.as_tensor(_zscore(np.asarray(E, dtype=np.float64)), dtype=torch.float32)  # (N, d)

    def _regulariser(self, x, z, D, decoder, gen):
        g = F.mse_loss(z, self._batch_targets)  # mean over the batch and the latent coordinates, as the reference
        return self.lam_grae * g, {"grae": g.item()}


class IRAE(AE):
    __doc__ = """Isometrically regularised autoencoder: reconstruction + lam_irae * relaxed distortion of the decoder.

    The regulariser E[Tr(G^2)] / E[Tr(G)]^2 of the decoder's pull-back metric G = J^T J (`relaxed_distortion`) is
    scale-free: it is minimal (1/d) when the decoder is a scaled isometry, whatever the scale. As in the reference,
    it is estimated on the whole batch (`jac_fraction` is unused) at mixed-up latents (`mix_latents`).

    Parameters
    ----------
    lam_irae : float, default=0.01
        Weight of the distortion loss (reference swiss_roll.ipynb cell 4, train_IRAE: lambda_iso=0.01).
    eta : float or None, default=0.0
        Latent augmentation: the measure is taken at alpha * z + (1 - alpha) * z[perm], alpha ~ U(-eta, 1 + eta);
        0 (the notebook's eta=0.) interpolates between random pairs of the batch; None turns augmentation off.
    """ + _COMMON_DOC + """
    References
    ----------
    Lee, Yoon, Son, Park. Regularized Autoencoders for Isometric Representation Learning. ICLR 2022.
    Reference code: qipengz/BLAE trainers/trainers.py:IRAETrainer, utils/regularizations.py:IsometricRegularization,
    utils/functionals.py:relaxed_distortion_measure.

    Examples
    --------
    >>> from tenfold.data import swiss_roll
    >>> X, _ = swiss_roll(300, seed=0)
    >>> IRAE(epochs=2, hidden=16, random_state=0).fit_transform(X).shape
    (300, 2)
    """

    def __init__(self, n_components=2, *, lam_irae=0.01, eta=0.0, architecture="mlp", hidden=256, n_layers=2,
                 epochs=3000, batch_size=512, lr=2e-3, weight_decay=1e-5, lr_schedule="step", n_neighbors=5,
                 connect_components=True, jac_fraction=0.3, validation_fraction=0.0, patience=50, random_state=None,
                 verbose=False):
        super().__init__(n_components, architecture=architecture, hidden=hidden, n_layers=n_layers, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                         n_neighbors=n_neighbors, connect_components=connect_components, jac_fraction=jac_fraction,
                         validation_fraction=validation_fraction, patience=patience, random_state=random_state,
                         verbose=verbose)
        self.lam_irae = lam_irae
        self.eta = eta

    def _check_extra(self):
        _check_nonneg("lam_irae", self.lam_irae)
        if self.eta is not None:
            _check_nonneg("eta", self.eta)

    def _regulariser(self, x, z, D, decoder, gen):
        z_aug = mix_latents(z, self.eta, gen)
        v = torch.randn(z.shape, generator=gen, dtype=z.dtype)
        r = relaxed_distortion(decoder, z_aug, v)
        return self.lam_irae * r, {"irae": r.item()}


class GGAE(AE):
    __doc__ = """Geometry-guided autoencoder: reconstruction + lam_ggae * Laplacian-based distortion of the latent.

    Per minibatch, a diffusion-maps Laplacian of the input-space geodesics (`ggae_laplacian`) turns the latent
    coordinates into an estimate H of J G^-1 J^T at every point, penalised by mean Tr(H^2) - 2 mean Tr(H)
    (`ggae_loss`), which pulls H towards the identity. The geodesics come from their own k-NN graph with
    k = dist_neighbors (10 in the reference notebook), so the shell's `n_neighbors` is unused here.

    Parameters
    ----------
    lam_ggae : float, default=1.0
        Weight of the distortion loss (reference swiss_roll.ipynb cell 4, train_GGAE: lam=1).
    bandwidth : float, default=2.0
        Kernel bandwidth h in exp(-d^2 / h) (notebook: bandwidth=2; GGAETrainer's own default is 0.2).
    dist_neighbors : int, default=10
        k of the k-NN graph whose shortest paths feed the kernel (notebook: compute_euclidean_knn_distance_matrix
        with k=10). A disconnected graph is refused or joined as `connect_components` says (the reference caps
        infinite distances at 1e4 instead: our choice differs there).
    """ + _COMMON_DOC + """
    References
    ----------
    Lim, Kim, Lee, Jang, Park. Graph Geometry-Preserving Autoencoders. ICML 2024.
    Reference code: qipengz/BLAE trainers/trainers.py:GGAETrainer; utils/functionals.py:get_laplacian, get_JGinvJT,
    relaxed_distortion_measure_JGinvJT, compute_euclidean_knn_distance_matrix.

    Examples
    --------
    >>> from tenfold.data import swiss_roll
    >>> X, _ = swiss_roll(300, seed=0)
    >>> GGAE(epochs=2, hidden=16, random_state=0).fit_transform(X).shape
    (300, 2)
    """

    def __init__(self, n_components=2, *, lam_ggae=1.0, bandwidth=2.0, dist_neighbors=10, architecture="mlp",
                 hidden=256, n_layers=2, epochs=3000, batch_size=512, lr=2e-3, weight_decay=1e-5, lr_schedule="step",
                 n_neighbors=5, connect_components=True, jac_fraction=0.3, validation_fraction=0.0, patience=50,
                 random_state=None, verbose=False):
        super().__init__(n_components, architecture=architecture, hidden=hidden, n_layers=n_layers, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, lr_schedule=lr_schedule,
                         n_neighbors=n_neighbors, connect_components=connect_components, jac_fraction=jac_fraction,
                         validation_fraction=validation_fraction, patience=patience, random_state=random_state,
                         verbose=verbose)
        self.lam_ggae = lam_ggae
        self.bandwidth = bandwidth
        self.dist_neighbors = dist_neighbors

    def _check_extra(self):
        _check_nonneg("lam_ggae", self.lam_ggae)
        b = self.bandwidth
        if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) or not b > 0:
            raise UserError(f"Invalid bandwidth: {b!r}; expected a number > 0")
        k = self.dist_neighbors
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise UserError(f"Invalid dist_neighbors: {k!r}; expected an integer >= 1")

    def _targets(self, X, D_all):
        if self.dist_neighbors >= len(X):
            raise UserError(f"Invalid dist_neighbors: {self.dist_neighbors}; expected fewer than n_samples={len(X)}")
        D = torch.as_tensor(geodesic_distances(X, self.dist_neighbors, connect_components=self.connect_components))
        # The shell hands `_regulariser` only the batch's rows of the targets, so column 0 carries each point's index
        # (exact in float32 below 2^24) to cut the batch's columns out of the other N.
        return torch.cat([torch.arange(len(X), dtype=torch.float32)[:, None], D], 1)  # (N, 1 + N)

    def _regulariser(self, x, z, D, decoder, gen):
        idx = self._batch_targets[:, 0].long()
        Db = self._batch_targets[:, 1:][:, idx]  # (B, B) geodesics within the batch
        g = ggae_loss(ggae_laplacian(Db, self.bandwidth), z)
        return self.lam_ggae * g, {"ggae": g.item()}
