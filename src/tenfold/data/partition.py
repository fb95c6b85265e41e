"""Client partitions for federated learning over a label array: IID, Dirichlet(alpha), k classes per client.

All are seeded (the seed alone fixes the split) and return a list of index arrays, one per client.
They work on plain numpy labels, so they need no HF `datasets` object (Flower Datasets' partitioners do).
"""

from __future__ import annotations

import numpy as np


def _check(y: np.ndarray, n_clients: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"Invalid labels shape: {y.shape}; expected (N,)")
    if not (1 <= n_clients <= len(y)):
        raise ValueError(f"Invalid n_clients: {n_clients}; expected 1..{len(y)}")
    return y


def iid_partition(y: np.ndarray, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle and deal indices into `n_clients` near-equal parts."""
    y = _check(y, n_clients)
    perm = np.random.default_rng(seed).permutation(len(y))
    return [np.sort(p) for p in np.array_split(perm, n_clients)]


def dirichlet_partition(y: np.ndarray, n_clients: int, alpha: float, seed: int = 0,
                        min_size: int = 2, max_tries: int = 100) -> list[np.ndarray]:
    """Label-skewed split: for each class, client shares ~ Dir(alpha). Smaller alpha = more skew.

    Resamples (up to `max_tries`) until every client holds at least `min_size` samples, as the
    FL-Simulator / DENSE partitioners do.
    """
    y = _check(y, n_clients)
    if alpha <= 0:
        raise ValueError(f"Invalid alpha: {alpha}; expected > 0")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares) * len(idx)).astype(int)[:-1]
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"could not give every client >= {min_size} samples with alpha={alpha}; raise alpha or data")


def shard_partition(y: np.ndarray, n_clients: int, classes_per_client: int, seed: int = 0) -> list[np.ndarray]:
    """Pathological split: each client holds `classes_per_client` classes (McMahan et al. shards)."""
    y = _check(y, n_clients)
    n_classes = len(np.unique(y))
    if not (1 <= classes_per_client <= n_classes):
        raise ValueError(f"Invalid classes_per_client: {classes_per_client}; expected 1..{n_classes}")
    rng = np.random.default_rng(seed)
    n_shards = n_clients * classes_per_client
    order = np.argsort(y, kind="stable")
    shards = np.array_split(order, n_shards)
    ids = rng.permutation(n_shards).reshape(n_clients, classes_per_client)
    return [np.sort(np.concatenate([shards[i] for i in row])) for row in ids]


def label_histograms(y: np.ndarray, parts: list[np.ndarray], n_classes: int | None = None) -> np.ndarray:
    """(n_clients, n_classes) counts of each label on each client, for plots."""
    y = np.asarray(y)
    n_classes = n_classes or int(y.max()) + 1
    return np.stack([np.bincount(y[p], minlength=n_classes) for p in parts])
