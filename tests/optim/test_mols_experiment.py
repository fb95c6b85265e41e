"""The MoLS reproduction (`tenfold reproduce mols`): config checks, the SNR-gap regime metric, each arm's optimiser
as its method builds it, and a smoke run validated against the schema."""

import json
import math

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.experiments import mols as M


def test_parse_mults_and_errors():
    assert M.parse_mults("embed=3,head=0.5") == {"embed": 3.0, "head": 0.5}
    for bad in ("embed", "embeds=3", "head=-1", "head=x", "mlp=inf"):
        with pytest.raises(UserError, match="Invalid modlr_grid entry"):
            M.parse_mults(bad)


@pytest.mark.parametrize("field,value,match", [
    ("warmup_frac", 0.0, "Invalid warmup_frac"), ("calibration_frac", 1.5, "Invalid calibration_frac"),
    ("lr_grid", (), "Invalid lr_grid"), ("modlr_grid", ("embed=3", "attn=2"), "Invalid modlr_grid entry"),
    ("steps", 10, "calibration window"),
])
def test_check_refuses_bad_config(field, value, match):
    cfg = M.MoLSConfig(**{field: value})
    with pytest.raises(UserError, match=match):
        M._check(cfg)


def test_snr_gap_either_direction_and_the_papers_direction():
    gap, noisy = M.snr_gap({"embed": 0.01, "mlp": 0.02, "head": 0.5})
    assert gap == pytest.approx(25.0) and noisy == pytest.approx(2.0)  # head 25x MLP; embed noisier than MLP
    gap, noisy = M.snr_gap({"embed": 0.001, "mlp": 0.02, "head": 0.02})
    assert gap == pytest.approx(20.0) and noisy == pytest.approx(20.0)
    gap, _ = M.snr_gap({"embed": 0.0, "mlp": 0.02})  # no signal at all: a huge gap, not nan
    assert gap > 1e9
    assert all(math.isnan(v) for v in M.snr_gap({"embed": 0.1, "head": 0.2}))  # no MLP: not measurable


def _tiny_cfg(**kw):
    return M.MoLSConfig(**{**M.EXPERIMENT.modes["smoke"], **kw})


def test_each_arm_builds_its_methods_optimizer():
    from galore_torch import GaLoreAdamW

    from tenfold.optim import MoLS, MoLSDynamic

    cfg = _tiny_cfg()
    model = M._model(cfg, 0)
    assert type(M._optimizer("adamw", model, 1e-3, cfg)) is torch.optim.AdamW
    opt = M._optimizer("modlr", model, 1e-3, cfg, {"embed": 3.0, "head": 10.0})
    lrs = {}
    for g in opt.param_groups:
        for p in g["params"]:
            lrs[p.data_ptr()] = g["lr"]
    assert lrs[model.model.embed_tokens.weight.data_ptr()] == pytest.approx(3e-3)
    assert lrs[model.lm_head.weight.data_ptr()] == pytest.approx(1e-2)
    assert lrs[model.model.layers[0].mlp.up_proj.weight.data_ptr()] == pytest.approx(1e-3)
    mols = M._optimizer("mols", model, 1e-3, cfg)
    assert isinstance(mols, MoLS) and mols.calibration_steps == M._calib_steps(cfg) == 2
    assert isinstance(M._optimizer("mols_dynamic", model, 1e-3, cfg), MoLSDynamic)
    assert isinstance(M._optimizer("galore", model, 1e-3, cfg), GaLoreAdamW)
    gm = M._optimizer("galore_mols", model, 1e-3, cfg)
    low = [g for g in gm.param_groups if "rank" in g]
    assert isinstance(gm, MoLS) and len(low) == 1 and all(".layers." in n for n in low[0]["param_names"])
    with pytest.raises(UserError, match="Invalid arm kind"):
        M._optimizer("sgd", model, 1e-3, cfg)


def test_experiment_smoke(tmp_path):
    from tenfold.harness.runner import run_experiment
    from tenfold.harness.schema import validate_results

    path = run_experiment(M.EXPERIMENT, {"number": 2, "title": "MoLS", "arxiv": "2605.05794"}, mode="smoke",
                          out_dir=tmp_path, progress=False)
    validate_results(path)
    res = json.loads(path.read_text())
    assert res["status"] == "complete" and {c["verdict"] for c in res["claims"]} == {"inconclusive"}
    arms = {a["name"]: a for a in res["arms"]}
    assert set(arms) == {"adamw", "modlr", "mols", "mols_dynamic", "galore", "galore_mols"}
    mols = arms["mols"]
    assert mols["mean"]["mult_head"] is not None and mols["mean"]["snr_gap"] > 0
    assert set(mols["extra"]["0"]["multipliers"]) >= {"embed", "mlp", "head", "other"}
    assert arms["modlr"]["extra"]["0"]["module_multipliers"] == M.parse_mults(M.MoLSConfig().modlr_grid[0])
    assert arms["adamw"]["mean"]["steps_to_adamw_final"] <= M.EXPERIMENT.modes["smoke"]["steps"]
    ids = {c["id"]: c for c in res["claims"]}
    assert [r["name"] for r in ids["final"]["regime"]] == ["snr_imbalance", "lm_learns"]


def test_a_diverged_run_scores_every_missed_evaluation_as_uniform():
    cfg = _tiny_cfg(steps=40, eval_every=10)
    out = M._train("adamw", 1e6, cfg, 0, "test")  # an absurd LR: the loss turns non-finite within a few steps
    cap = math.log(cfg.vocab_size)
    assert out["diverged"] and out["final"] == cap
    assert out["x"][-4:] == [10, 20, 30, 40] and out["y"][-1] == cap and len(out["x"]) == len(set(out["x"]))


def test_check_refuses_zero_intervals():
    with pytest.raises(UserError, match="Invalid eval_every"):
        M._check(M.MoLSConfig(eval_every=0))
