"""The cache folder and the error raised when an offline source is not installed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


class MissingDataError(RuntimeError):
    """An offline data or model source is not installed; the message names what to install."""


def cache_root() -> Path:
    """`$TENFOLD_CACHE`, default `~/.cache/tenfold` (created on first use)."""
    root = Path(os.environ.get("TENFOLD_CACHE", Path.home() / ".cache" / "tenfold")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
