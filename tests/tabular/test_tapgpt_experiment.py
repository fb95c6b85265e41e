"""The TAP-GPT reproduction: a smoke run (tiny random backbone, real data) validated against the result schema,
the split protocol, and config errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from tenfold.common.config import apply_overrides
from tenfold.common.errors import UserError
from tenfold.experiments.tapgpt import EXPERIMENT, TAPGPTConfig, load_split
from tenfold.harness.runner import resolve_config

PAPER = {"number": 8, "title": "TAP-GPT", "arxiv": "2603.17191"}


def test_smoke_run_validates_and_shares_the_adapter(tmp_path):
    from tenfold.harness.runner import run_experiment
    from tenfold.harness.schema import validate_results

    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, keep_work=True)
    validate_results(path)
    res = json.loads(Path(path).read_text())
    arms = {a["name"]: a for a in res["arms"]}
    assert res["status"] == "complete" and len(arms) == 3 + 6
    assert all(c["verdict"] == "inconclusive" for c in res["claims"])        # smoke is never conclusive
    for name in ("ad__base", "ad__tapgpt", "ad__tapgpt_mcar"):
        m = arms[name]["mean"]
        assert 0 <= m["f1"] <= 100 and 0 <= m["label_mass"] <= 100 and 0 <= m["unparsable"] <= 100
    assert "lr_pool" in "".join(arms) and "f1_ad.png" in res["plots"]
    assert len(list((tmp_path / "tapgpt" / "work" / "_tuned").iterdir())) == 1    # one LoRA run, reused by MCAR


def test_split_is_disjoint_stratified_and_matches_the_estimator_pool():
    cfg = TAPGPTConfig(n_test=20)
    sp = load_split("ad", cfg, seed=1)
    test, pool, rest = set(sp["test"]), set(sp["pool"]), set(sp["rest"])
    assert not (test & pool or test & rest or pool & rest)
    assert len(sp["test"]) == 20 and len(sp["pool"]) == sp["n_pool"] == round(0.11 * 333)
    y = sp["y"]
    assert abs(y[sp["pool"]].mean() - y.mean()) < 0.05 and y[sp["test"]].sum() >= 4
    from tenfold.tabular import split_pool

    _, p = split_pool(y[sp["fit"]], sp["n_pool"], 1)
    assert np.array_equal(sp["fit"][p], sp["pool"])


@pytest.mark.parametrize("override,match", [
    ({"datasets": ("adni",)}, "Invalid datasets"),
    ({"model": "gpt2"}, "Invalid model"),
    ({"k": 0}, "Invalid k"),
    ({"mcar_rate": 1.0}, "Invalid mcar rate"),
    ({"test_fraction": 0.7}, "Invalid test_fraction"),
])
def test_config_errors(override, match):
    cfg = apply_overrides(resolve_config(EXPERIMENT, "smoke"), override)
    with pytest.raises(UserError, match=match):
        EXPERIMENT.arms(cfg)


def test_modes_claims_and_full_arms():
    full = resolve_config(EXPERIMENT, "full")
    names = {a.name for a in EXPERIMENT.arms(full)}
    assert {"breast_cancer__tapgpt", "breast_cancer__tapgpt_pall", "breast_cancer__tapgpt_p16", "ad__tapgpt_k0", "ad__tapgpt_k8",
            "ad__tapgpt_mcar50"} <= names
    assert {"ad__tapgpt_text", "ad__base_text"} <= names
    assert not {"breast_cancer__tapgpt_k0", "ad__tapgpt_pall", "breast_cancer__tapgpt_text"} & names
    opt = resolve_config(EXPERIMENT, "full", ["serialized_datasets=ad,breast_cancer", "p_sweep=16,0",
                                              "p_sweep_datasets=ad,breast_cancer"])
    assert {"breast_cancer__tapgpt_text", "ad__base_text", "ad__tapgpt_p16", "ad__tapgpt_pall"} <= {
        a.name for a in EXPERIMENT.arms(opt)}
    quick = {a.name for a in EXPERIMENT.arms(resolve_config(EXPERIMENT, "quick"))}
    assert {"ad__base", "ad__tapgpt", "ad__tapgpt_mcar"} <= quick and not any("breast" in n for n in quick)
    for mode in ("smoke", "quick", "full"):
        EXPERIMENT.check_claims(EXPERIMENT.arms(resolve_config(EXPERIMENT, mode)))


def test_sweep_checks_use_the_harness_rule(tmp_path):
    from tenfold.experiments.tapgpt import _plot, sweep_checks

    f1 = {"breast_cancer__tapgpt": [80, 82, 81], "breast_cancer__tapgpt_pall": [70, 71, 73],
          "ad__tapgpt": [50, 52, 51], "ad__tapgpt_mcar50": [40, 41, 42]}
    arms = [{"name": n, "role": "method", "label": n, "extra": {}, "mean": {"f1": float(np.mean(v))},
             "per_seed": {str(s): {"f1": x, "auroc": x + 5 * s} for s, x in enumerate(v)}} for n, v in f1.items()]
    got = {c["id"]: c for c in sweep_checks({"mode": "full", "arms": arms})}
    assert got["c_feature_selection"]["verdict"] == "held"
    assert got["c_feature_selection"]["evidence"]["per_seed_diff"] == [10, 11, 8]
    assert got["d_mcar50"]["verdict"] == "not_held"            # -10 + 5 = -5 points, beyond 2 SE
    assert sweep_checks({"mode": "quick", "arms": arms[2:]})[0]["id"] == "d_mcar50"
    assert (tmp_path / "sweep_checks.png") in _plot({"mode": "full", "arms": arms}, tmp_path)
