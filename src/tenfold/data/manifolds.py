"""Synthetic manifolds with their intrinsic coordinates (no download).

* `swiss_roll`, `s_curve`: sklearn's generators.
* `reference_swiss_roll`: the swiss roll of the BLAE reference code (github.com/qipengz/BLAE, data/data_class.py:
  SwissRoll; "Bi-Lipschitz Autoencoder with Injectivity Guarantee", ICLR 2026, arXiv 2604.06701), own code.
* `rotated_digit_ring`, `digit_image`: one MNIST digit rotated through a full turn, a 1-D ring manifold in
  pixel space (the paper's rotated-'3' MNIST set; the reference repository has no generator for it).
"""

from __future__ import annotations

import numpy as np

from tenfold.common.errors import UserError, check_choice, check_positive


def swiss_roll(n: int = 2000, *, noise: float = 0.0, hole: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Swiss roll points (n, 3) and intrinsic 2-D coordinates (n, 2) = (angle t, height).

    `hole=True` removes a rectangle in the middle of the intrinsic domain (sklearn's `hole`).
    """
    from sklearn.datasets import make_swiss_roll

    x, t = make_swiss_roll(n, noise=noise, random_state=seed, hole=hole)
    return x.astype(np.float32), np.stack([t, x[:, 1]], 1).astype(np.float32)


def s_curve(n: int = 2000, *, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """S-curve points (n, 3) and intrinsic 2-D coordinates (n, 2) = (t, height)."""
    from sklearn.datasets import make_s_curve

    x, t = make_s_curve(n, noise=noise, random_state=seed)
    return x.astype(np.float32), np.stack([t, x[:, 1]], 1).astype(np.float32)


# ------------------------------------------------------------------------------ BLAE reference swiss roll

_SR_B = 0.1                     # log-spiral growth rate: radius r = exp(b t) at angle t
_SR_ARC = (-2.0, 10.0)          # arc length l along the spiral, measured from t = 0 (where r = 1)
_SR_HEIGHT = 6.0                # height z is uniform in [0, 6]
_SR_HOLE = ((1.5, 6.5), (2.5, 3.5))  # removed open band: l in (1.5, 6.5) and z in (2.5, 3.5)


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"Invalid n: {n!r}; expected an integer >= 1")
    return int(n)


def reference_swiss_roll(n: int, *, hole: bool = True, noise: float = 0.0,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The BLAE reference code's swiss roll: a log spiral sampled uniformly in arc length, with a band removed.

    Our own implementation of data/data_class.py:SwissRoll (github.com/qipengz/BLAE). The curve is the log
    spiral r = exp(b t), b = 0.1, parametrised by its arc length from t = 0,
    l = sqrt(1 + b^2) / b * (exp(b t) - 1), with l uniform in [-2, 10] (so t in [-2.22, 6.91], about 1.45
    turns, radius 0.80 to 2.00), and the height z uniform in [0, 6]. Since (l, z) are isometric coordinates of
    this developable surface, the points are uniform on the manifold, and geodesic distances are Euclidean
    distances in (l, z) away from the hole. `hole=True` removes the open band l in (1.5, 6.5), z in (2.5, 3.5)
    (5/72 = 7 % of the area).

    The reference notebook (swiss_roll.ipynb) uses SwissRoll(n_samples=10000, test_size=0.85, hole=True):
    10,000 points of which 15 % (1,500) train and 8,500 test. Its data generator always uses
    np.random.RandomState(0) (its random_state only seeds the split); we draw in the same order from
    RandomState(seed), so seed=0 gives the reference's points in its order (before the split).

    Parameters
    ----------
    n : int
        Number of points returned.
    hole : bool, default=True
        Remove the band. (With hole=False the reference returns 2n points and crashes when noise > 0;
        OUR CHOICE: we return the first n.)
    noise : float, default=0.0
        Standard deviation of isotropic Gaussian noise added to X (not to the intrinsic coordinates).
    seed : int, default=0
        Seed of the numpy RandomState.

    Returns
    -------
    X : ndarray of shape (n, 3), float32
        (r cos t, r sin t, z).
    intrinsic : ndarray of shape (n, 2), float32
        (arc length l, height z).

    Examples
    --------
    >>> X, u = reference_swiss_roll(100)
    >>> X.shape, u.shape
    ((100, 3), (100, 2))
    """
    n = _check_n(n)
    check_positive("noise", noise, allow_zero=True)
    rng = np.random.RandomState(seed)
    b, (lo, hi), (hl, hz) = _SR_B, _SR_ARC, _SR_HOLE
    ls, zs, kept = [], [], 0
    while kept < n:  # the reference draws 2n once; more rounds happen only when the hole eats > n of them
        m = 2 * n
        l = lo + (hi - lo) * rng.uniform(size=m)
        z = _SR_HEIGHT * rng.uniform(size=m)
        perm = np.arange(m)
        rng.shuffle(perm)  # no effect on the distribution; kept so that seed=0 reproduces the reference's order
        l, z = l[perm], z[perm]
        if hole:
            inside = (l > hl[0]) & (l < hl[1]) & (z > hz[0]) & (z < hz[1])
            l, z = l[~inside], z[~inside]
        ls.append(l)
        zs.append(z)
        kept += len(l)
    l, z = np.concatenate(ls)[:n], np.concatenate(zs)[:n]
    r = 1 + b * l / np.sqrt(1 + b ** 2)  # radius exp(b t) from the arc length
    t = np.log(r) / b
    X = np.stack([r * np.cos(t), r * np.sin(t), z], 1)  # (n, 3)
    if noise > 0:
        X = X + noise * rng.randn(n, 3)
    return X.astype(np.float32), np.stack([l, z], 1).astype(np.float32)


# ---------------------------------------------------------------------------------- rotated-digit ring

SAMPLINGS = ("uniform", "nonuniform")
NONUNIFORM_KAPPA = 1.0  # von Mises concentration of sampling="nonuniform": density ratio exp(2 kappa) = 7.4


def digit_image(digit: int = 3, index: int = 0) -> np.ndarray:
    """The `index`-th image of `digit` in MNIST-5k (`tenfold.data.images.mnist5k`), (28, 28) float32 in [0, 1]."""
    from tenfold.data.images import mnist5k

    check_choice("digit", digit, range(10))
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise UserError(f"Invalid index: {index!r}; expected an integer >= 0")
    x, y = mnist5k()  # checked cheaply above, as loading takes seconds
    idx = np.flatnonzero(y == digit)
    if index >= len(idx):
        raise UserError(f"Invalid index: {index}; MNIST-5k has {len(idx)} images of digit {digit}, "
                        f"so expected an integer in [0, {len(idx)})")
    return (x[idx[index]] / 255.0).astype(np.float32)


def rotated_digit_ring(image, n: int, *, sampling: str = "uniform", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rotations of one image through a full turn: n points on a ring manifold in pixel space.

    The paper's rotated-'3' MNIST set (uniform and non-uniform sampling of the same ring, to test whether the
    embedding depends on the sampling density). The reference repository ships no generator for it, so the
    sampling densities here are OUR CHOICE. Each image is `scipy.ndimage.rotate(image, degrees,
    reshape=False, order=1)` (bilinear, about the image centre, counter-clockwise as displayed, zero fill).

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Integer pixels (0-255, divided by 255) or floats in [0, 1], e.g. `digit_image(3)`.
    n : int
        Number of rotated copies.
    sampling : {"uniform", "nonuniform"}, default="uniform"
        "uniform": angles i.i.d. uniform on [0, 2 pi). "nonuniform" (OUR CHOICE): i.i.d. von Mises with mean 0
        (the unrotated image) and concentration `NONUNIFORM_KAPPA` = 1, i.e. density proportional to
        exp(cos(angle)): 7.4 times denser at angle 0 than at pi, yet positive on the whole circle.
    seed : int, default=0
        Seed of the numpy Generator.

    Returns
    -------
    X : ndarray of shape (n, H * W), float32 in [0, 1]
    angle : ndarray of shape (n,), float32 in [0, 2 pi), radians

    Examples
    --------
    >>> X, a = rotated_digit_ring(np.eye(28, dtype=np.float32), 4)
    >>> X.shape, a.shape
    ((4, 784), (4,))
    """
    from scipy.ndimage import rotate

    n = _check_n(n)
    check_choice("sampling", sampling, SAMPLINGS)
    img = np.asarray(image)
    if img.ndim != 2 or min(img.shape) < 2:
        raise UserError(f"Invalid image: shape {img.shape}; expected a 2-D (H, W) array")
    if np.issubdtype(img.dtype, np.integer):
        img = img / 255.0
    img = img.astype(np.float64)
    if not (np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1):
        raise UserError("Invalid image: float pixels must lie in [0, 1] (or pass integer pixels 0-255)")
    rng = np.random.default_rng(seed)
    if sampling == "uniform":
        a = rng.uniform(0, 2 * np.pi, n)
    else:
        a = np.mod(rng.vonmises(0.0, NONUNIFORM_KAPPA, n), 2 * np.pi)
    a = a.astype(np.float32)
    a[a >= 2 * np.pi] = 0.0  # float32 rounding can reach 2 pi, which is angle 0
    X = np.stack([rotate(img, np.degrees(float(ai)), reshape=False, order=1, mode="constant", cval=0.0)
                  for ai in a])  # (n, H, W)
    return np.clip(X, 0, 1).reshape(n, -1).astype(np.float32), a
