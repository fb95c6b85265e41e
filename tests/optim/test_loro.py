"""LORO: exact step against a truncated SVD, lazy step and moments against a hand-written AdamW, schedule of
exact steps and refreshes, training, HF Llama/Qwen2 after elasify, errors, bit-identical resume, LR lambda."""

from __future__ import annotations

import copy
import io
import math
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import tenfold.optim.loro as loro_mod
from tenfold.common.errors import UserError
from tenfold.optim import LORO, loro_exact_update, loro_lr_lambda
from tenfold.sparse.elas import LowRankLinear, elasify


class _Host(nn.Module):
    """Two factorised layers, a bias, a regular parameter and an HF-like config (hidden_size for "auto")."""

    def __init__(self, seed=0, hidden_size=8, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(seed)
        self.config = SimpleNamespace(hidden_size=hidden_size)
        self.up = LowRankLinear(6, 10, rank=3, bias=True)
        self.down = LowRankLinear(10, 5, rank=2)
        self.scale = nn.Parameter(torch.ones(5) + 0.1 * torch.randn(5))
        self.to(dtype)

    def forward(self, x):
        return self.down(torch.tanh(self.up(x))) * self.scale


def _loss(model, seed, n=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g).to(model.scale.dtype)
    y = torch.randn(n, 5, generator=g).to(model.scale.dtype)
    return (model(x) - y).square().mean()


def _train(model, opt, steps, start=0, sched=None):
    for i in range(start, start + steps):
        opt.zero_grad()
        _loss(model, 100 + i).backward()
        opt.step()
        if sched is not None:
            sched.step()


# ---- 1. the exact step against a naive reference ---------------------------------------------------------
@pytest.mark.parametrize("seed,lr", [(0, 0.3), (1, 0.05), (2, 2.0)])
def test_exact_step_is_truncated_svd_of_projected_step(seed, lr):
    g = torch.Generator().manual_seed(seed)
    out, inn, r = 9, 7, 3
    M, N = torch.randn(out, r, generator=g, dtype=torch.float64), torch.randn(inn, r, generator=g, dtype=torch.float64)
    G = torch.randn(out, inn, generator=g, dtype=torch.float64)
    M_new, N_new = loro_exact_update(M, N, G @ N, G.T @ M, lr)  # what autograd gives the factors
    assert M_new.dtype == torch.float64 and M_new.shape == M.shape and N_new.shape == N.shape
    U, V = torch.linalg.qr(M)[0], torch.linalg.qr(N)[0]
    PU, PV = U @ U.T, V @ V.T
    Z = M @ N.T - lr * (PU @ G + G @ PV - PU @ G @ PV)
    u, s, vh = torch.linalg.svd(Z)
    best = u[:, :r] * s[:r] @ vh[:r]
    torch.testing.assert_close(M_new @ N_new.T, best, rtol=0, atol=1e-10)
    # balanced split: M'ᵀM' = N'ᵀN' = diag(S[:r])
    torch.testing.assert_close(M_new.T @ M_new, torch.diag(s[:r]), rtol=0, atol=1e-10)
    torch.testing.assert_close(N_new.T @ N_new, torch.diag(s[:r]), rtol=0, atol=1e-10)


def test_exact_step_zero_lr_keeps_w_and_low_precision_keeps_dtype():
    g = torch.Generator().manual_seed(3)
    M, N = torch.randn(8, 2, generator=g), torch.randn(6, 2, generator=g)
    dM, dN = torch.randn(8, 2, generator=g), torch.randn(6, 2, generator=g)
    M0, N0 = loro_exact_update(M, N, dM, dN, 0.0)
    torch.testing.assert_close(M0 @ N0.T, M @ N.T, rtol=1e-5, atol=1e-5)
    M32, N32 = loro_exact_update(M, N, dM, dN, 0.1)
    Mb, Nb = loro_exact_update(*(t.bfloat16() for t in (M, N, dM, dN)), 0.1)
    assert Mb.dtype == Nb.dtype == torch.bfloat16
    torch.testing.assert_close((Mb.float() @ Nb.float().T), M32 @ N32.T, rtol=0.05, atol=0.05)


# ---- 2. lazy step and Adam moments against a hand-written reference --------------------------------------
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("lr_scaler,wd", [("auto", 0.0), (0.3, 0.1)])
def test_lazy_step_and_moments_match_reference(steps, lr_scaler, wd):
    model = _Host(dtype=torch.float64)
    ref = copy.deepcopy(model)
    lr, (b1, b2), eps = 0.02, (0.8, 0.95), 1e-6
    opt = LORO(model, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, exact_every=100, refresh=None,
               lr_scaler=lr_scaler)
    factors = {"up.A.weight": 3, "up.B.weight": 3, "down.A.weight": 2, "down.B.weight": 2}  # name -> rank
    mom = {n: [torch.zeros_like(p), torch.zeros_like(p)] for n, p in ref.named_parameters()}
    for t in range(1, steps + 1):
        opt.zero_grad()
        _loss(model, t).backward()
        opt.step()
        assert opt.last_exact is False
        ref.zero_grad()
        _loss(ref, t).backward()
        with torch.no_grad():
            for n, p in ref.named_parameters():
                m, v = mom[n]
                m.copy_(b1 * m + (1 - b1) * p.grad)
                v.copy_(b2 * v + (1 - b2) * p.grad ** 2)
                u = m / (v.sqrt() + eps)
                ss = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                if n in factors:
                    s = factors[n] / 8 if lr_scaler == "auto" else lr_scaler
                    p.copy_(p - ss * s * u)
                    p.copy_(p - ss * wd * p)
                else:  # regular AdamW: decay with the uncorrected lr, after the step
                    p.copy_(p - ss * u)
                    p.copy_(p - lr * wd * p)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=n)
        st = opt.state[p]
        assert st["step"] == steps
        torch.testing.assert_close(st["exp_avg"], mom[n][0], rtol=0, atol=1e-14)
        torch.testing.assert_close(st["exp_avg_sq"], mom[n][1], rtol=0, atol=1e-14)


def test_exact_step_in_optimizer_uses_adam_direction_and_bias_corrected_lr():
    model = _Host(dtype=torch.float64)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, eps = 0.05, 1e-6
    opt = LORO(model, lr=lr, eps=eps, exact_every=1, weight_decay=0.5, refresh=None)
    _loss(model, 0).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    assert opt.last_exact is True
    for name in ("up", "down"):
        ga, gb = grads[f"{name}.A.weight"], grads[f"{name}.B.weight"]
        # first step: m = (1-b1) g, v = (1-b2) g², step size lr·√(1-b2)/(1-b1)
        ua = (0.1 * ga) / ((0.001 * ga * ga).sqrt() + eps)
        ub = (0.1 * gb) / ((0.001 * gb * gb).sqrt() + eps)
        M, N = loro_exact_update(before[f"{name}.B.weight"], before[f"{name}.A.weight"].T, ub, ua.T,
                                 lr * math.sqrt(0.001) / 0.1)  # no weight decay in an exact step
        mod = getattr(model, name)
        torch.testing.assert_close(mod.B.weight.detach(), M, rtol=0, atol=1e-12)
        torch.testing.assert_close(mod.A.weight.detach(), N.T, rtol=0, atol=1e-12)


# ---- 3. schedule of exact steps and refreshes ------------------------------------------------------------
@pytest.mark.parametrize("mode", ["all", "lrk", "reg", None])
def test_refresh_resets_named_groups_only(mode):
    model = _Host()
    opt = LORO(model, lr=1e-2, exact_every=5, refresh=mode, refresh_every=2)
    factors = {id(p) for _, m in opt.pairs for p in (m.A.weight, m.B.weight)}
    _train(model, opt, 1)
    assert all(opt.state[p]["step"] == 1 for p in model.parameters())
    _train(model, opt, 1, start=1)  # k = 1: (k + 1) % 2 == 0 -> refresh after the step
    for p in model.parameters():
        kind = "lrk" if id(p) in factors else "reg"
        reset = mode == "all" or mode == kind
        st = opt.state[p]
        assert st["step"] == (0 if reset else 2)
        assert (st["exp_avg"].abs().sum() == 0) == reset and (st["exp_avg_sq"].abs().sum() == 0) == reset
    _train(model, opt, 1, start=2)
    assert all(opt.state[p]["step"] in (1, 3) for p in model.parameters())


def test_exact_steps_happen_at_scheduled_iterations(monkeypatch):
    calls = []
    real = loro_mod.loro_exact_update
    monkeypatch.setattr(loro_mod, "loro_exact_update", lambda *a: calls.append(1) or real(*a))
    model = _Host()
    opt = LORO(model, lr=1e-2, exact_every=3)
    seen = []
    for i in range(7):
        n = len(calls)
        _train(model, opt, 1, start=i)
        seen.append(opt.last_exact)
        assert len(calls) - n == (2 if opt.last_exact else 0)  # one call per factorised layer
    assert seen == [False, False, True, False, False, True, False]  # (k + 1) % 3 == 0
    assert opt.param_groups[0]["loro_step"] == 7
    for force in (True, False):  # k = 7 would be lazy, k = 8 exact: forcing overrides both
        opt.zero_grad()
        _loss(model, 0).backward()
        opt.step(exact=force)
        assert opt.last_exact is force
    m = _Host()
    eu = LORO(m, exact_every=1, update="eucl")
    n = len(calls)
    _train(m, eu, 3)
    assert len(calls) == n and eu.last_exact is False


# ---- 4. training ---------------------------------------------------------------------------------------
def test_training_decreases_loss():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))
    x = torch.randn(256, 16)
    with torch.no_grad():
        y = teacher(x)
    net = nn.Sequential(LowRankLinear(16, 32, rank=4, bias=True), nn.Tanh(), LowRankLinear(32, 8, rank=4, bias=True))
    for m in (net[0], net[2]):
        nn.init.xavier_normal_(m.A.weight)  # the official init ("xavier" = xavier_normal_ on both factors)
        nn.init.xavier_normal_(m.B.weight)
    opt = LORO(net, lr=1e-2, exact_every=10, lr_scaler=1.0)
    losses, exact = [], 0
    for _ in range(50):
        opt.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        exact += opt.last_exact
    assert exact == 5
    assert losses[-1] < 0.3 * losses[0], losses[::10]


# ---- 5. HF Llama / Qwen2 after elasify -----------------------------------------------------------------
def _tiny_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return Qwen2ForCausalLM(cfg)


def _tiny_llama():
    from tenfold.models.hf_tiny import tiny_llama

    torch.manual_seed(0)
    return tiny_llama("debug", vocab_size=64)[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("build", [_tiny_llama, _tiny_qwen2], ids=["llama", "qwen2"])
def test_hf_models_after_elasify(build, dtype):
    model = elasify(build(), rank=8, warmup_steps=0).to(dtype)
    opt = LORO(model, lr=1e-2, exact_every=2)  # lr_scaler "auto" = 8 / config.hidden_size
    n_layers = model.config.num_hidden_layers
    assert len(opt.pairs) == 6 * n_layers  # q, k, v, o + the FFN's up and down
    before = {n: m.B.weight.detach().clone() for n, m in opt.pairs}
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # lazy, exact, lazy
        opt.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert opt.param_groups[0]["loro_step"] == 3
    for n, m in opt.pairs:
        assert m.A.weight.dtype == m.B.weight.dtype == dtype
        assert torch.isfinite(m.A.weight).all() and not torch.equal(m.B.weight, before[n]), n
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids, labels=ids).loss)


# ---- 6. errors -----------------------------------------------------------------------------------------
def test_errors():
    cola = nn.Sequential(OrderedDict(proj=LowRankLinear(8, 8, rank=2, inner_act="silu")))
    with pytest.raises(UserError, match="'proj'.*CoLA"):
        LORO(cola, lr_scaler=1.0)
    with pytest.raises(UserError, match="no trainable LowRankLinear"):
        LORO(nn.Linear(4, 4))
    with pytest.raises(UserError, match="not its parameters"):
        LORO(list(_Host().parameters()))
    with pytest.raises(UserError, match="needs model.config.hidden_size"):
        LORO(nn.Sequential(LowRankLinear(8, 8, rank=2)))
    half = _Host()
    half.up.A.weight.requires_grad_(False)
    with pytest.raises(UserError, match="'up' has one frozen factor"):
        LORO(half)
    bad = [dict(lr=-1.0), dict(lr=torch.tensor(0.1)), dict(betas=(0.9, 1.0)), dict(eps=-1.0),
           dict(weight_decay=-0.1), dict(exact_every=0), dict(exact_every=2.0), dict(refresh="some"),
           dict(refresh_every=0), dict(lr_scaler=-1), dict(lr_scaler="rank"), dict(update="riem")]
    for kw in bad:
        name = next(iter(kw))
        with pytest.raises(ValueError, match=f"Invalid {name}"):
            LORO(_Host(), **kw)
    m = _Host()
    with pytest.raises(UserError, match="up.A.weight is a LORO factor"):
        LORO(m, param_groups=[{"params": list(m.parameters())}])
    with pytest.raises(UserError, match="'exact_every' is set once"):
        LORO(m, param_groups=[{"params": [m.scale], "exact_every": 3}])
    with pytest.raises(UserError, match="Invalid lr.*param group 1"):
        LORO(m, param_groups=[{"params": [m.scale], "lr": -2.0}])


def test_param_groups_and_lambda_lr_scale_every_group():
    m = _Host()
    scale0, bias0 = m.scale.detach().clone(), m.up.B.bias.detach().clone()
    opt = LORO(m, lr=1e-2, param_groups=[{"params": [m.scale], "lr": 0.0}])  # bias left out: not optimised
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    assert [g["lr"] for g in opt.param_groups] == [5e-3, 0.0]
    A0 = m.up.A.weight.detach().clone()
    _train(m, opt, 2, sched=sched)
    assert torch.equal(m.scale, scale0) and torch.equal(m.up.B.bias, bias0)
    assert not torch.equal(m.up.A.weight, A0)


# ---- 7. bit-identical resume -----------------------------------------------------------------------------
def _make(seed):
    model = _Host(seed=seed)
    opt = LORO(model, lr=2e-2, weight_decay=0.01, exact_every=2, refresh="all", refresh_every=3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, loro_lr_lambda(20, warmup_steps=2, restart_every=3,
                                                                  restart_warmup=2))
    return model, opt, sched


def test_resume_is_bit_identical():
    """3 steps, save, rebuild, load, 3 more: equals 6 uninterrupted steps (two exact steps, two refreshes)."""
    ref_model, ref_opt, ref_sched = _make(0)
    _train(ref_model, ref_opt, 6, sched=ref_sched)
    model, opt, sched = _make(0)
    _train(model, opt, 3, sched=sched)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=False)
    model, opt, sched = _make(1)  # different init: everything must come from the checkpoint
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    assert opt.param_groups[0]["loro_step"] == 3
    _train(model, opt, 3, start=3, sched=sched)
    for (n, p), q in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.equal(p, q), n
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert opt.state[p]["step"] == ref_opt.state[q]["step"]
        assert torch.equal(opt.state[p]["exp_avg"], ref_opt.state[q]["exp_avg"])


# ---- 8. the cosine_restart LR lambda ---------------------------------------------------------------------
def test_lr_lambda_matches_official_formula_by_hand():
    f = loro_lr_lambda(10000, warmup_steps=1000, restart_every=500)  # the 60M script: lr_adjust_steps -1000
    peak = 0.5 * (1 + math.cos(math.pi * 1000 / 9000))  # warm-up target: the cosine at the shifted start
    eps = 1e-6
    assert f(0) == pytest.approx(0.1)
    assert f(250) == pytest.approx(0.25 * (peak - 0.1) + 0.1)
    assert f(500) == pytest.approx(eps)  # restart inside the first warm-up
    target = 0.5 * (peak - 0.1) + 0.1
    assert f(502) == pytest.approx(2 / 5 * (target - eps) + eps)
    assert f(505) == pytest.approx(0.505 * (peak - 0.1) + 0.1)
    assert f(1000) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * -1000 / 9000)))
    assert f(1500) == pytest.approx(eps)  # shifted step 500: the first post-warm-up restart
    target = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (500 - 1000) / 9000))
    assert f(1503) == pytest.approx(3 / 5 * (target - eps) + eps)
    assert f(1700) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (700 - 1000) / 9000)))
    assert f(9999) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (8999 - 1000) / 9000)))
    g = loro_lr_lambda(100, warmup_steps=10, restart_every=20, restart_warmup=2, min_lr_ratio=0.2, lr_adjust_steps=0)
    assert g(5) == pytest.approx(0.5 * (1.0 - 0.2) + 0.2)  # no shift: the warm-up ends at the cosine's peak 1
    assert g(20) == pytest.approx(eps)
    target = 0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * (20 - 10) / 90))
    assert g(21) == pytest.approx(0.5 * (target - eps) + eps)
    assert g(30) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * 20 / 90)))
    with pytest.raises(UserError, match="Invalid min_lr_ratio"):
        loro_lr_lambda(100, 10, 20, min_lr_ratio=0.0)
    with pytest.raises(UserError, match="Invalid lr_adjust_steps"):
        loro_lr_lambda(100, 10, 20, lr_adjust_steps=95)
