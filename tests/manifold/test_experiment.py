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
    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, keep_work=True)
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


def mode_tables() -> str:
    """docs/blae.md's mode tables, generated from resolve_config (the docs must contain this text verbatim)."""
    import dataclasses

    q, f = (resolve_config(EXPERIMENT, m, []) for m in ("quick", "full"))

    def sizes(c, case):
        if case == "coil":
            n = c.coil_items * c.coil_angles
            return f"{c.coil_items} items × {c.coil_angles} angles = {round(n * 2 / 3)} / {n - round(n * 2 / 3)}"
        n_tr = {"sparse": c.n_sparse, "mnist": c.mnist_train}.get(case, c.n_train)
        return f"{n_tr} / {c.n_test}"

    data = {"swiss": "swiss roll with a hole (sklearn, `tenfold.data.swiss_roll(hole=True)`)", "scurve": "S-curve",
            "coil": "COIL-like: the first Fashion-MNIST test item of each class (cycling), rotated in even steps "
                    "over 360° (real images, 784-d), 2/3 train",
            "mnist": "MNIST-5k digits (784-d)", "sparse": "swiss roll, few training points",
            "shift": f"swiss roll; train density ∝ exp(−{f.shift_strength:g}·t01) along the roll, test uniform"}
    lines = ["| case | data | quick: train / test | full: train / test |", "|---|---|---|---|"]
    lines += [f"| {c} | {data[c]} | {sizes(q, c)} | {sizes(f, c)} |" for c in CASES]
    lines += ["", "| config field | quick | full |", "|---|---|---|"]
    for fld in dataclasses.fields(q):
        a, b = getattr(q, fld.name), getattr(f, fld.name)
        show = lambda v: ",".join(v) if isinstance(v, tuple) else str(v)  # noqa: E731
        lines.append(f"| `{fld.name}` | {show(a)} | {show(b)} |")
    lines.append(f"| seeds | {EXPERIMENT.seeds['quick']} | {EXPERIMENT.seeds['full']} |")
    return "\n".join(lines)


def test_docs_mode_tables_match_the_config():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "blae.md").read_text()
    assert mode_tables() in doc, "paste mode_tables() from this file into docs/blae.md (Reproduction at our scale)"
