"""LightMoE (tenfold.moe): expert statistics, the compressed expert store and router against naive references,
compression budgets, annealing, save/load, recovery resume, errors, and a smoke run of the reproduction."""

import copy
import json

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.models.hf_tiny import tiny_moe
from tenfold.moe import (METHODS, LightMoEConfig, RecoveryConfig, anneal_lambda, compress, compressed_experts,
                         expert_param_count, expert_stats, finish_recovery, load_compressed, moe_layers,
                         routing_entropy, save_compressed, set_anneal)
from tenfold.moe.lightmoe import _replace_layer
from tenfold.moe.stats import expert_forward


def _model(seed=0):
    torch.manual_seed(seed)
    m, _ = tiny_moe("debug")
    with torch.no_grad():  # HF leaves the 3-D expert weights and the router at zero-ish: give them spread
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.2)
    return m.eval()


X = torch.randint(0, 256, (3, 12), generator=torch.Generator().manual_seed(1))


def _moe_reference(block, x):
    """Naive MoE block: per token, top-k of the block's router, loop over picks with materialised weights."""
    from tenfold.moe.stats import expert_weights

    logits, w, idx = block.gate(x)
    gu, dn = expert_weights(block.experts)
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for k in range(idx.shape[1]):
            out[t] += w[t, k] * expert_forward(gu[idx[t, k]], dn[idx[t, k]], x[t:t + 1])[0]
    return out


# ---- statistics -----------------------------------------------------------------------------------------
def test_expert_stats_match_manual_counts():
    m = _model()
    seen = []
    h = moe_layers(m)[0][1].gate.register_forward_hook(lambda mod, a, o: seen.append(o[2]))
    st = expert_stats(m, [X])
    h.remove()
    idx = seen[0]
    E = m.config.num_experts
    manual = torch.stack([(idx == e).any(1).float().mean() for e in range(E)])
    assert torch.allclose(st[0].freq, manual)
    assert torch.allclose(st[0].freq.sum(), torch.tensor(float(m.config.num_experts_per_tok)))
    assert st[0].tokens == X.numel() and st[0].output_sim.shape == (E, E)
    assert torch.allclose(st[0].output_sim.diagonal(), torch.ones(E), atol=1e-5)
    assert routing_entropy(torch.ones(4), 2) == pytest.approx(1.0)
    assert routing_entropy(torch.tensor([1.0, 0, 0, 0]), 1) == pytest.approx(0.0)


# ---- compressed modules vs naive references -------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_compressed_block_matches_naive_reference(method):
    m = _model()
    st = expert_stats(m, [X])
    compress(m, 0.5, method, stats=st, rank=2, **({"anneal": "none"} if method == "lightmoe" else {}))
    for _, block in moe_layers(m):
        x = torch.randn(7, m.config.hidden_size)
        _, w, idx = block.gate(x)
        assert torch.allclose(block.experts(x, idx, w), _moe_reference(block, x), atol=1e-5)


def test_full_rank_replacement_is_exact_and_anneal_blends():
    m = _model()
    st = expert_stats(m, [X])
    block = moe_layers(m)[0][1]
    H, I = m.config.hidden_size, m.config.moe_intermediate_size
    x = torch.randn(5, H)
    _, w, idx = block.gate(x)
    ref = block.experts(x, idx, w)
    for base in ("cluster", "none"):
        mod = _replace_layer(block, [0, 2], st[0], LightMoEConfig(rank=min(H, I), base=base, anneal="none"))
        assert torch.allclose(mod(x, idx, w), ref, atol=1e-4)
    mod = _replace_layer(block, [0, 1, 2], st[0], LightMoEConfig(rank=1, base="cluster", anneal="cosine",
                                                                  grouping="kmeans", base_weighting="mean"))
    assert mod.teacher_gate_up is not None and float(mod.lam) == 0.0
    assert torch.allclose(mod(x, idx, w), ref, atol=1e-6)  # lam = 0: the original experts
    mod.lam.fill_(1.0)
    low = mod(x, idx, w)
    mod.lam.fill_(0.25)
    assert torch.allclose(mod(x, idx, w), 0.25 * low + 0.75 * ref, atol=1e-5)
    # the earlier rule: the shared base is the mean of the replaced experts (one k-means cluster)
    assert torch.allclose(mod.base_gate_up[0], block.experts.gate_up_proj[[0, 1, 2]].mean(0), atol=1e-6)


def test_prune_router_renormalises_over_kept_experts():
    m = _model()
    st = expert_stats(m, [X])
    block = moe_layers(m)[0][1]
    W = block.gate.weight.detach().clone()
    compress(m, 0.5, "prune", stats=st)
    router = block.gate
    kept = router.kept.tolist()
    x = torch.randn(9, m.config.hidden_size)
    _, w, idx = router(x)
    p = torch.softmax(x @ W[kept].T, -1)
    top, j = p.topk(m.config.num_experts_per_tok, -1)
    assert torch.allclose(w, top, atol=1e-6) and torch.equal(idx, torch.tensor(kept)[j])
    assert set(idx.flatten().tolist()) <= set(kept)


def test_merge_is_frequency_weighted_average():
    m = _model()
    st = expert_stats(m, [X])
    block = moe_layers(m)[0][1]
    gu = block.experts.gate_up_proj.detach().clone()
    _, plan = compress(m, 0.5, "merge", stats=st)
    ex = block.experts
    f = st[0].freq + 1e-6
    for d in range(ex.dense_gate_up.shape[0]):
        members = [e for e in range(4) if int(ex.slot_index[e]) == d]
        ref = sum(f[e] * gu[e] for e in members) / f[members].sum()
        assert torch.allclose(ex.dense_gate_up[d], ref, atol=1e-5)
    assert sorted(plan["chosen"][0]) == sorted(torch.argsort(st[0].freq, stable=True)[:2].tolist())


@pytest.mark.parametrize("method,ratio", [(m, r) for m in METHODS for r in (0.3, 0.5)])
def test_budget_reached_and_counted_exactly(method, ratio):
    m = _model()
    H, I, E, L = 32, 32, 4, 2
    before = expert_param_count(m)
    assert before == L * E * 3 * H * I
    earlier = {"selection": "adaptive", "grouping": "kmeans"} if method == "lightmoe" else {}  # one base per layer
    _, plan = compress(m, ratio, method, stats=expert_stats(m, [X]), rank=2, ratio_unit="params", **earlier)
    after = expert_param_count(m)
    assert plan["removed_ratio"] == pytest.approx(1 - after / before, abs=1e-6) and 1 - after / before >= ratio
    n = sum(map(len, plan["chosen"]))
    if method in ("prune", "merge"):
        assert after == before - n * 3 * H * I
    else:
        bases = sum(1 for c in plan["chosen"] if c) if method == "lightmoe" else 0
        assert after == before - n * 3 * H * I + n * 2 * (2 * H + 3 * I) + bases * 3 * H * I
    if method != "lightmoe":  # uniform selection: per-layer counts differ by at most one
        assert max(map(len, plan["chosen"])) - min(map(len, plan["chosen"])) <= 1


@pytest.mark.parametrize("step,total,schedule,frac,want", [
    (0, 10, "cosine", 0.5, 0.0), (5, 10, "cosine", 0.5, 1.0), (9, 10, "cosine", 0.5, 1.0),
    (2, 8, "linear", 0.5, 0.5), (2, 8, "cosine", 0.5, 0.5), (1, 8, "linear", 0.5, 0.25), (0, 10, "none", 0.5, 1.0),
    (3, 10, "linear", 0.0, 1.0), (3, 10, "linear", 0.3, 1.0), (1, 10, "linear", 0.3, 1 / 3),
    (2, 20, "linear", 0.3, 1 / 3)])
def test_anneal_schedule(step, total, schedule, frac, want):
    assert anneal_lambda(step, total, schedule, frac) == pytest.approx(want)


# ---- save/load, generation, recovery ------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_save_load_roundtrip_and_generate(method, tmp_path):
    m = _model()
    compress(m, 0.5, method, stats=expert_stats(m, [X]), rank=2)
    if method == "lightmoe":
        with pytest.raises(UserError, match="finish_recovery"):
            save_compressed(m, tmp_path)
        finish_recovery(m)
    save_compressed(m, tmp_path)
    back = load_compressed(tmp_path)
    assert torch.equal(back(input_ids=X).logits, m(input_ids=X).logits)
    out = back.generate(X[:1, :4], max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 7)


def test_recovery_resume_is_bit_identical(tmp_path):
    def fresh():
        m = _model()
        compress(m, 0.5, "lightmoe", stats=expert_stats(m, [X]), rank=2)
        return m

    def batches(step):
        g = torch.Generator().manual_seed(step)
        x = torch.randint(0, 256, (2, 10), generator=g)
        return x, x

    from tenfold.moe import recover

    rc = RecoveryConfig(steps=4, lr=1e-2, lora_rank=2, anneal="cosine", anneal_frac=0.5, checkpoint_every=2)
    torch.manual_seed(0)
    ref, ref_losses = recover(fresh(), batches, rc)

    class Stop(Exception):
        pass

    def interrupted(step):
        if step == 3:
            raise Stop
        return batches(step)

    ck = tmp_path / "ck.pt"
    torch.manual_seed(0)
    with pytest.raises(Stop):
        recover(fresh(), interrupted, rc, ckpt=ck)
    assert ck.exists()
    torch.manual_seed(123)  # a different LoRA init: the checkpoint must win
    got, losses = recover(fresh(), batches, rc, ckpt=ck)
    assert losses == ref_losses
    assert torch.equal(got(input_ids=X).logits, ref(input_ids=X).logits)
    assert compressed_experts(got)[0].teacher_gate_up is None


def test_recovery_trains_replacements_not_kept_experts():
    from tenfold.moe import add_lora, trainable_count

    m = _model()
    compress(m, 0.5, "lightmoe", stats=expert_stats(m, [X]), rank=2)
    rc = RecoveryConfig(lora_rank=2)
    expected = trainable_count(m, rc)
    pm = add_lora(m, rc)
    names = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in pm.parameters() if p.requires_grad) == expected
    plain = _model()
    rc = RecoveryConfig(lora_rank=2, lora_expert_rank=3)
    assert sum(p.numel() for p in add_lora(plain, rc).parameters() if p.requires_grad) == trainable_count(_model(), rc)
    with pytest.raises(UserError, match="lora_expert_rank"):
        add_lora(m, rc)  # already compressed: no original expert stores left
    assert any(".lr_gu_a" in n for n in names) and any("lora_A" in n for n in names)
    assert not any(".dense_" in n or ".base_" in n or "embed" in n for n in names)


# ---- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,match", [
    (dict(ratio=0.0), "ratio"), (dict(ratio=1.0), "ratio"), (dict(ratio=-0.2), "ratio"),
    (dict(method="distill"), "method"), (dict(rank=999), "rank"), (dict(rank=0), "rank"),
    (dict(selection="random"), "selection"), (dict(anneal="step"), "anneal"), (dict(n_clusters=0), "n_clusters"),
    (dict(ratio=0.9, method="prune"), "ratio"), (dict(ratio=0.95, rank=30, ratio_unit="params"), "ratio"),
    (dict(grouping="spectral"), "grouping"), (dict(group_size=0), "group_size"),
    (dict(ratio_unit="bytes"), "ratio_unit"),
    (dict(base_weighting="median"), "base_weighting"), (dict(threshold_clamp=(1.2, 0.8)), "threshold_clamp")])
def test_compress_errors(kw, match):
    m = _model()
    st = expert_stats(m, [X])
    before = copy.deepcopy(m.state_dict())
    kw = {"ratio": 0.5, "method": "lightmoe", **kw}
    with pytest.raises(UserError, match=match):
        compress(m, kw.pop("ratio"), kw.pop("method"), stats=st, **kw)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # nothing changed


def test_other_errors(tmp_path):
    from tenfold.models.hf_tiny import tiny_llama

    llama, _ = tiny_llama("debug")
    with pytest.raises(UserError, match="no MoE layers"):
        expert_stats(llama, [X])
    m = _model()
    with pytest.raises(UserError, match="stats"):
        compress(m, 0.5, "prune", stats=[])
    with pytest.raises(UserError, match="path"):
        load_compressed(tmp_path / "nothing")
    with pytest.raises(UserError, match="steps"):
        from tenfold.moe import recover
        recover(m, lambda s: (X, X), RecoveryConfig(steps=0))
    with pytest.raises(UserError, match="anneal"):
        anneal_lambda(0, 10, "exp")
    set_anneal(m, 0.5)  # no compressed layers: a no-op


# ---- the reproduction -------------------------------------------------------------------------------------
def test_smoke_run_validates(tmp_path, monkeypatch):
    from tenfold.experiments.lightmoe import EXPERIMENT
    from tenfold.harness.runner import run_experiment
    from tenfold.harness.schema import validate_results

    path = run_experiment(EXPERIMENT, {"number": 9, "title": "LightMoE", "arxiv": "2603.12645"}, mode="smoke",
                          out_dir=tmp_path, progress=False)
    validate_results(path)
    res = json.loads(path.read_text())
    arms = {a["name"]: a["mean"] for a in res["arms"]}
    assert arms["lora"]["removed_pct"] == 0 and arms["prune50"]["removed_pct"] == pytest.approx(50)
    for name in ("lightmoe30", "lightmoe50", "naive50", "merge50"):
        assert arms[name]["removed_pct"] >= (30 if "30" in name else 50)
        assert arms[name]["model_kib"] < arms["lora"]["model_kib"]
    assert (tmp_path / "lightmoe" / "routing_histograms.png").exists()
    assert (tmp_path / "lightmoe" / "routing_specialisation.png").exists()


def test_experiment_arms_cover_the_issue():
    from tenfold.experiments.lightmoe import EXPERIMENT, LightMoEExpConfig

    names = {a.name for a in EXPERIMENT.arms(LightMoEExpConfig())}
    assert names == {"lora", "lora_all", "lightmoe30", "prune50", "merge50", "naive50", "lightmoe50", "lm50_uniform",
                     "lm50_nobase", "lm50_noanneal"}
    full = {a.name for a in EXPERIMENT.arms(LightMoEExpConfig(baselines_at_low=True))}
    assert {"prune30", "merge30", "naive30"} <= full
    EXPERIMENT.check_claims(EXPERIMENT.arms(LightMoEExpConfig()))
