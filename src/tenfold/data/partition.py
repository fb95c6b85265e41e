"""Client partitions for federated learning over a label array: IID, Dirichlet(alpha) (two variants), k classes
per client.

All are seeded (the seed alone fixes the split) and return a list of index arrays, one per client. Only
`flsim_dirichlet_partition` can repeat an index (see `count_duplicates`).
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

    Resamples (up to `max_tries`) until every client holds at least `min_size` samples, as the NIID-Bench
    (Li et al., arXiv 2102.02079) and DENSE partitioners do. Client sizes vary and no sample is repeated. This is
    *not* FL-Simulator's split, which draws a class prior per client and gives every client the same size: see
    `flsim_dirichlet_partition`.
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


def flsim_dirichlet_partition(y: np.ndarray, n_clients: int, alpha: float, seed: int = 0, *,
                              return_priors: bool = False):
    """FL-Simulator's Dirichlet split: equal client sizes, one Dir(alpha) class prior per client, refills.

    Follows `DatasetObject.set_data` (rule "Dirichlet") of woodenchild95/FL-Simulator step by step, with its
    global numpy RNG replaced by `np.random.RandomState(seed)`, which draws the same stream as `np.random.seed(seed)`:

    1. shuffle the data (a permutation of N);
    2. give every client N // n_clients samples (client 0 also takes the remainder);
    3. draw each client's class prior p_i ~ Dir(alpha * 1_C), shape (n_clients, C);
    4. until every client is full: pick a random client that is not full, draw a class from its prior and give it
       the next unused sample of that class. When a class has run out it is *refilled* (all its samples become
       available again) and the class is redrawn, so a sample can be dealt more than once, to one client or to
       several. `count_duplicates` counts the repeats.

    Given the same labels in the same order and the same seed, client i receives the same samples, in the same
    order, as FL-Simulator's `client_x[i]`.

    Parameters
    ----------
    y : ndarray of shape (N,)
        Integer labels 0..C-1; every class must occur (a missing class could never be refilled).
    n_clients : int
        Number of clients, 1..N.
    alpha : float
        Dirichlet concentration (> 0); smaller = more label skew. FL-Simulator's `--split-coef`.
    seed : int, default=0
        Fixes the whole split.
    return_priors : bool, default=False
        Also return the class priors.

    Returns
    -------
    parts : list of ndarray of int64
        Indices into `y`, one array per client, in FL-Simulator's order (not sorted; may contain repeats).
    priors : ndarray of shape (n_clients, C)
        Only with `return_priors=True`: each client's class prior p_i (rows sum to 1).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(4), 25)
    >>> parts = flsim_dirichlet_partition(y, 4, alpha=0.1, seed=0)
    >>> [len(p) for p in parts]
    [25, 25, 25, 25]
    >>> count_duplicates(parts) >= 0
    True
    """
    y = _check(y, n_clients)
    if not alpha > 0:
        raise ValueError(f"Invalid alpha: {alpha}; expected > 0")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"Invalid labels: expected integers 0..C-1, got dtype {y.dtype} with minimum {y.min()}")
    n_cls = int(y.max()) + 1
    missing = np.setdiff1d(np.arange(n_cls), y)
    if len(missing):
        raise ValueError(f"Invalid labels: classes {missing.tolist()} never occur; expected every class 0..{n_cls - 1}")
    rs = np.random.RandomState(seed)
    perm = rs.permutation(len(y))
    y_shuffled = y[perm]
    left = np.full(n_clients, len(y) // n_clients, dtype=np.int64)
    left[0] += len(y) - left.sum()              # FL-Simulator adds the remainder to the first client
    priors = rs.dirichlet([alpha] * n_cls, size=n_clients)
    prior_cumsum = np.cumsum(priors, axis=1)   # (n_clients, C)
    idx_list = [np.flatnonzero(y_shuffled == c) for c in range(n_cls)]
    cls_amount = [len(i) for i in idx_list]
    parts = [np.empty(n, dtype=np.int64) for n in left]
    remaining = int(left.sum())
    while remaining:
        client = rs.randint(n_clients)
        if left[client] <= 0:                  # full: draw another client
            continue
        left[client] -= 1
        remaining -= 1
        while True:
            cls = int(np.argmax(rs.uniform() <= prior_cumsum[client]))
            if cls_amount[cls] <= 0:           # class used up: refill it and redraw the class
                cls_amount[cls] = len(idx_list[cls])
                continue
            cls_amount[cls] -= 1
            # filled from the back, as FL-Simulator writes client_x[client][client_data_list[client]]
            parts[client][left[client]] = perm[idx_list[cls][cls_amount[cls]]]
            break
    return (parts, priors) if return_priors else parts


def count_duplicates(parts: list[np.ndarray]) -> int:
    """How many dealt samples are repeats: total entries minus distinct indices, over all clients together."""
    if not parts:
        return 0
    flat = np.concatenate([np.asarray(p, dtype=np.int64) for p in parts])
    return int(len(flat) - len(np.unique(flat)))


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
