"""Synthetic manifolds with their intrinsic coordinates (sklearn generators; no download)."""

from __future__ import annotations

import numpy as np


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
