"""tenfold.zo: engine maths against naive references, sweep counts, unbiasedness, resume, bf16, plug-in, errors."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from tenfold.zo import (AdaLeZO, LeZO, MeZO, MeZOReference, SeededPerturbation, arm_probabilities, default_k,
                        ipw_weights, model_arms)
from tenfold.zo.engine import _mix


class _Net(torch.nn.Module):
    """embed -> 3 blocks -> head; model_arms gives 5 arms."""

    def __init__(self, d=4, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Linear(3, d, dtype=dtype)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(d, d, dtype=dtype) for _ in range(3))
        self.head = torch.nn.Linear(d, 2, dtype=dtype)

    def forward(self, x):
        h = self.embed(x)
        for l in self.layers:
            h = h + torch.tanh(l(h))
        return self.head(h)


def _closure(net, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 3, generator=g, dtype=dtype), torch.randint(0, 2, (8,), generator=g)
    return lambda: torch.nn.functional.cross_entropy(net(x).float(), y)


def _flat(net):
    return torch.cat([p.detach().flatten().float() for p in net.parameters()])


OPTS = {
    "mezo": lambda arms: MeZO(arms, lr=1e-2, eps=1e-3, seed=3),
    "lezo": lambda arms: LeZO(arms, lr=1e-2, eps=1e-3, k=2, seed=3),
    "adalezo": lambda arms: AdaLeZO(arms, lr=1e-2, eps=1e-3, k=2, seed=3),
    "adalezo_former": lambda arms: AdaLeZO(arms, lr=1e-2, eps=1e-3, k=2, variant="former", warmup=2, seed=3),
    "adalezo_ht_softmax": lambda arms: AdaLeZO(arms, lr=1e-2, eps=1e-3, k=3, variant="former", warmup=0,
                                               weighting="horvitz_thompson", rule="softmax_mean", seed=3),
    "adalezo_params": lambda arms: AdaLeZO(arms, lr=1e-2, eps=1e-3, variant="former", budget="params",
                                           param_fraction=0.3, warmup=1, seed=3),
    "adalezo_momentum": lambda arms: AdaLeZO(arms, eps=1e-3, k=2, warmup=1, seed=3,
                                             base_optimizer=lambda g: torch.optim.SGD(g, lr=1e-2, momentum=0.9)),
    "adalezo_adam": lambda arms: AdaLeZO(arms, eps=1e-3, k=2, warmup=1, seed=3,
                                         base_optimizer=lambda g: torch.optim.Adam(g, lr=1e-3)),
}


# ---- arms from the model structure ----------------------------------------------------------------------
def test_model_arms_hf_llama():
    from tenfold.models.hf_tiny import tiny_llama

    model, conf = tiny_llama("debug")
    arms = model_arms(model)
    names = [a["name"] for a in arms]
    assert names[:3] == ["embed", "block0", "block1"] and names[-1] == "rest"  # final norm (official grouping)
    assert "other" in [a["name"] for a in model_arms(model, split_head=True)]
    assert ("head" in names) == (not conf.tie_word_embeddings)  # a tied head is the embedding arm
    assert sum(len(a["params"]) for a in arms) == len(list(model.parameters()))
    assert all(n.startswith("model.layers.1.") for n in arms[names.index("block1")]["param_names"])
    assert "embed" not in [a["name"] for a in model_arms(model, exclude=["embed"])]
    assert [a["name"] for a in model_arms(model, include=["block1"])] == ["block1"]
    with pytest.raises(ValueError, match="no trainable"):
        model_arms(model, include=["nothing"])


# ---- the engine ------------------------------------------------------------------------------------------
def test_engine_matches_naive_generator_and_leaves_global_rng():
    ps = [torch.zeros(5), torch.zeros(2, 3), torch.zeros(4)]
    eng = SeededPerturbation([[ps[0], ps[1]], [ps[2]]])
    state = torch.get_rng_state()
    eng.apply(seed=11, alphas={0: 0.5, 1: -2.0})
    assert torch.equal(state, torch.get_rng_state())
    g0 = torch.Generator().manual_seed(_mix(11, 0))
    z0, z1 = torch.randn(5, generator=g0), torch.randn(2, 3, generator=g0)
    z2 = torch.randn(4, generator=torch.Generator().manual_seed(_mix(11, 1)))
    assert torch.equal(ps[0], 0.5 * z0) and torch.equal(ps[1], 0.5 * z1) and torch.equal(ps[2], -2.0 * z2)
    # regenerating gives the same directions; other seeds and arms differ
    assert torch.equal(next(iter(eng.directions(0, 11)))[1], z0)
    assert not torch.equal(next(iter(eng.directions(0, 12)))[1], z0)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_mezo_step_matches_naive_reference(wd):
    net = _Net()
    arms = model_arms(net)
    opt = MeZO(arms, lr=0.05, eps=1e-3, weight_decay=wd, seed=5)
    theta = [p.detach().clone() for p in net.parameters()]
    closure = _closure(net)
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(5)))
    zs = [z.clone() for a in range(len(arms)) for _, z in opt.engine.directions(a, seed)]
    with torch.no_grad():
        for p, t, z in zip(net.parameters(), theta, zs):
            p.copy_(t + 1e-3 * z)
        lp = float(closure())
        for p, t, z in zip(net.parameters(), theta, zs):
            p.copy_(t - 1e-3 * z)
        ln = float(closure())
        for p, t in zip(net.parameters(), theta):
            p.copy_(t)
    g = (lp - ln) / 2e-3
    expect = [(1 - 0.05 * wd) * t - 0.05 * g * z for t, z in zip(theta, zs)]
    loss = opt.step(closure)
    assert loss == pytest.approx(lp, rel=1e-5)
    assert opt.last["g"] == pytest.approx(g, rel=1e-3, abs=1e-4)
    for p, e in zip(net.parameters(), expect):
        torch.testing.assert_close(p.detach(), e, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("name, sweeps", [("mezo", 3), ("lezo", 3), ("adalezo", 3), ("adalezo_momentum", 4)])
def test_sweeps_per_step(name, sweeps, monkeypatch):
    """The fused restore+update makes 3 sweeps per touched arm (4 with a plug-in base optimizer)."""
    net = _Net()
    opt = OPTS[name](model_arms(net))
    calls = []
    orig = opt.engine.directions

    def counting(arm, seed):
        calls.append(arm)
        return orig(arm, seed)

    monkeypatch.setattr(opt.engine, "directions", counting)
    opt.step(_closure(net))
    touched = set(opt.last["arms"])
    assert sorted(calls) == sorted([a for a in touched for _ in range(sweeps)])


def test_mezo_reference_four_sweeps_and_update():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6))
    w0 = w.detach().clone()
    opt = MeZOReference([w], lr=0.1, eps=1e-3)
    np.random.seed(7)
    seed = int(np.random.RandomState(7).randint(1_000_000_000))
    loss = opt.step(lambda: (w ** 2).sum())
    torch.manual_seed(seed)
    z = torch.normal(mean=0, std=1, size=(6,))
    g = (float(((w0 + 1e-3 * z) ** 2).sum()) - float(((w0 - 1e-3 * z) ** 2).sum())) / 2e-3
    torch.testing.assert_close(w.detach(), w0 - 0.1 * g * z, atol=1e-5, rtol=1e-4)
    assert loss == pytest.approx(float(((w0 + 1e-3 * z) ** 2).sum()), rel=1e-5)


def test_lezo_touches_exactly_k_arms():
    net = _Net()
    arms = model_arms(net)
    opt = LeZO(arms, lr=1e-2, eps=1e-3, k=2, seed=0)
    before = [[p.detach().clone() for p in g["params"]] for g in opt.param_groups]
    opt.step(_closure(net))
    assert len(opt.last["arms"]) == 2
    for a, g in enumerate(opt.param_groups):
        same = all(torch.equal(p, b) for p, b in zip(g["params"], before[a]))
        assert same == (a not in opt.last["arms"])


# ---- AdaLeZO maths ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("counts, probs, k, weighting, expect", [
    ({0: 2, 2: 1}, [0.5, 0.25, 0.25], 3, "hansen_hurwitz", {0: 2 / 1.5, 2: 1 / 0.75}),
    ({1: 1}, [0.5, 0.25, 0.25], 1, "hansen_hurwitz", {1: 4.0}),
    ({0: 2, 2: 1}, [0.5, 0.25, 0.25], 3, "horvitz_thompson", {0: 1 / (1 - 0.5 ** 3), 2: 1 / (1 - 0.75 ** 3)}),
])
def test_ipw_weights(counts, probs, k, weighting, expect):
    got = ipw_weights(counts, probs, k, weighting)
    assert got.keys() == expect.keys()
    for a in expect:
        assert got[a] == pytest.approx(expect[a])


def test_arm_probabilities_official_softmax_of_max_normalised_rewards():
    """Official: s = R / max R, p = softmax(s / 0.6), then 0.9 p + 0.1 / L; all-zero rewards give uniform p."""
    R = [2.0, 1.0, 0.0]
    e = [math.exp(x / 0.6) for x in (1.0, 0.5, 0.0)]
    want = [0.9 * x / sum(e) + 0.1 / 3 for x in e]
    assert arm_probabilities(R, [1, 1, 1], gamma=0.1) == pytest.approx(want)
    assert arm_probabilities([0.0] * 4, [1] * 4, gamma=0.1) == pytest.approx([0.25] * 4)
    # the largest ratio before mixing is e^(1/tau): a mild policy
    p = arm_probabilities([1.0, 0.0], [1, 1], gamma=1e-9, tau=0.6)
    assert p[0] / p[1] == pytest.approx(math.exp(1 / 0.6), rel=1e-6)


def test_official_defaults_match_unifiedzo():
    ws = [torch.nn.Parameter(torch.zeros(2)) for _ in range(12)]
    opt = AdaLeZO([{"params": [w]} for w in ws])
    assert (opt.k, opt.reward, opt.rule, opt.tau, opt.gamma, opt.clip, opt.warmup) == (2, "abs_g", "softmax_max", 0.6,
                                                                                       0.1, 4.0, 0)
    assert opt.reward_beta == pytest.approx(0.9) and opt.rewards == [0.0] * 12 
    former = AdaLeZO([{"params": [w]} for w in ws], variant="former")
    assert (former.k, former.rule, former.gamma, former.clip, former.warmup) == (3, "sqrt", 0.2, None, 50)
    assert default_k(4) == 1 and default_k(5) == 1 and default_k(10) == 2 and default_k(4, "former") == 1


def test_official_reward_is_abs_g_ema_from_zero():
    ws = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in range(5)]
    opt = AdaLeZO([{"params": [w]} for w in ws], lr=0.0, eps=1e-3, k=1, seed=0)
    opt.step(lambda: sum(3.0 * w.sum() for w in ws))
    (a,) = opt.last["arms"]
    assert opt.rewards[a] == pytest.approx(0.1 * abs(opt.last["g"]))
    assert all(r == 0.0 for i, r in enumerate(opt.rewards) if i != a)


def test_ipw_clip_caps_inverse_probability_before_the_count():
    got = ipw_weights({0: 2, 1: 1}, [0.05, 0.95], 2, clip=4.0)
    assert got[0] == pytest.approx(4.0 * 2) and got[1] == pytest.approx(1 / (2 * 0.95))


def test_arm_probabilities_sqrt_floor_and_cost():
    p = arm_probabilities([4.0, 1.0, 0.0, 1.0], [1, 1, 1, 1], gamma=0.2, rule="sqrt")
    assert sum(p) == pytest.approx(1.0) and min(p) >= 0.2 / 4 - 1e-12
    assert p[0] == pytest.approx(0.8 * 2 / 4 + 0.05) and p[1] == pytest.approx(0.8 * 1 / 4 + 0.05)
    c = arm_probabilities([4.0, 4.0], [1, 4], gamma=0.0, rule="sqrt", cost_aware=True)  # sqrt(4/1) : sqrt(4/4) = 2 : 1
    assert c == pytest.approx([2 / 3, 1 / 3])
    s = arm_probabilities([4.0, 1.0], [1, 1], gamma=0.1, rule="softmax_mean")
    assert s[0] > s[1] and sum(s) == pytest.approx(1.0)
    assert arm_probabilities([0.0, 0.0], [1, 1], gamma=0.5, rule="sqrt") == [0.5, 0.5]


def test_bandit_prefers_the_arm_with_the_gradient():
    ws = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in range(4)]
    a = torch.tensor([3.0, 0.0, 0.0, 0.1], dtype=torch.float64)  # only arm 0 (and a little arm 3) matters
    opt = AdaLeZO([{"params": [w]} for w in ws], lr=0.0, eps=1e-3, k=1, variant="former", warmup=5, seed=1)
    for _ in range(200):
        opt.step(lambda: sum(ai * w.sum() for ai, w in zip(a, ws)))
    assert opt.probs[0] > 0.6 and opt.probs[0] == max(opt.probs) and min(opt.probs) >= 0.2 / 4 - 1e-12
    # official rule: milder (softmax of R / max R at tau 0.6 caps the odds at e^(1/0.6) = 5.3), floor 0.1 / L
    off = AdaLeZO([{"params": [w]} for w in ws], lr=0.0, eps=1e-3, k=1, seed=1)
    for _ in range(200):
        off.step(lambda: sum(ai * w.sum() for ai, w in zip(a, ws)))
    assert off.probs[0] > 0.5 and off.probs[0] == max(off.probs) and min(off.probs) >= 0.1 / 4 - 1e-12


def test_params_budget_reaches_fraction():
    sizes = [100, 10, 10, 10]
    ws = [torch.nn.Parameter(torch.zeros(n)) for n in sizes]
    opt = AdaLeZO([{"params": [w]} for w in ws], eps=1e-3, variant="former", budget="params", param_fraction=0.5, seed=0)
    k = opt._budget_k(opt.probs)
    expected = lambda k: sum((1 - (1 - p) ** k) * n for p, n in zip(opt.probs, sizes))  # noqa: E731
    assert expected(k) >= 0.5 * sum(sizes) and (k == 1 or expected(k - 1) < 0.5 * sum(sizes))


@pytest.mark.parametrize("make", [
    lambda arms: MeZO(arms, lr=1e-3, eps=1e-3, seed=0),
    lambda arms: LeZO(arms, lr=1e-3, eps=1e-3, k=1, reweight=True, seed=0),
    lambda arms: AdaLeZO(arms, lr=1e-3, eps=1e-3, k=2, clip=None, seed=0),
    lambda arms: AdaLeZO(arms, lr=1e-3, eps=1e-3, k=2, warmup=0, variant="former", weighting="horvitz_thompson", seed=0),
], ids=["mezo", "lezo_reweighted", "adalezo_hh_unclipped", "adalezo_ht"])
def test_estimate_is_unbiased(make):
    """Averaged over many steps at a fixed point, every estimator's mean matches the gradient of a linear loss
    (= the MeZO estimate's expectation): each coordinate within 4.5 standard errors, and the sum of squared
    standardised errors (12 coordinates) below 40."""
    torch.manual_seed(0)
    ws = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in range(4)]
    grad = torch.tensor([[1.0, -2.0, 0.5], [0.2, 0.1, 0.0], [3.0, 1.0, -1.0], [0.0, 0.0, 0.3]], dtype=torch.float64)
    opt = make([{"params": [w]} for w in ws])
    lr = opt.param_groups[0]["lr"]
    n = 3000
    est = torch.zeros(n, 4, 3, dtype=torch.float64)
    closure = lambda: sum((gi * w).sum() for gi, w in zip(grad, ws))  # noqa: E731
    for t in range(n):
        opt.step(closure)
        with torch.no_grad():
            for i, w in enumerate(ws):
                est[t, i] = -w / lr
                w.zero_()
    mean, se = est.mean(0), est.std(0) / math.sqrt(n)
    assert ((mean - grad).abs() <= 4.5 * se + 1e-9).all(), (mean, grad, se)
    chi2 = float((((mean - grad) / se) ** 2).sum())  # ~ chi-square with 12 dof when unbiased
    assert chi2 < 40.0, chi2  # P(chi2_12 > 40) ~ 1e-4


# ---- resume, dtypes, plug-in, timing -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OPTS))
def test_resume_is_bit_identical(name):
    net = _Net()
    opt = OPTS[name](model_arms(net))
    for s in range(4):
        opt.step(_closure(net, s))
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    opt.step(_closure(net, 9))
    after = _flat(net)
    buf.seek(0)
    ck = torch.load(buf, weights_only=False)
    net2 = _Net()
    net2.load_state_dict(ck["model"])
    opt2 = OPTS[name](model_arms(net2))
    opt2.load_state_dict(ck["opt"])
    opt2.step(_closure(net2, 9))
    assert torch.equal(after, _flat(net2))
    if hasattr(opt, "probs"):
        assert opt.probs == opt2.probs and opt.counts_total == opt2.counts_total


@pytest.mark.parametrize("name", ["mezo", "adalezo"])
def test_bf16_parameters(name):
    net = _Net(dtype=torch.bfloat16)
    opt = OPTS[name](model_arms(net))
    before = _flat(net)
    opt.step(_closure(net, dtype=torch.bfloat16))
    assert all(p.dtype == torch.bfloat16 for p in net.parameters())
    assert not torch.equal(before, _flat(net)) and torch.isfinite(_flat(net)).all()


def test_plugin_leaves_no_grads_and_moves_only_touched_arms():
    net = _Net()
    opt = OPTS["adalezo_momentum"](model_arms(net))
    before = [[p.detach().clone() for p in g["params"]] for g in opt.param_groups]
    opt.step(_closure(net))
    assert all(p.grad is None for p in net.parameters())
    for a, g in enumerate(opt.param_groups):
        moved = any(not torch.equal(p, b) for p, b in zip(g["params"], before[a]))
        assert moved == (a in opt.last["arms"])
    assert len(opt.base.state) == sum(len(opt.param_groups[a]["params"]) for a in opt.last["arms"])


def test_timing_buckets():
    net = _Net()
    opt = OPTS["adalezo"](model_arms(net))
    opt.step(_closure(net))
    assert set(opt.timing) == {"forward", "perturb", "update", "bandit"}
    assert all(v >= 0 for v in opt.timing.values()) and opt.timing["forward"] > 0
    assert opt.timing_total == opt.timing


# ---- errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda a: AdaLeZO(a, k=0), "Invalid k"),
    (lambda a: AdaLeZO(a, k=6), "Invalid k"),
    (lambda a: LeZO(a, k=9), "Invalid k"),
    (lambda a: MeZO(a, eps=0.0), "Invalid eps"),
    (lambda a: AdaLeZO(a, eps=-1e-3), "Invalid eps"),
    (lambda a: MeZO(a, lr=-1.0), "Invalid lr"),
    (lambda a: AdaLeZO(a, weighting="ipw"), "Invalid weighting"),
    (lambda a: AdaLeZO(a, budget="flops"), "Invalid budget"),
    (lambda a: AdaLeZO(a, rule="ucb"), "Invalid rule"),
    (lambda a: AdaLeZO(a, gamma=0.0), "Invalid gamma"),
    (lambda a: AdaLeZO(a, reward_beta=1.0), "Invalid reward_beta"),
    (lambda a: AdaLeZO(a, param_fraction=1.5), "Invalid param_fraction"),
    (lambda a: MeZO([{"params": [torch.zeros(3, dtype=torch.long)]}]), "not floating point"),
])
def test_constructor_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make(model_arms(_Net()))


def test_step_errors():
    net = _Net()
    opt = MeZO(model_arms(net), lr=1e-3)
    with pytest.raises(ValueError, match="Invalid closure"):
        opt.step()

    def needs_grad():
        loss = _closure(net)()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="needs gradients"):
        opt.step(needs_grad)
    _closure(net)().backward()  # grads left from backprop, e.g. gradient accumulation
    with pytest.raises(ValueError, match="gradient accumulation"):
        opt.step(_closure(net))
    with pytest.raises(ValueError, match="Invalid state_dict"):
        opt.load_state_dict(torch.optim.SGD(net.parameters(), lr=0.1).state_dict())


# ---- train mode, BERT names, LeZO's own rule (issue 25) ----------------------------------------------------------
class _DropNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(2))
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        for lin in self.layers:
            x = self.drop(lin(x))
        return x


def test_model_in_train_mode_is_probed_in_eval_mode_and_restored():
    net = _DropNet().train()
    x = torch.randn(8, 4)
    seen = []

    def closure():
        seen.append(net.training)
        return net(x).pow(2).mean()

    opt = MeZO(model_arms(net), lr=1e-3, eps=1e-3, seed=0, model=net)
    opt.step(closure)
    assert seen == [False, False] and net.training  # both probes without dropout, mode restored
    net.layers[0].eval()  # a part the user keeps in eval mode stays so
    opt.step(closure)
    assert net.training and not net.layers[0].training and net.layers[1].training
    with pytest.warns(UserWarning, match="training mode with active dropout"):
        MeZO(model_arms(net), lr=1e-3, eps=1e-3, seed=0, model=net, eval_mode=False).step(closure)
    with pytest.raises(ValueError, match="Invalid model"):
        MeZO(model_arms(net), model="net")


def test_bert_layer_names_form_block_arms():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                                vocab_size=50, max_position_embeddings=32))
    names = [a["name"] for a in model_arms(bert)]
    assert names == ["embed", "block0", "block1", "block2", "rest"]  # encoder.layer.N. -> blockN; pooler -> rest


def test_lezo_default_is_the_plain_masked_mezo_update():
    """LeZO's own update moves only the drawn arm, by lr g z (weight 1): with reweight=True the same step (same seed,
    same arm, same z) moves it L/k = 4 times as far."""
    def run(reweight):
        w = [torch.nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(4)]
        opt = LeZO([{"params": [p]} for p in w], lr=0.1, eps=1e-3, k=1, seed=0, reweight=reweight)
        opt.step(lambda: sum((p ** 2).sum() for p in w))
        return opt, [p.detach() - 1 for p in w]

    opt, moves = run(False)
    assert opt.reweight is False
    (a,) = opt.last["arms"]
    assert [i for i, m in enumerate(moves) if m.abs().max() > 1e-9] == [a]  # only the drawn arm moved
    _, moves_hh = run(True)
    torch.testing.assert_close(moves_hh[a], 4 * moves[a], rtol=1e-6, atol=1e-12)


def test_non_finite_probe_restores_and_skips_the_update():
    w = [torch.nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(5)]
    opt = AdaLeZO([{"params": [p]} for p in w], lr=0.1, eps=1e-3, k=2, seed=0)
    calls = iter([1.0, float("inf")])
    opt.step(lambda: next(calls))
    assert opt.last["skipped"] and not math.isfinite(opt.last["g"])
    for p in w:  # θ restored (up to the ±ε round trip), no update
        torch.testing.assert_close(p.detach(), torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert opt.rewards == [0.0] * 5 and all(math.isfinite(x) for x in opt.probs)          # the bandit is untouched
    opt.step(lambda: sum((p ** 2).sum() for p in w))                                      # and the next step works
    assert not opt.last["skipped"]


def test_gpt2_embeddings_join_the_rest_arm_as_in_the_official_grouping():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=32, n_positions=16))
    assert [a["name"] for a in model_arms(gpt)] == ["rest", "block0", "block1"]
    assert [a["name"] for a in model_arms(gpt, split_head=True)] == ["embed", "block0", "block1", "other"]


def test_docs_and_readme_examples_run():
    """The Component API example of docs/adalezo.md and the README's AdaLeZO snippet run as written."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    docs = re.findall(r"```python\n(.*?)```", (root / "docs" / "adalezo.md").read_text(), re.S)
    readme = [b for b in re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
              if "from tenfold.zo import" in b]
    assert docs and readme
    for block in (docs[0], readme[0]):
        scope: dict = {}
        exec(compile(block, "<example>", "exec"), scope)  # noqa: S102 - our own documentation
        assert scope["opt"].steps == 30
