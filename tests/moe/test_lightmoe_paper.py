"""LightMoE's paper defaults (fidelity note §6), each rule against a naive reference on tiny tensors: per-layer
threshold selection scaled by the router-output norm, router-similarity groups of three with importance-weighted
bases, rank 16, linear anneal ending at 30% of training, and the expert-count ratio next to the parameter ratio."""

import math

import pytest
import torch

from tenfold.models.hf_tiny import tiny_moe
from tenfold.moe import (EARLIER_DEFAULTS, LightMoEConfig, RecoveryConfig, anneal_lambda, base_weights, compress,
                         compressed_experts, expert_param_count, expert_stats, group_experts, layer_threshold_factors,
                         moe_layers, plan_selection)
from tenfold.moe.stats import LayerStats

X = torch.randint(0, 256, (3, 12), generator=torch.Generator().manual_seed(1))


def _model(seed=0):
    torch.manual_seed(seed)
    m, _ = tiny_moe("debug")
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.2)
    return m.eval()


def _stats(mass, norms):
    """Hand-made LayerStats: gate mass per layer, router-output norm per layer (other fields unused here)."""
    out = []
    for l, (g, n) in enumerate(zip(mass, norms)):
        g = torch.tensor(g, dtype=torch.float32)
        E = len(g)
        out.append(LayerStats(f"l{l}", g, g, torch.eye(E), torch.eye(E), 100, n))
    return out


# ---- 1. selection: per-layer threshold on normalised importance, scaled by the router-output norm ----------
@pytest.mark.parametrize("norms,alpha,clamp", [
    ([1.0, 2.0, 3.0], 1.0, (0.8, 1.2)),     # z = -1.22, 0, 1.22: clamped at both ends
    ([1.0, 1.1], 0.1, (0.8, 1.2)),          # z = -1, 1: inside the clamp
    ([5.0, 5.0, 5.0], 1.0, (0.8, 1.2)),     # no spread: factor 1 everywhere
    ([2.0], 3.0, (0.8, 1.2)),               # one layer
    ([1.0, 4.0], 0.2, (0.5, 2.0))])
def test_layer_threshold_factors_match_formula(norms, alpha, clamp):
    n = len(norms)
    mean = sum(norms) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in norms) / n)
    want = [min(max(math.exp(-alpha * ((v - mean) / sd if sd > 0 else 0.0)), clamp[0]), clamp[1]) for v in norms]
    assert layer_threshold_factors(norms, alpha, clamp) == pytest.approx(want)


def _threshold_reference(mass, norms, ratio, alpha=1.0, clamp=(0.8, 1.2)):
    """Naive: raise the base threshold tau through every candidate value until `replace e if s_le < tau * f_l`
    (s the layer-normalised gate mass) replaces at least ceil(ratio * #experts) experts."""
    f = layer_threshold_factors(norms, alpha, clamp)
    s = [[v / sum(g) for v in g] for g in mass]
    need = math.ceil(ratio * sum(map(len, mass)) - 1e-9)
    for tau in sorted({s[l][e] / f[l] for l in range(len(s)) for e in range(len(s[l]))}):
        tau = tau * (1 + 1e-12)  # just above the candidate: that expert is strictly under its threshold
        chosen = [sorted(e for e in range(len(s[l])) if s[l][e] < tau * f[l]) for l in range(len(s))]
        if sum(map(len, chosen)) >= need:
            return chosen


@pytest.mark.parametrize("mass,norms,ratio", [
    ([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]], [1.0, 3.0], 0.25),  # equal importance: shallow layer first
    ([[0.1, 0.2, 0.3, 0.4], [0.12, 0.18, 0.3, 0.4]], [1.0, 3.0], 0.5),
    ([[0.05, 0.15, 0.3, 0.5], [0.2, 0.21, 0.29, 0.3]], [2.0, 2.0], 0.5),  # equal norms: plain normalised ranking
    ([[1.0, 2.0, 3.0, 4.0], [0.11, 0.19, 0.33, 0.37], [5.0, 1.0, 7.0, 3.0]], [1.0, 2.0, 4.0], 0.3),
    ([[0.3, 0.1, 0.4, 0.2], [0.26, 0.24, 0.25, 0.27]], [4.0, 1.0], 0.5)])
def test_threshold_selection_matches_naive_reference(mass, norms, ratio):
    st = _stats(mass, norms)
    dims = [(len(g), 32, 32) for g in mass]
    cfg = LightMoEConfig(ratio=ratio)
    assert cfg.selection == "threshold" and cfg.ratio_unit == "experts"
    got = plan_selection(st, dims, cfg, top_k=2)
    assert [sorted(c) for c in got] == _threshold_reference(mass, norms, ratio)


def test_threshold_normalises_within_layers_and_earlier_rule_does_not():
    # layer 1's gate mass is 10x smaller overall: the global (earlier) rule takes only its experts, the paper's
    # rule compares within-layer shares
    mass, norms = [[1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4]], [1.0, 1.0]
    st, dims = _stats(mass, norms), [(4, 32, 32)] * 2
    assert plan_selection(st, dims, LightMoEConfig(ratio=0.25), 2) == [[0], [0]]
    assert plan_selection(st, dims, LightMoEConfig(ratio=0.25, selection="adaptive"), 2) == [[], [0, 1]]


# ---- 2. grouping by router-output similarity, groups of three, importance-weighted bases -------------------
S = torch.tensor([[1.0, 0.1, 0.2, 0.9, 0.3, 0.0],
                  [0.1, 1.0, 0.8, 0.2, 0.7, 0.6],
                  [0.2, 0.8, 1.0, 0.4, 0.1, 0.5],
                  [0.9, 0.2, 0.4, 1.0, 0.3, 0.2],
                  [0.3, 0.7, 0.1, 0.3, 1.0, 0.95],
                  [0.0, 0.6, 0.5, 0.2, 0.95, 1.0]])


@pytest.mark.parametrize("chosen,imp,size,want", [
    # 6 chosen -> 2 groups; representatives 1 (0.9) and 4 (0.8); then 2 -> 1 (0.8), 5 -> 4 (0.95), 0 -> 4 (0.3 >
    # 0.1), 3 -> 1 is the only one with room (4 is full)
    ([0, 1, 2, 3, 4, 5], [0.3, 0.9, 0.5, 0.1, 0.8, 0.4], 3, {0: 1, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1}),
    # 4 chosen -> 2 groups; representatives 2 and 5; 0 -> 2 (0.2 > 0.0), 3 -> 2 (0.4 > 0.2)
    ([0, 2, 3, 5], [0.2, 0.0, 0.7, 0.1, 0.0, 0.6], 3, {0: 0, 2: 0, 3: 0, 5: 1}),
    # 3 chosen -> one group around the most important
    ([1, 3, 5], [0.0, 0.1, 0.0, 0.1, 0.0, 0.3], 3, {1: 0, 3: 0, 5: 0}),
    # group size 2: 5 chosen -> 3 groups; reps 4, 1, 0; 2 -> 1 (0.8), 3 -> 0 (0.9)
    ([0, 1, 2, 3, 4], [0.5, 0.6, 0.2, 0.1, 0.9, 0.0], 2, {4: 0, 1: 1, 0: 2, 2: 1, 3: 2}),
    # ties in importance: lower index first
    ([2, 4], [0.0, 0.0, 0.5, 0.0, 0.5, 0.0], 1, {2: 0, 4: 1})])
def test_group_experts_matches_hand_reference(chosen, imp, size, want):
    got = group_experts(chosen, torch.tensor(imp), S, size)
    assert dict(zip(chosen, got)) == want
    assert max(got.count(g) for g in set(got)) <= size and len(set(got)) == math.ceil(len(chosen) / size)


@pytest.mark.parametrize("imp,weighting,want", [
    ([1.0, 3.0], "importance", [0.25, 0.75]), ([1.0, 3.0], "mean", [0.5, 0.5]),
    ([0.0, 0.0, 0.0], "importance", [1 / 3] * 3), ([2.0], "importance", [1.0])])
def test_base_weights(imp, weighting, want):
    assert base_weights(torch.tensor(imp), weighting).tolist() == pytest.approx(want)


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_replaced_layer_bases_are_importance_weighted_means_of_router_groups(ratio):
    m = _model()
    st = expert_stats(m, [X])
    originals = [blk.experts.gate_up_proj.detach().clone() for _, blk in moe_layers(m)]
    downs = [blk.experts.down_proj.detach().clone() for _, blk in moe_layers(m)]
    _, plan = compress(m, ratio, "lightmoe", stats=st)
    for l, ((_, blk), c) in enumerate(zip(moe_layers(m), plan["chosen"])):
        ex = blk.experts
        groups = group_experts(c, st[l].gate_mass, st[l].logit_sim, 3)
        assert ex.base_gate_up.shape[0] == (math.ceil(len(c) / 3) if c else 0)
        for g in set(groups):
            members = [e for e, gg in zip(c, groups) if gg == g]
            w = [float(st[l].gate_mass[e]) for e in members]
            w = [v / sum(w) for v in w] if sum(w) > 0 else [1 / len(w)] * len(w)
            ref_gu = sum(wi * originals[l][e] for wi, e in zip(w, members))
            ref_dn = sum(wi * downs[l][e] for wi, e in zip(w, members))
            j = c.index(members[0])  # every member points at its group's base
            b = int(ex.lowrank_base[j])
            assert all(int(ex.lowrank_base[c.index(e)]) == b for e in members)
            assert torch.allclose(ex.base_gate_up[b], ref_gu, atol=1e-5)
            assert torch.allclose(ex.base_down[b], ref_dn, atol=1e-5)


# ---- 3. rank 16 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,rank", [({}, 16), ({"rank": 8}, 8), (EARLIER_DEFAULTS, 8)])
def test_rank_default_and_option(kw, rank):
    m = _model()
    compress(m, 0.25, "lightmoe", stats=expert_stats(m, [X]), **kw)
    for ce in compressed_experts(m):
        assert ce.rank == rank and ce.lr_gu_a.shape[1] == rank and ce.lr_dn_b.shape[2] == rank


# ---- 4. anneal: the original's weight linear 1 -> 0, ending at 30% of training ------------------------------
@pytest.mark.parametrize("total", [10, 20, 7])
def test_linear_anneal_default_matches_reference(total):
    cfg, rc = LightMoEConfig(), RecoveryConfig()
    assert (cfg.anneal, cfg.anneal_frac, rc.anneal_frac) == ("linear", 0.3, 0.3)
    end = 0.3 * total
    for step in range(total):
        original = max(0.0, 1 - step / end)  # weight of the original expert
        assert 1 - anneal_lambda(step, total) == pytest.approx(original)
        assert anneal_lambda(step, total, cfg.anneal, cfg.anneal_frac) == pytest.approx(1 - original)


# ---- 5. ratio in experts (the paper's unit), both ratios reported --------------------------------------------
@pytest.mark.parametrize("method,ratio", [(m, r) for m in ("lightmoe", "naive_replace", "prune", "merge")
                                          for r in (0.25, 0.5)])
def test_expert_count_ratio_and_both_reported(method, ratio):
    m = _model()
    E, L = m.config.num_experts, m.config.num_hidden_layers
    before = expert_param_count(m)
    _, plan = compress(m, ratio, method, stats=expert_stats(m, [X]), rank=2)
    n = sum(map(len, plan["chosen"]))
    assert n == math.ceil(ratio * E * L) and plan["ratio_unit"] == "experts"
    assert plan["expert_ratio"] == pytest.approx(n / (E * L))
    assert plan["param_ratio"] == plan["removed_ratio"] == pytest.approx(1 - expert_param_count(m) / before, abs=1e-6)
    if method in ("prune", "merge"):  # whole experts go: both units agree
        assert plan["param_ratio"] == pytest.approx(plan["expert_ratio"])
    else:  # deltas and bases cost parameters: fewer parameters removed than experts replaced
        assert plan["param_ratio"] < plan["expert_ratio"]


def test_router_norm_is_mean_logit_norm():
    m = _model()
    seen = []
    h = moe_layers(m)[1][1].gate.register_forward_hook(lambda mod, a, o: seen.append(o[0]))
    st = expert_stats(m, [X])
    h.remove()
    assert st[1].router_norm == pytest.approx(float(seen[0].float().norm(dim=-1).mean()), rel=1e-5)
