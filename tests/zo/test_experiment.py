"""The AdaLeZO reproduction: task construction, a smoke run validated against the schema, resume, bad input."""

from __future__ import annotations

import json
import math

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
    assert [a["name"] for a in arms] == ["embed", "block0", "block1", "block2", "rest"]


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


def test_tune_steps_sets_the_length_of_every_tuning_run(tmp_path, monkeypatch):
    import tenfold.experiments.adalezo as mod

    seen = []
    real = mod._train

    def spy(spec, cfg, seed, split, cache_dir, ctx=None, ckpt=None, steps=None):
        seen.append((seed, steps))
        return real(spec, cfg, seed, split, cache_dir, ctx, ckpt, steps)

    monkeypatch.setattr(mod, "_train", spy)
    run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, overrides=["tune_steps=3"])
    tuning = [s for seed, s in seen if seed == mod.TUNE_SEED]
    assert tuning and set(tuning) == {3}                      # every tuning run: 3 steps
    assert {s for seed, s in seen if seed != mod.TUNE_SEED} == {None}   # measured runs: cfg.steps


def test_negative_tune_steps_refused(tmp_path):
    with pytest.raises(UserError, match="Invalid tune_steps"):
        run_experiment(EXPERIMENT, PAPER, mode="smoke", out_dir=tmp_path, progress=False, overrides=["tune_steps=-1"])


def _pretrained_or_skip(name):
    from tenfold.data.cache import MissingDataError
    from tenfold.models import pretrained

    try:
        return getattr(pretrained, name)()
    except (MissingDataError, ImportError) as e:
        pytest.skip(f"{name} not installed: {e}")


def test_minilm_mode_fine_tunes_every_arm_of_the_real_encoder(tmp_path):
    import tenfold.experiments.adalezo as mod

    _pretrained_or_skip("minilm")
    cfg = resolve_config(EXPERIMENT, "smoke", ["model=minilm", "n_train=30", "n_dev=9", "n_test=9", "steps=3",
                                               "eval_every=3", "floor_steps=1"])
    model, data = mod._setup(cfg, 0, tmp_path)
    names = [a["name"] for a in model_arms(model)]
    assert names == ["embed"] + [f"block{i}" for i in range(6)] + ["head"]
    ids, mask = data["train"][0]
    assert ids.shape == mask.shape and ids.shape[0] == 30 and ids.shape[1] <= cfg.max_length
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert mod._evaluate(model, *data["dev"])[0] == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=1e-6)
    out = mod._train({"kind": "mezo", "lr": 1e-4}, cfg, 0, "test", tmp_path)
    assert out["q"] == pytest.approx(1.0) and out["n_params"] > 20_000_000 and len(out["ys"]) == 2
    model2, _ = mod._setup(cfg, 0, tmp_path)   # a fresh copy: _setup never returns a trained model
    assert all(torch.equal(p, before[n]) for n, p in model2.named_parameters())
    trained = [g["params"] for g in out["opt"].param_groups]
    fresh = [a["params"] for a in model_arms(model2)]
    assert [len(t) for t in trained] == [len(f) for f in fresh]
    # MeZO moves every arm of the pretrained encoder, not only the new head
    assert all(any(not torch.equal(p, q) for p, q in zip(t, f)) for t, f in zip(trained, fresh))


def test_smollm2_mode_scores_label_words_on_a_truncated_model(tmp_path):
    import tenfold.experiments.adalezo as mod

    _pretrained_or_skip("smollm2")
    cfg = resolve_config(EXPERIMENT, "smoke", ["model=smollm2", "lm_layers=2", "n_train=30", "n_dev=9", "n_test=9",
                                               "steps=2", "eval_every=2", "floor_steps=1"])
    model, data = mod._setup(cfg, 0, tmp_path)
    assert len(model.lm.model.layers) == 2
    ids, mask = data["dev"][0]
    assert (mask[:, -1] == 1).all()                       # left padding: the last position is the "Answer:" cue
    logits = model((ids[:3], mask[:3]))
    assert logits.shape == (3, len(GENRES)) and torch.isfinite(logits).all()
    out = mod._train({"kind": "adalezo", "lr": 1e-5, "frac": 0.25}, cfg, 0, "test", tmp_path)
    assert math.isfinite(out["test_loss"]) and 0 < out["q"] < 1


def test_minilm_probe_head_starts_below_chance_loss(tmp_path):
    import tenfold.experiments.adalezo as mod

    _pretrained_or_skip("minilm")
    cfg = resolve_config(EXPERIMENT, "smoke", ["model=minilm", "head_init=probe", "n_train=60", "n_dev=30",
                                               "n_test=30", "max_length=16"])
    model, data = mod._setup(cfg, 0, tmp_path)
    assert model.head.weight.abs().sum() > 0
    train_loss = mod._evaluate(model, *data["train"])[0]
    assert train_loss < math.log(3) - 0.05      # the probe fits its training rows
    again, _ = mod._setup(cfg, 1, tmp_path)     # the probe is computed once per data configuration
    assert torch.equal(again.head.weight, model.head.weight)
