import numpy as np
import pytest

from tenfold.data import dirichlet_partition, iid_partition, label_histograms, shard_partition

Y = np.repeat(np.arange(10), 100)


@pytest.mark.parametrize("make", [
    lambda s: iid_partition(Y, 7, seed=s),
    lambda s: dirichlet_partition(Y, 7, alpha=0.3, seed=s),
    lambda s: shard_partition(Y, 10, classes_per_client=2, seed=s),
])
def test_partitions_cover_every_index_once_and_are_seeded(make):
    parts = make(0)
    allidx = np.sort(np.concatenate(parts))
    assert np.array_equal(allidx, np.arange(len(Y)))
    assert all(np.array_equal(a, b) for a, b in zip(parts, make(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, make(1)))


def test_dirichlet_skew_grows_as_alpha_shrinks():
    def skew(alpha):
        h = label_histograms(Y, dirichlet_partition(Y, 10, alpha, seed=0)).astype(float)
        p = h / h.sum(1, keepdims=True)
        return float(np.mean(p.max(1)))

    assert skew(0.1) > skew(1.0) > skew(100.0)


def test_shards_give_k_classes_per_client():
    h = label_histograms(Y, shard_partition(Y, 10, classes_per_client=2, seed=0))
    assert ((h > 0).sum(1) <= 2).all()


@pytest.mark.parametrize("call, fragment", [
    (lambda: dirichlet_partition(Y, 5, alpha=0), "Invalid alpha"),
    (lambda: iid_partition(Y, 0), "Invalid n_clients"),
    (lambda: shard_partition(Y, 5, classes_per_client=11), "Invalid classes_per_client"),
])
def test_bad_input(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()
