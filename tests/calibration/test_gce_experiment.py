"""The GCE reproduction: a smoke run validated against the result schema, resume of a training run, config errors."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tenfold.common.config import apply_overrides
from tenfold.common.errors import UserError
from tenfold.experiments.gce import EXPERIMENT, GCEConfig, load_split, train
from tenfold.harness.runner import resolve_config

PAPER = {"number": 6, "title": "GCE", "arxiv": "2604.06689"}


def test_smoke_run_validates_and_reuses_training(tmp_path):
    from tenfold.harness.runner import run_experiment
    from tenfold.harness.schema import validate_results

    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, keep_work=True)
    validate_results(path)
    import json

    res = json.loads(Path(path).read_text())
    arms = {a["name"]: a for a in res["arms"]}
    # per data set 7 losses x {raw, TS, ATS} + the L-BFGS ATS ablation; the long-tailed set also x {TS, ATS} on
    # its balanced validation split
    assert len(arms) == 3 * (7 * 3 + 1 + 1) + 7 * 2 and res["status"] == "complete"   # + one bin-count arm
    assert all(c["verdict"] == "inconclusive" for c in res["claims"])          # smoke is never conclusive
    raw, ats = arms["fmnist_lt__gce__raw"], arms["fmnist_lt__gce__ats"]
    assert raw["mean"]["accuracy"] == ats["mean"]["accuracy"]                   # ATS keeps the arg-max
    assert {"reliability.png", "by_loss.png", "ece_table.png"} <= set(res["plots"])
    assert len(list((tmp_path / "gce" / "work" / "_trained").glob("*.pt"))) == 3 * 7   # one training per loss
    ts = arms["fmnist__ce__ts"]["per_seed"]["0"]
    assert ts["temperature"] > 0 and "temperature" not in arms["fmnist__ce__raw"]["per_seed"]["0"]
    assert 0 <= arms["fmnist__ce__raw"]["per_seed"]["0"]["train_acc"] <= 100
    # every calibration claim declares the over-confidence regime check on its own data set and split
    # every claim checks that its networks trained (none collapsed); calibration claims also that CE is over-confident
    for c in res["claims"]:
        d = c["method_arm"].split("__")[0]
        trained = [r for r in c["regime"] if r["metric"] == "train_acc"]
        assert len(trained) == 1 and trained[0]["stat"] == "min" and f"{d}__gce__raw" in trained[0]["arms"]
        if c["metric"] == "ece":
            (r,) = [r for r in c["regime"] if r["metric"] == "temperature"]
            assert r["arms"] == [f"{d}__ce__ts" + ("_bal" * c["id"].startswith("b_ece_fmnist_lt_bal"))]


def _ctx(tmp_path):
    return SimpleNamespace(checkpoint_path=tmp_path / "checkpoint.pt", work_dir=tmp_path, progress=lambda it, **k: it)


@pytest.mark.parametrize("loss", ["gce", "focal", "adafocal"])
def test_training_resumes_bit_identically(tmp_path, loss):
    cfg = apply_overrides(resolve_config(EXPERIMENT, "smoke"), {"epochs": 4, "checkpoint_every": 2,
                                                               "gce_prior": "ema"})
    torch.manual_seed(0)
    full = train("mnist5k", loss, 0, cfg, _ctx(tmp_path / "a"))
    # a run leaves its last mid-run checkpoint (epoch 2) behind, as an interrupted one would: rerunning
    # resumes from epoch 2 and must reproduce epochs 3-4 exactly (AdaFocal's gammas come back with it)
    (tmp_path / "b").mkdir()
    torch.manual_seed(0)
    train("mnist5k", loss, 0, cfg, _ctx(tmp_path / "b"))
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    torch.manual_seed(123)                         # RNG state comes back from the checkpoint, not from here
    resumed = train("mnist5k", loss, 0, cfg, _ctx(tmp_path / "b"))
    assert resumed["losses"] == full["losses"]
    assert torch.equal(resumed["test"][0], full["test"][0])


def test_splits_are_disjoint_balanced_and_long_tailed():
    cfg = apply_overrides(GCEConfig(), {"n_per_class": 50, "lt_head": 5000, "lt_val_head": 500,
                                        "n_val_per_class": 20, "n_test_per_class": 10})
    lt = load_split("fmnist_lt", cfg, seed=0)
    counts = torch.bincount(lt["train"][1], minlength=10)
    assert counts[0] == 5000 and counts[9] == 50 and counts.sum() == 12406   # CIFAR-10-LT's sizes
    assert (counts[:-1] >= counts[1:]).all()
    val, bal = torch.bincount(lt["val"][1], minlength=10), torch.bincount(lt["val_bal"][1], minlength=10)
    assert val[0] == 500 and (val[:-1] >= val[1:]).all() and (bal == val.sum() // 10).all()
    assert (torch.bincount(lt["test"][1], minlength=10) == 10).all()
    joined = torch.cat([lt[k][0].flatten(1) for k in ("train", "val", "val_bal")])
    assert torch.unique(joined, dim=0).shape[0] == joined.shape[0]
    m = load_split("mnist5k", cfg, seed=1)
    xs = [m[k][0].flatten(1) for k in ("train", "val", "test")]
    assert len(m["train"][1]) == 500 and len(m["val"][1]) == 200
    joined = torch.cat(xs)
    assert torch.unique(joined, dim=0).shape[0] == joined.shape[0]           # no image in two splits


BAD = [
    ({"datasets": ("cifar10",)}, "datasets"),
    ({"losses": ("ce", "hinge")}, "losses"),
    ({"model": "resnet"}, "model"),
    ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"ts_objective": "brier"}, "ts_objective"),
    ({"lt_head": 5900}, "lt_head"),
    ({"gce_prior": "global"}, "gce_prior"),
    ({"epochs": 0}, "epochs"),
    ({"imbalance_ratio": 0.5}, "imbalance_ratio"),
    ({"n_test_per_class": 1001}, "n_test_per_class"),
    ({"n_val_per_class": 20}, "too small for ATS"),
]


@pytest.mark.parametrize("override,msg", BAD, ids=[m for _, m in BAD])
def test_config_errors_before_any_work(override, msg):
    cfg = apply_overrides(GCEConfig(), override)
    with pytest.raises(UserError, match=msg):
        EXPERIMENT.arms(cfg)


def test_cli_style_override_type_check():
    with pytest.raises(UserError, match="epochs"):
        resolve_config(EXPERIMENT, "quick", ["epochs=many"])
