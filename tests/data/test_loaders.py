import numpy as np
import pytest

from tenfold.data import MissingDataError, digits, fashion_mnist, long_tailed, s_curve, swiss_roll, to_3ch32
from tenfold.data import images


def test_fashion_mnist_shapes_and_balance():
    x, y = fashion_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10


def test_missing_source_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(images, "FASHION_DIR", tmp_path)
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist()


def test_long_tailed_follows_exponential_profile():
    y = np.repeat(np.arange(10), 1000)
    counts = np.bincount(y[long_tailed(y, imbalance_ratio=100)])
    assert counts[0] == 1000 and counts[-1] == 10
    assert (np.diff(counts) <= 0).all()


def test_variants_and_small_sets():
    x = np.zeros((2, 28, 28), np.uint8)
    assert to_3ch32(x).shape == (2, 3, 32, 32)
    assert digits()[0].shape == (1797, 8, 8)
    pts, coords = swiss_roll(200, hole=True)
    assert pts.shape == (200, 3) and coords.shape == (200, 2)
    assert s_curve(100)[0].shape == (100, 3)


def test_split_name_is_checked():
    with pytest.raises(ValueError, match="Invalid split"):
        fashion_mnist("dev")
