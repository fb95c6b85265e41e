"""Seed every RNG a unit of work touches, and make CPU results repeatable."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


# the thread pools of the other numeric libraries a run loads (numba for UMAP, OpenBLAS/MKL under numpy and
# scikit-learn); each reads its variable when it starts, so these must be set before it is first imported
THREAD_VARIABLES = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cap_thread_pools(n: int | None = None) -> int:
    """The run's thread count (`n`, else $TENFOLD_THREADS, else all cores); caps, unless the user already set them,
    the pools of numba, OpenBLAS, MKL and OpenMP at it. Call before those libraries are first imported (a numba pool
    started by UMAP was seen spinning on a core of its own, beside torch's threads)."""
    n = n or int(os.environ.get("TENFOLD_THREADS", "0")) or os.cpu_count() or 1
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(n))
    return n


def configure_threads(n: int | None = None) -> int:
    """Use `n` intra-op threads (default: $TENFOLD_THREADS or all cores), with `cap_thread_pools`; returns it."""
    n = cap_thread_pools(n)
    import torch

    torch.set_num_threads(n)
    return n
