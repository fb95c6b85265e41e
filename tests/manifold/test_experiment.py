"""The BLAE reproduction: a smoke run validated against the result schema, the data sets, the shared tuning
cells, the derived rank table, config errors, and docs/blae.md's mode tables."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from tenfold.common.errors import UserError
from tenfold.experiments import blae as exp_mod
from tenfold.experiments.blae import EXPERIMENT, SETS, _derive, _loss_rel_change, _tuned_mult, load_set
from tenfold.harness.runner import resolve_config, run_experiment
from tenfold.harness.schema import validate_results

PAPER = {"number": 7, "title": "Bi-Lipschitz Autoencoder with Injectivity Guarantee", "arxiv": "2604.06701"}


def test_smoke_run_validates_and_resumes(tmp_path):
    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, keep_work=True)
    validate_results(path)
    r = json.loads(path.read_text())
    assert r["status"] == "complete"
    names = {a["name"] for a in r["arms"]}
    assert names >= {"blae", "blae_notebook", "blae_former", "ae", "spae", "topoae", "grae", "irae", "geoae", "pca",
                     "isomap"}
    blae = next(a for a in r["arms"] if a["name"] == "blae")
    assert {"swiss_geo_knn", "swiss_geo_kl0.1", "swiss_mse", "ring_u_geo_knn", "ring_n_geo_knn",
            "ring_shift_procrustes", "loss_rel_change", "rank_geo_knn"} <= set(blae["mean"])  # smoke: 1 peak epoch
    # each claim is gated on the arms it compares
    regimes = {c["id"]: c["regime"] for c in r["claims"]}
    assert {tuple(x["arms"]) for x in regimes["swiss_knn_vs_spae"]} == {("blae", "spae")}
    assert {x["name"] for x in regimes["ring_shift_vs_ae"]} == {"converged", "peak_phase_flat", "ring_learned"}
    assert 0 <= blae["mean"]["ring_shift_procrustes"] <= 1
    loss = [c for c in r["curves"] if c["arm"] == "blae" and c["name"] == "train_loss_swiss"]
    assert len(loss) == 1 and len(loss[0]["y"]) == 3  # one training objective per epoch (smoke: 3 epochs)
    assert all(c["verdict"] in ("inconclusive", "untestable") for c in r["claims"])  # smoke is never conclusive
    assert {"embeddings.png", "rank_table.png", "table_swiss.png", "table_ring_n.png",
            "curve_train_loss_swiss.png"} <= set(r["plots"])
    emb = blae["extra"]["0"]["embeddings"]["swiss"]
    assert np.asarray(emb["z"]).shape == (60, 2) and len(emb["c"]) == 60
    # finished sets are mid-unit checkpoints: a unit rerun reads them instead of training again
    work = tmp_path / "blae" / "work" / "blae__seed0"
    assert (work / "swiss.json").exists() and (work / "ring_n.json").exists()


def test_sets_have_the_declared_shapes():
    cfg = resolve_config(EXPERIMENT, "smoke", [])
    for name in SETS:
        Xtr, Xte, c, cname = load_set(name, cfg, 0)
        assert Xte.shape[0] == len(c) and Xtr.shape[1] == Xte.shape[1] and isinstance(cname, str)
        assert np.isfinite(Xtr).all() and np.isfinite(Xte).all()
        if name.startswith("ring"):
            assert Xtr.shape == (cfg.ring_train, 784) and Xte.shape == (cfg.ring_test, 784)
        else:
            assert Xtr.shape == (cfg.n_train, 3) and Xte.shape == (cfg.n_test, 3)
    # both ring models are scored on the same uniform test images
    np.testing.assert_array_equal(load_set("ring_u", cfg, 0)[1], load_set("ring_n", cfg, 0)[1])
    Xv = load_set("swiss", cfg, 0, n_test=70)[1]
    assert len(Xv) == 70


def test_loss_rel_change():
    assert _loss_rel_change([5.0] * 10 + [1.0] * 20) == 0.0
    assert _loss_rel_change(list(range(100, 0, -1))) == pytest.approx(abs(5.5 - 15.5) / 15.5)
    assert np.isnan(_loss_rel_change([1.0]))
    assert _loss_rel_change([1.0] * 19 + [float("nan")]) == 1e9  # a diverged run is not converged


def test_tuning_cells_are_computed_once_and_the_best_is_chosen(tmp_path, monkeypatch):
    calls = []

    def fake_fit(arm, name, cfg, seed, *, mult=1.0, n_test=None):
        calls.append((arm, name, seed, mult, n_test))
        return {"geo_knn": {1 / 3: 0.5, 1.0: 0.6, 3.0: 0.7}[mult]}, None, None, None

    monkeypatch.setattr(exp_mod, "_fit_score", fake_fit)
    cfg = resolve_config(EXPERIMENT, "full", [])
    ctx = SimpleNamespace(work_dir=tmp_path / "work" / "blae__seed0")
    best, scores = _tuned_mult("blae", cfg, ctx)
    assert best == 3.0 and scores == {"0.333333": 0.5, "1": 0.6, "3": 0.7}
    assert {c[1:] for c in calls} == {("swiss", exp_mod.TUNE_SEED, m, cfg.n_val) for m in cfg.lam_grid}
    again = _tuned_mult("blae", cfg, SimpleNamespace(work_dir=tmp_path / "work" / "blae__seed1"))
    assert again == (best, scores) and len(calls) == 3  # the second unit reads the cells
    assert _tuned_mult("ae", cfg, ctx) == (1.0, {})  # no regulariser: nothing to tune


def test_derived_ranks_average_over_sets_with_ties():
    cfg = resolve_config(EXPERIMENT, "smoke", [])  # sets swiss, ring_u, ring_n
    m = lambda **kv: {"metrics": {f"{s}_{k}": v for k, v in kv.items() for s in ("swiss", "ring_u", "ring_n")}}  # noqa: E731
    units = {("blae", 0): m(geo_knn=0.9, mse=1.0), ("ae", 0): m(geo_knn=0.5, mse=1.0), ("spae", 0): m(geo_knn=0.7,
                                                                                                      mse=3.0)}
    out = _derive(units, cfg)
    assert out[("blae", 0)]["rank_geo_knn"] == 1.0 and out[("ae", 0)]["rank_geo_knn"] == 3.0
    assert out[("blae", 0)]["rank_mse"] == out[("ae", 0)]["rank_mse"] == 1.5 and out[("spae", 0)]["rank_mse"] == 3.0


@pytest.mark.parametrize("override,match", [
    ("cases=swiss,moon", "Invalid cases: 'moon'"),
    ("n_test=10", "Invalid n_test"),
    ("lam_grid=0,1", "Invalid lam_grid"),
    ("epochs=0", "Invalid epochs"),
])
def test_bad_config_is_refused_before_work(override, match, tmp_path):
    with pytest.raises(UserError, match=match):
        run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, overrides=[override], progress=False)
    assert not list(tmp_path.glob("blae/units/*.json"))


def mode_tables() -> str:
    """docs/blae.md's mode table, generated from resolve_config (the docs must contain this text verbatim)."""
    import dataclasses

    q, f = (resolve_config(EXPERIMENT, m, []) for m in ("quick", "full"))
    lines = ["| config field | quick | full |", "|---|---|---|"]
    for fld in dataclasses.fields(q):
        a, b = getattr(q, fld.name), getattr(f, fld.name)
        show = lambda v: ",".join(f"{x:.3g}" if isinstance(x, float) else str(x) for x in v) if isinstance(v, tuple) \
            else str(v)  # noqa: E731
        lines.append(f"| `{fld.name}` | {show(a)} | {show(b)} |")
    lines.append(f"| seeds | {EXPERIMENT.seeds['quick']} | {EXPERIMENT.seeds['full']} |")
    return "\n".join(lines)


def test_docs_mode_tables_match_the_config():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "blae.md").read_text()
    assert mode_tables() in doc, "paste mode_tables() from this file into docs/blae.md (Reproduction at our scale)"
