"""The BLAE reproduction: a smoke run validated against the result schema, the data cases, config errors."""

import json

import numpy as np
import pytest

from tenfold.common.errors import UserError
from tenfold.experiments.blae import CASES, EXPERIMENT, coil_like, load_case
from tenfold.harness.runner import resolve_config, run_experiment
from tenfold.harness.schema import validate_results

PAPER = {"number": 7, "title": "Bi-Lipschitz Autoencoder with Injectivity Guarantee", "arxiv": "2604.06701"}


def test_smoke_run_validates_and_resumes(tmp_path):
    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False)
    validate_results(path)
    r = json.loads(path.read_text())
    assert r["status"] == "complete"
    assert {a["name"] for a in r["arms"]} >= {"blae", "blae_noinj", "blae_nobilip", "ae", "geoae", "isoae", "pca",
                                              "isomap", "tsne"}
    blae = next(a for a in r["arms"] if a["name"] == "blae")
    assert {"swiss_knn", "swiss_kl01", "swiss_mse", "coil_knn"} <= set(blae["mean"])
    assert all(c["verdict"] == "inconclusive" for c in r["claims"])  # smoke is never conclusive
    assert {"embeddings.png", "table_swiss.png", "table_coil.png"} <= set(r["plots"])
    emb = blae["extra"]["0"]["embeddings"]["swiss"]
    assert np.asarray(emb["z"]).shape == (100, 2) and len(emb["c"]) == 100
    # finished case files are mid-unit checkpoints: a unit rerun reads them instead of training again
    work = tmp_path / "blae" / "work" / "blae__seed0"
    assert (work / "swiss.json").exists() and (work / "coil.json").exists()


def test_cases_have_the_declared_shapes():
    cfg = resolve_config(EXPERIMENT, "smoke", ["n_train=60", "n_test=50", "n_sparse=30", "mnist_train=40"])
    for case in CASES:
        Xtr, Xte, c, name = load_case(case, cfg, 0)
        assert Xte.shape[0] == len(c) and Xtr.shape[1] == Xte.shape[1] and isinstance(name, str)
        assert np.isfinite(Xtr).all() and np.isfinite(Xte).all()
        if case == "sparse":
            assert len(Xtr) == 30
    X, ang, item = coil_like(3, 12)
    assert X.shape == (36, 784) and 0 <= X.min() and X.max() <= 1
    assert list(ang[:12]) == [30.0 * i for i in range(12)] and list(np.unique(item)) == [0, 1, 2]
    # rotation by 0 degrees returns the original item
    from tenfold.data import fashion_mnist

    x, y = fashion_mnist("test")
    first = int(np.flatnonzero(y == 0)[0])
    np.testing.assert_allclose(X[0], x[first].reshape(-1) / 255.0, atol=1e-6)


@pytest.mark.parametrize("override,match", [
    ("cases=swiss,moon", "Invalid cases: 'moon'"),
    ("injective=both", "Invalid injective"),
    ("n_test=10", "Invalid n_test"),
    ("mnist_train=4950", "Invalid mnist_train"),
])
def test_bad_config_is_refused_before_work(override, match, tmp_path):
    with pytest.raises(UserError, match=match):
        run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, overrides=[override], progress=False)
    assert not list(tmp_path.glob("blae/units/*.json"))
