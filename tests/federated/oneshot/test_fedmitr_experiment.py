"""The FedMITR reproduction: a smoke run (a real one-round Flower simulation) validated against the result schema,
reuse of the cached client uploads, and config / client-split errors."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tenfold.common.config import apply_overrides
from tenfold.common.errors import UserError
from tenfold.experiments.fedmitr import EXPERIMENT, _round_cfg, _uploads
from tenfold.federated.oneshot import flower
from tenfold.harness.runner import resolve_config

PAPER = {"number": 1, "title": "FedMITR", "arxiv": "2605.10748"}


def test_smoke_run_validates_and_shares_uploads(tmp_path):
    from tenfold.harness.runner import run_experiment
    from tenfold.harness.schema import validate_results

    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path / "out", cache_dir=tmp_path / "cache",
                          progress=False)
    validate_results(path)
    res = json.loads(Path(path).read_text())
    arms = {a["name"]: a for a in res["arms"]}
    assert res["status"] == "complete" and len(arms) == 7
    assert all(c["verdict"] == "inconclusive" for c in res["claims"])           # smoke is never conclusive
    # every arm of the seed used the same Flower round (one simulation, cached)
    assert len({a["mean"]["round_seconds"] for a in arms.values()}) == 1
    assert arms["fedmitr-a010"]["mean"]["keep_ratio"] < 1.0 == arms["dense-a010"]["mean"]["keep_ratio"]
    assert (arms["fedmitr-a010"]["mean"]["inversion_mtokens"] == arms["sparse_only-a010"]["mean"]["inversion_mtokens"])
    assert "synthetic_grid.png" in res["plots"]
    cfg = resolve_config(EXPERIMENT, "smoke")
    ctx = SimpleNamespace(cache_dir=tmp_path / "cache")
    t0 = time.perf_counter()
    up = _uploads(_round_cfg(cfg, 0.1, 0), ctx)                                    # cache hit: no Ray start-up
    assert time.perf_counter() - t0 < 5 and len(up["states"]) == cfg.n_clients
    assert up["label_counts"].sum() == cfg.n_train
    assert len(up["feature_stats"]) == cfg.n_clients and up["feature_stats"][0].shape == (2, 2, 32)   # DENSE prior
    # DENSE made as many images as the inversion arms, with the same ensemble passes per image
    assert arms["dense_gen-a010"]["mean"]["inversion_mtokens"] == arms["dense-a010"]["mean"]["inversion_mtokens"]


@pytest.mark.parametrize("overrides,match", [
    ({"alphas": (0.5,)}, "alphas"),
    ({"prune_ratio": 0.0}, "prune_ratio"),
    ({"datasets": ("cifar",)}, "datasets"),
    ({"datasets": ("mnist5k", "fmnist")}, "datasets"),
    ({"datasets": ("fmnist", "fmnist")}, "datasets"),
    ({"dense_batch": 100}, "dense_batch"),
    ({"dense_g_steps": -1}, "dense_g_steps"),
    ({"train_on": "half"}, "train_on"),
    ({"student_init": "random"}, "student_init"),
])
def test_config_errors(overrides, match):
    cfg = apply_overrides(EXPERIMENT.config_cls(), overrides)
    with pytest.raises(UserError, match=match):
        EXPERIMENT.arms(cfg)


@pytest.mark.parametrize("overrides,match", [({"alpha": 0}, "alpha"), ({"patch_size": 5}, "patch_size"),
                                             ({"n_clients": 0}, "n_clients"), ({"dataset": "x"}, "dataset")])
def test_round_config_errors(overrides, match):
    with pytest.raises(UserError, match=match):
        flower.OneShotConfig(**overrides).validate()


def test_empty_client_split_is_refused_before_ray(monkeypatch):
    empty = (torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    monkeypatch.setattr(flower, "_splits", lambda *a: [empty, empty])
    with pytest.raises(UserError, match="empty split"):
        flower.run_round(flower.OneShotConfig(n_clients=2, n_train=100))


def test_local_training_is_deterministic_and_learns():
    cfg = flower.OneShotConfig(n_clients=2, n_train=200, local_epochs=3, alpha=1.0)
    x, y = flower.client_split(cfg, 0)
    states, losses = [], []
    for _ in range(2):
        m = flower.build_vit(cfg)
        m.load_state_dict(flower.initial_state(cfg))
        losses.append(flower.local_train(m, x, y, cfg, 0))
        states.append(m.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert losses[0] < 2.3                         # below chance-level cross-entropy log(10)


def test_full_mode_arms_cover_both_datasets_and_alphas():
    cfg = resolve_config(EXPERIMENT, "full")
    arms = EXPERIMENT.arms(cfg)
    EXPERIMENT.check_claims(arms)
    assert len(arms) == 2 * 3 * 7 and EXPERIMENT.seeds["full"] >= 3
    assert {(a.params["dataset"], a.params["alpha"]) for a in arms} == {
        (d, a) for d in ("fmnist", "mnist5k") for a in (0.5, 0.1, 0.05)}
    assert "fedmitr-mnist5k-a005" in {a.name for a in arms} and "fedmitr-a010" in {a.name for a in arms}


def test_mnist5k_clients_and_test_set_are_disjoint_and_stratified():
    cfg = flower.OneShotConfig(dataset="mnist5k", n_clients=3, n_train=6000, alpha=0.5)
    ys = torch.cat([flower.client_split(cfg, i)[1] for i in range(3)])
    assert len(ys) == 4000 and torch.all(torch.bincount(ys, minlength=10) == 400)   # 400 train images per class
    xt, yt = flower.test_set(cfg, 2000)
    assert len(yt) == 1000 and torch.all(torch.bincount(yt, minlength=10) == 100)
    xs = torch.cat([flower.client_split(cfg, i)[0] for i in range(3)]).flatten(1)
    shared = (torch.cdist(xt.flatten(1)[:50], xs) < 1e-6).any()
    assert not bool(shared)
