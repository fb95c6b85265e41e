"""The AdaLeZO reproduction: task construction, a smoke run validated against the schema, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.experiments.adalezo import EXPERIMENT, GENRES, Tower, _splits, passages
from tenfold.harness.runner import resolve_config, run_experiment
from tenfold.harness.schema import validate_results
from tenfold.zo import model_arms

PAPER = {"number": 4, "title": "AdaLeZO", "arxiv": "2604.18264"}


def test_passages_and_balanced_splits():
    pool = passages(40)
    counts = [sum(1 for _, y in pool if y == c) for c in range(len(GENRES))]
    assert min(counts) > 1000 and all(len(t.split()) == 40 for t, _ in pool[:50])
    cfg = resolve_config(EXPERIMENT, "smoke")
    sp = _splits(cfg)
    assert [len(sp[s][0]) for s in ("train", "dev", "test")] == [cfg.n_train, cfg.n_dev, cfg.n_test]
    assert torch.bincount(sp["train"][1]).tolist() == [cfg.n_train // 3] * 3
    assert not set(sp["train"][0]) & set(sp["test"][0])  # disjoint passages


def test_tower_arms():
    arms = model_arms(Tower(8, 4, 6, 3, 3))
    assert [a["name"] for a in arms] == ["embed", "block0", "block1", "block2", "head"]


def test_smoke_run_validates_and_resumes(tmp_path):
    path = run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False)
    validate_results(path)
    res = json.loads(path.read_text())
    assert res["status"] == "complete" and {c["verdict"] for c in res["claims"]} == {"inconclusive"}
    arms = {a["name"]: a for a in res["arms"]}
    assert arms["mezo_fast"]["mean"]["touched_fraction"] == pytest.approx(1.0)
    assert arms["adalezo_0"]["mean"]["touched_fraction"] < 1.0
    assert arms["mezo_fast"]["mean"]["speedup_vs_mezo_fast"] == pytest.approx(1.0)
    assert "probs" in arms["adalezo_0"]["extra"]["0"]
    # a second call reuses every finished unit (same config fingerprint) and writes the same metrics
    again = json.loads(run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False).read_text())
    assert [a["per_seed"] for a in again["arms"]] == [a["per_seed"] for a in res["arms"]]


@pytest.mark.parametrize("override, match", [
    (["model=gpt5"], "Invalid model"),
    (["weighting=ipw"], "Invalid weighting"),
    (["steps=abc"], "Invalid steps"),
])
def test_bad_config(override, match):
    with pytest.raises(UserError, match=match):
        resolve_config(EXPERIMENT, "smoke", override)


def test_too_many_passages_refused():
    cfg = resolve_config(EXPERIMENT, "smoke", ["n_train=100000"])
    with pytest.raises(UserError, match="Invalid sizes"):
        _splits(cfg)
