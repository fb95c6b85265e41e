"""Checkpoints as plain dicts of state_dicts, written atomically with `torch.save`.

A checkpoint holds whatever the caller passes (model, optimizer, scheduler state_dicts, config, step)
plus the RNG states and the tenfold version, so that a resumed run reproduces the next step exactly.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tenfold
from tenfold.common.atomic import atomic_write


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, and CUDA when present) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, **payload: Any) -> Path:
    """Save `payload` (e.g. model=..., optimizer=..., config=..., step=...) plus RNG states and version."""
    payload = dict(payload)
    payload.setdefault("rng", rng_state())
    payload["tenfold_version"] = tenfold.__version__
    return atomic_write(path, lambda fh: torch.save(payload, fh), mode="wb")


def load_checkpoint(path: str | os.PathLike, *, restore_rng: bool = True) -> dict[str, Any] | None:
    """Load a checkpoint written by `save_checkpoint`; None when `path` does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if restore_rng and "rng" in payload:
        set_rng_state(payload["rng"])
    return payload
