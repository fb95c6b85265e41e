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
    assert len(arms) == 3 * (6 * 3 + 1) and res["status"] == "complete"
    assert all(c["verdict"] == "inconclusive" for c in res["claims"])          # smoke is never conclusive
    raw, ats = arms["fmnist_lt__gce__raw"], arms["fmnist_lt__gce__ats"]
    assert raw["mean"]["accuracy"] == ats["mean"]["accuracy"]                   # ATS keeps the arg-max
    assert {"reliability.png", "by_loss.png"} <= set(res["plots"])
    assert len(list((tmp_path / "gce" / "work" / "_trained").glob("*.pt"))) == 3 * 6   # one training per loss


def _ctx(tmp_path):
    return SimpleNamespace(checkpoint_path=tmp_path / "checkpoint.pt", work_dir=tmp_path, progress=lambda it, **k: it)


@pytest.mark.parametrize("loss", ["gce", "focal"])
def test_training_resumes_bit_identically(tmp_path, loss):
    cfg = apply_overrides(resolve_config(EXPERIMENT, "smoke"), {"steps": 6, "checkpoint_every": 3,
                                                               "gce_prior": "ema"})
    torch.manual_seed(0)
    full = train("mnist5k", loss, 0, cfg, _ctx(tmp_path / "a"))
    # a run leaves its last mid-run checkpoint (step 3) behind, as an interrupted one would: rerunning
    # resumes from step 3 and must reproduce steps 4-6 exactly
    (tmp_path / "b").mkdir()
    torch.manual_seed(0)
    train("mnist5k", loss, 0, cfg, _ctx(tmp_path / "b"))
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 3
    torch.manual_seed(123)                         # RNG state comes back from the checkpoint, not from here
    resumed = train("mnist5k", loss, 0, cfg, _ctx(tmp_path / "b"))
    assert resumed["losses"] == full["losses"]
    assert torch.equal(resumed["test"][0], full["test"][0])


def test_splits_are_disjoint_balanced_and_long_tailed():
    cfg = apply_overrides(GCEConfig(), {"n_per_class": 50, "n_val_per_class": 20, "n_test_per_class": 10})
    lt = load_split("fmnist_lt", cfg, seed=0)
    counts = torch.bincount(lt["train"][1], minlength=10)
    assert counts[0] == 50 and counts[9] == 1 and (counts[:-1] >= counts[1:]).all()
    assert (torch.bincount(lt["test"][1], minlength=10) == 10).all()
    m = load_split("mnist5k", cfg, seed=1)
    xs = [m[k][0].flatten(1) for k in ("train", "val", "test")]
    assert len(m["train"][1]) == 500 and len(m["val"][1]) == 200
    joined = torch.cat(xs)
    assert torch.unique(joined, dim=0).shape[0] == joined.shape[0]           # no image in two splits


BAD = [
    ({"datasets": ("cifar10",)}, "datasets"),
    ({"losses": ("ce", "hinge")}, "losses"),
    ({"lt_val": "test"}, "lt_val"),
    ({"gce_prior": "global"}, "gce_prior"),
    ({"steps": 0}, "steps"),
    ({"imbalance_ratio": 0.5}, "imbalance_ratio"),
    ({"n_test_per_class": 1001}, "n_test_per_class"),
    ({"n_val_per_class": 30}, "too small for ATS"),
]


@pytest.mark.parametrize("override,msg", BAD, ids=[m for _, m in BAD])
def test_config_errors_before_any_work(override, msg):
    cfg = apply_overrides(GCEConfig(), override)
    with pytest.raises(UserError, match=msg):
        EXPERIMENT.arms(cfg)


def test_cli_style_override_type_check():
    with pytest.raises(UserError, match="steps"):
        resolve_config(EXPERIMENT, "quick", ["steps=many"])
