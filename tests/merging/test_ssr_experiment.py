"""A smoke run of `tenfold.experiments.ssr` (SmolLM2-135M, tiny budgets): every arm runs, the result file
validates against the schema, the interference-matrix plot and the GRPO reward curve exist; config errors."""

import json

import pytest

from tenfold.common.errors import UserError


def test_smoke_run_validates(tmp_path):
    pytest.importorskip("trl")
    from tenfold.experiments.ssr import EXPERIMENT
    from tenfold.harness.runner import run_experiment
    from tenfold.harness.schema import validate_results

    path = run_experiment(EXPERIMENT, {"number": 10, "title": "ACE-Brain-0", "arxiv": "2603.03198"}, mode="smoke",
                          out_dir=tmp_path, progress=False)
    validate_results(path)
    res = json.loads(path.read_text())
    arms = {a["name"]: a for a in res["arms"]}
    assert {"base", "scaffold", "specialists", "specialists_base", "joint", "sequential", "merge_average",
            "merge_task_arithmetic", "merge_ties", "merge_dare", "merge_tsvm", "merge_wudi", "merge_wudi_cf", "ssr",
            "ssr_grpo"} == set(arms)
    for a in arms.values():
        m = a["mean"]
        assert all(0 <= m[f"acc_{d}"] <= 100 for d in ("spatial", "driving", "aerial", "embodied"))
    assert "forgetting" in arms["sequential"]["mean"]
    assert {c["name"] for c in res["curves"]} >= {"grpo_reward", "seq_driving"}
    assert (tmp_path / "ssr" / "interference_matrix.png").exists()
    assert "expert_gain" in arms["specialists"]["mean"]
    assert res["status"] == "complete" and len(res["claims"]) == 10
    # the paper's order: the merges take the scaffold and the experts against the pre-trained model
    claims = {c["id"]: c for c in res["claims"]}
    assert claims["wudi_vs_tsvm"]["baseline_arm"] == "merge_tsvm" and claims["grpo_helps"]["baseline_arm"] == "ssr"


@pytest.mark.parametrize("override,msg", [("finetune=qlora", "Invalid finetune"), ("wudi_iters=0", "Invalid wudi_iters"),
                                          ("wudi_lr=0", "Invalid wudi_lr")])
def test_bad_config_is_refused_before_work(override, msg):
    from tenfold.experiments.ssr import EXPERIMENT
    from tenfold.harness.runner import resolve_config

    cfg = resolve_config(EXPERIMENT, "smoke", [override])
    with pytest.raises(UserError, match=msg):
        EXPERIMENT.arms(cfg)
