"""Pick the compute device: CUDA when present (and not disabled by $TENFOLD_DEVICE), else CPU."""

from __future__ import annotations

import os


def default_device() -> str:
    import torch

    wanted = os.environ.get("TENFOLD_DEVICE", "auto")
    if wanted != "auto":
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"
