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


def configure_threads(n: int | None = None) -> int:
    """Use `n` intra-op threads (default: $TENFOLD_THREADS or all cores); returns the number set."""
    import torch

    n = n or int(os.environ.get("TENFOLD_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
