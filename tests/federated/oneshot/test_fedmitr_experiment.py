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
    assert res["status"] == "complete" and len(arms) == 6
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


@pytest.mark.parametrize("overrides,match", [
    ({"alphas": (0.5,)}, "alphas"),
    ({"prune_ratio": 0.0}, "prune_ratio"),
    ({"dataset": "cifar"}, "dataset"),
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
