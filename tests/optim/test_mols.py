"""MoLSDynamic (the earlier MoLS variant): maths against naive references, AdamW/GaLore equivalence, resume, errors, DDP, HF Trainer, smoke run."""

from __future__ import annotations

import copy
import math
import os

import pytest
import torch

from tenfold.optim import MoLSDynamic, half_batch_snr, module_key, module_scales, module_snr, spearman
from tenfold.optim.mols_dynamic import _module_stats


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def _steps(net, opt, n, seed=1, sched=None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
        if sched is not None:
            sched.step()


# ---- equivalence with AdamW when scaling is off -------------------------------------------------------
@pytest.mark.parametrize("kw", [
    dict(lr=1e-2, weight_decay=0.0),
    dict(lr=3e-3, weight_decay=0.1, betas=(0.8, 0.95)),
    dict(lr=1e-2, weight_decay=0.01, eps=1e-6, maximize=True),
])
def test_scaling_off_is_adamw(kw):
    a, b = _net(), _net()
    ref = torch.optim.AdamW(a.parameters(), foreach=False, **kw)
    opt = MoLSDynamic(b.named_parameters(), scaling=False, interval=1, warmup_steps=0, **kw)
    _steps(a, ref, 25)
    _steps(b, opt, 25)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    assert all(v is not None for v in opt.snrs().values())  # diagnostics still recorded


@pytest.mark.parametrize("kw", [
    dict(lr=1e-2, weight_decay=0.0),
    dict(lr=3e-3, weight_decay=0.1, betas=(0.8, 0.95), maximize=True, scale_weight_decay=True),
])
def test_foreach_and_forloop_agree(kw):
    """The multi-tensor kernels give the for-loop's parameters, SNRs and scales (mixed groups, lr per group)."""
    nets = [_net(), _net()]
    opts = []
    for net, fe in zip(nets, (True, False)):
        groups = [{"params": list(net[0].named_parameters()), "lr": kw["lr"] * 2},
                  {"params": list(net[2].named_parameters()), "eps": 1e-6}]
        opts.append(MoLSDynamic(groups, interval=2, warmup_steps=3, foreach=fe, **kw))
    for net, opt in zip(nets, opts):
        _steps(net, opt, 15)
    for p, q in zip(*(n.parameters() for n in nets)):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    assert opts[0].snrs() == pytest.approx(opts[1].snrs(), rel=1e-9)
    assert opts[0].scales() == pytest.approx(opts[1].scales(), rel=1e-9)
    assert any(s != 1.0 for s in opts[0].scales().values())


def test_unit_scales_equal_adamw_when_all_modules_equal():
    """One module -> its normalised scale is exactly 1, so MoLS with scaling on is AdamW."""
    a, b = _net(), _net()
    ref = torch.optim.AdamW(a.parameters(), lr=1e-2, foreach=False)
    opt = MoLSDynamic([{"params": list(b.parameters()), "module": "all"}], lr=1e-2, interval=2, warmup_steps=0)
    _steps(a, ref, 12)
    _steps(b, opt, 12)
    assert opt.scales() == {"all": 1.0}
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


def test_scale_is_a_multiplier_not_written_into_lr():
    net = _net()
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=1, warmup_steps=0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    _steps(net, opt, 5, sched=sched)
    assert all(g["lr"] == pytest.approx(1e-2 * 0.5 ** 5) for g in opt.param_groups)
    assert any(abs(s - 1) > 1e-3 for s in opt.scales().values())
    # the next step moves a module by lr * scale * m_hat / (sqrt(v_hat) + eps): check against a hand computation
    g0 = opt.param_groups[0]
    p = g0["params"][0]
    before = p.detach().clone()
    st = opt.state[p]
    x = torch.randn(16, 4)
    opt.zero_grad(); net(x).square().mean().backward()
    grad = p.grad.clone()
    b1, b2 = g0["betas"]
    t = st["step"].item() + 1
    m = st["exp_avg"] * b1 + (1 - b1) * grad
    v = st["exp_avg_sq"] * b2 + (1 - b2) * grad * grad
    opt.step()
    # the scale used is the one refreshed at this step (interval=1)
    s = g0["module_scale"]
    expect = before * (1 - g0["lr"] * g0["weight_decay"]) - g0["lr"] * s * (m / (1 - b1 ** t)) / (
        (v / (1 - b2 ** t)).sqrt() + g0["eps"])
    torch.testing.assert_close(p.detach(), expect, rtol=1e-5, atol=1e-7)


# ---- the maths, against naive references -------------------------------------------------------------
def test_module_stats_and_snr_naive():
    torch.manual_seed(0)
    ms = [torch.randn(3, 2), torch.randn(4)]
    vs = [m.square() + torch.rand_like(m) for m in ms]
    step, b1, b2 = 7, 0.9, 0.95
    s, n = _module_stats(ms, vs, step, b1, b2)
    s_ref = n_ref = 0.0
    for m, v in zip(ms, vs):
        for mi, vi in zip(m.flatten().tolist(), v.flatten().tolist()):
            mh, vh = mi / (1 - b1 ** step), vi / (1 - b2 ** step)
            s_ref += mh * mh
            n_ref += max(vh - mh * mh, 0.0)
    assert s == pytest.approx(s_ref, rel=1e-6) and n == pytest.approx(n_ref, rel=1e-6)
    rho = 0.1 / 1.9
    assert module_snr(s, n, b1) == pytest.approx(max(s - rho * n, 0) / n, rel=1e-9)
    assert module_snr(0.0, 1.0, b1) == 0.0


@pytest.mark.parametrize("snrs,sizes,alpha,lo,hi,ref,expect", [
    ([1.0, 4.0], [1, 1], 0.5, 0.1, 10, "geomean", [1 / math.sqrt(2), math.sqrt(2)]),
    ([1.0, 4.0], [3, 1], 1.0, 0.1, 10, "geomean", [4 ** -0.25, 4 ** 0.75]),
    ([1.0, 4.0], [1, 1], -0.5, 0.1, 10, "geomean", [math.sqrt(2), 1 / math.sqrt(2)]),
    ([1e-6, 1e6], [1, 1], 1.0, 0.1, 10, "geomean", [0.1, 10.0]),
    ([0.25, 4.0], [1, 1], 0.5, 0.1, 10, "none", [0.5, 2.0]),
    ([0.0, 1.0], [1, 1], 0.5, 0.2, 5, "geomean", [0.2, 5.0]),
])
def test_module_scales_table(snrs, sizes, alpha, lo, hi, ref, expect):
    got = module_scales(snrs, sizes, alpha=alpha, scale_min=lo, scale_max=hi, reference=ref)
    assert got == pytest.approx(expect, rel=1e-9)


@pytest.mark.parametrize("name,gran,key", [
    ("model.layers.0.self_attn.q_proj.weight", "tensor", "model.layers.0.self_attn.q_proj.weight"),
    ("model.layers.0.self_attn.q_proj.weight", "type", "q"),
    ("model.layers.3.mlp.down_proj.weight", "layer", "layer3"),
    ("model.layers.3.mlp.down_proj.weight", "type", "mlp"),
    ("model.layers.1.post_attention_layernorm.weight", "type", "norm"),
    ("model.embed_tokens.weight", "layer", "embed"),
    ("lm_head.weight", "type", "head"),
    ("vit.encoder.layer.2.attention.attention.value.weight", "type", "v"),
    ("vit.encoder.layer.2.attention.output.dense.weight", "type", "o"),
    ("vit.encoder.layer.2.output.dense.bias", "layer", "layer2"),
    ("classifier.weight", "type", "head"),
    ("weird.thing", "type", "other"),
])
def test_module_key_table(name, gran, key):
    assert module_key(name, gran) == key


def test_granularity_groups_and_custom_rules():
    net = _net()
    opt = MoLSDynamic(net.named_parameters(), granularity="type", rules=[("first", ("0.",)), ("second", ("2.",))])
    assert [g["module"] for g in opt.param_groups] == ["first", "second"]
    assert opt.module_sizes() == {"first": 40, "second": 27}


def test_half_batch_snr_naive_and_spearman():
    net = _net()
    xa, xb = torch.randn(8, 4), torch.randn(8, 4)
    loss = lambda m, x: m(x).square().mean()  # noqa: E731
    mods = {"first": ["0.weight", "0.bias"], "last": ["2.weight"]}
    got = half_batch_snr(net, loss, [(xa, xb)], mods)
    ga = torch.autograd.grad(loss(net, xa), list(net.parameters()))
    gb = torch.autograd.grad(loss(net, xb), list(net.parameters()))
    names = [n for n, _ in net.named_parameters()]
    for k, ns in mods.items():
        a = torch.cat([ga[names.index(n)].flatten() for n in ns]).double()
        b = torch.cat([gb[names.index(n)].flatten() for n in ns]).double()
        assert got[k] == pytest.approx(max(float(a @ b), 0) / (float((a - b).square().sum()) / 4), rel=1e-6)
    from scipy.stats import spearmanr

    x, y = [3.0, 1.0, 2.0, 2.0, 5.0], [0.1, 0.5, 0.3, 0.2, 0.9]
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_warmup_keeps_scales_at_one():
    net = _net()
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=2, warmup_steps=10)
    _steps(net, opt, 8)
    assert set(opt.scales().values()) == {1.0} and all(v is not None for v in opt.snrs().values())
    _steps(net, opt, 4, seed=2)
    assert any(s != 1.0 for s in opt.scales().values())
    assert opt.history and {"step", "snr", "scale"} <= set(opt.history[-1])


@pytest.mark.parametrize("interval,refresh_steps", [
    (1, list(range(2, 17))),  # step 1 is skipped: v_hat = m_hat^2 there, no noise information
    (3, [3, 6, 9, 12, 15]),
    (5, [5, 10, 15]),
])
def test_refresh_only_at_multiples_of_interval(interval, refresh_steps):
    net = _net()
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=interval, warmup_steps=0)
    g = torch.Generator().manual_seed(1)
    changed = []
    prev = (opt.snrs(), opt.scales())
    for t in range(1, 17):
        opt.zero_grad()
        net(torch.randn(16, 4, generator=g)).square().mean().backward()
        opt.step()
        now = (opt.snrs(), opt.scales())
        if now[0] != prev[0]:
            changed.append(t)
            assert now[1] != prev[1], f"SNRs refreshed at step {t} but no scale moved"
        else:
            assert now[1] == prev[1], f"scales moved at step {t} without an SNR refresh"
        prev = now
    assert all(gr["mols_step"] == 16 for gr in opt.param_groups)
    assert [h["step"] for h in opt.history] == refresh_steps
    assert changed == refresh_steps
    assert opt.history[-1]["snr"] == opt.snrs() and opt.history[-1]["scale"] == opt.scales()


@pytest.mark.parametrize("snr_beta,first_beta", [(0.0, None), (0.7, None), (0.9, 0.3)])
def test_snr_ema_matches_naive_recomputation(snr_beta, first_beta):
    """Smoothed SNR = EMA over refreshes of module_snr(S, N) from the moments, recomputed by hand."""
    net = _net()
    named = list(net.named_parameters())
    first = {"params": named[:2]}
    if first_beta is not None:  # per-group snr_beta
        first["snr_beta"] = first_beta
    opt = MoLSDynamic([first, {"params": named[2:]}], lr=1e-2, interval=2, warmup_steps=0, snr_beta=snr_beta,
               betas=(0.8, 0.95))
    betas = {gr["module"]: gr["snr_beta"] for gr in opt.param_groups}
    assert betas["0.weight"] == (first_beta if first_beta is not None else snr_beta) and betas["2.bias"] == snr_beta
    ref: dict[str, float] = {}
    raw_last: dict[str, float] = {}
    g = torch.Generator().manual_seed(1)
    n_refresh = 0
    for t in range(1, 13):
        opt.zero_grad()
        net(torch.randn(16, 4, generator=g)).square().mean().backward()
        opt.step()
        if t % 2 or t < 2:
            continue
        n_refresh += 1
        for gr in opt.param_groups:  # the moments after step() are those the refresh used
            st = [opt.state[p] for p in gr["params"]]
            s, n = _module_stats([x["exp_avg"] for x in st], [x["exp_avg_sq"] for x in st], t, *gr["betas"])
            raw = raw_last[gr["module"]] = module_snr(s, n, gr["betas"][0])
            b = betas[gr["module"]]
            ref[gr["module"]] = raw if gr["module"] not in ref else b * ref[gr["module"]] + (1 - b) * raw
        assert opt.snrs() == pytest.approx(ref, rel=1e-12)
        assert opt.history[-1]["snr"] == pytest.approx(ref, rel=1e-12)
    assert n_refresh == 6 and len(opt.history) == 6
    assert sum(v > 0 for v in ref.values()) >= 2  # not all clamped to 0
    for m, v in ref.items():  # snr_beta = 0: the raw SNR itself; else the smoothing is visible
        assert (v == raw_last[m]) if betas[m] == 0.0 else (v != pytest.approx(raw_last[m], rel=1e-3) or v == 0.0)
    assert any(ref[m] != raw_last[m] for m in ref) == (max(betas.values()) > 0)


# ---- checkpoint: bit-identical next step --------------------------------------------------------------
def test_state_dict_resume_bit_identical(tmp_path):
    net = _net()
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=3, warmup_steps=2)
    _steps(net, opt, 10)
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.pt")
    hist_at_save = copy.deepcopy(opt.history)
    _steps(net, opt, 4, seed=5)
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert ck["opt"]["mols_history"] == hist_at_save and len(hist_at_save) == 3
    net2 = _net(seed=3)
    net2.load_state_dict(ck["model"])
    opt2 = MoLSDynamic(net2.named_parameters(), lr=1e-2, interval=3, warmup_steps=2)
    opt2.load_state_dict(ck["opt"])
    assert "mols_history" in ck["opt"]  # the caller's dict is left intact
    assert opt2.history == hist_at_save
    assert opt2.snrs() == dict(zip(opt2.snrs(), [g["snr"] for g in ck["opt"]["param_groups"]]))
    _steps(net2, opt2, 4, seed=5)
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)
    assert opt.scales() == opt2.scales() and opt.snrs() == opt2.snrs()
    assert opt2.history == opt.history and len(opt.history) == 4  # the refresh at step 12 appended to both


def test_state_dict_history_is_a_copy_and_old_dicts_load():
    net = _net()
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=2, warmup_steps=0)
    _steps(net, opt, 4)
    sd = opt.state_dict()
    saved = copy.deepcopy(sd["mols_history"])
    _steps(net, opt, 2, seed=2)
    assert sd["mols_history"] == saved and len(opt.history) == len(saved) + 1
    old = {k: v for k, v in sd.items() if k != "mols_history"}  # a state dict from before the key existed
    opt2 = MoLSDynamic(_net().named_parameters(), lr=1e-2, interval=2, warmup_steps=0)
    opt2.load_state_dict(old)
    assert opt2.history == [] and opt2.snrs() == dict(zip(opt2.snrs(), [g["snr"] for g in sd["param_groups"]]))


# ---- GaLore mode --------------------------------------------------------------------------------------
def test_galore_mode_scaling_off_matches_galore_adamw():
    galore = pytest.importorskip("galore_torch")
    torch.manual_seed(0)
    a = torch.nn.Linear(12, 10, bias=False)
    b = copy.deepcopy(a)
    gal = dict(rank=3, update_proj_gap=4, scale=0.5, proj_type="std")
    ref = galore.GaLoreAdamW([{"params": [a.weight], **gal}], lr=1e-2, weight_decay=0.1, eps=1e-8,
                             no_deprecation_warning=True)
    opt = MoLSDynamic([{"params": [("weight", b.weight)], **gal}], lr=1e-2, weight_decay=0.1, scaling=False, interval=2)
    g = torch.Generator().manual_seed(0)
    for _ in range(9):
        x = torch.randn(16, 12, generator=g)
        for m, o in ((a, ref), (b, opt)):
            o.zero_grad(); m(x).square().mean().backward(); o.step()
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-7)
    assert opt.state[b.weight]["exp_avg"].shape == (3, 12)  # low-rank moments
    assert opt.snrs()["weight"] is not None


def _galore_net_and_opt(gal):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.Tanh(), torch.nn.Linear(10, 6))
    weights = [(n, p) for n, p in net.named_parameters() if p.dim() == 2]
    biases = [(n, p) for n, p in net.named_parameters() if p.dim() == 1]
    opt = MoLSDynamic([{"params": weights, **gal}, {"params": biases}], lr=1e-2, weight_decay=0.1, interval=2,
               warmup_steps=4)
    return net, opt


def _galore_steps(net, opt, n, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 12, generator=g)
        opt.zero_grad(); net(x).square().mean().backward(); opt.step()


def test_galore_mode_scaling_on_moves_scales_and_resumes(tmp_path):
    pytest.importorskip("galore_torch")
    gal = dict(rank=3, update_proj_gap=4, scale=0.5, proj_type="std")
    net, opt = _galore_net_and_opt(gal)
    _galore_steps(net, opt, 3, seed=0)
    assert set(opt.scales().values()) == {1.0}  # warm-up
    _galore_steps(net, opt, 7, seed=1)
    assert opt.state[net[0].weight]["exp_avg"].shape == (3, 12)  # low-rank moments
    assert opt.state[net[0].bias]["exp_avg"].shape == (10,)
    scales = opt.scales()
    assert all(abs(scales[m] - 1.0) > 1e-3 for m in ("0.weight", "2.weight"))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert all(v is not None and math.isfinite(v) for v in opt.snrs().values())
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.pt")
    _galore_steps(net, opt, 3, seed=5)  # crosses a GaLore projector refresh
    ck = torch.load(tmp_path / "ck.pt", weights_only=False)
    net2, opt2 = _galore_net_and_opt(gal)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    assert opt2.history == ck["opt"]["mols_history"]
    _galore_steps(net2, opt2, 3, seed=5)
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)
    assert opt.scales() == opt2.scales() and opt.snrs() == opt2.snrs() and opt.history == opt2.history
    # the scale acts on GaLore's update: one step from the checkpoint with scaling on vs off
    moved = {}
    for scaling in (True, False):
        net3, opt3 = _galore_net_and_opt(gal)
        net3.load_state_dict(ck["model"])
        opt3.load_state_dict(copy.deepcopy(ck["opt"]))  # own projectors
        for gr in opt3.param_groups:
            gr["scaling"] = scaling
        _galore_steps(net3, opt3, 1, seed=5)  # step 11: uses the scales of the step-10 refresh
        keep = 1 - 1e-2 * 0.1  # GaLoreAdamW decays after the update: p1 = (p0 + s * d) * keep
        moved[scaling] = {n: p.detach() / keep - ck["model"][n] for n, p in net3.named_parameters() if p.dim() == 2}
    # d is a float32 difference of weights up to ~0.3, so it carries a few 1e-8 of rounding (ulps of the weight;
    # up to 5e-8 seen on an AVX-512 machine); atol 1e-7 allows that and still separates s * d from d (here
    # |s - 1| > 0.1 and |d| >= 7e-5, so s * d - d >= 7e-6)
    for n, d_on in moved[True].items():
        torch.testing.assert_close(d_on, scales[n] * moved[False][n], rtol=1e-4, atol=1e-7)


# ---- diagnostics plot ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["scale", "snr"])
def test_plot_history_writes_png(tmp_path, key):
    pytest.importorskip("matplotlib")
    from tenfold.optim.mols_dynamic import plot_history

    net = _net()
    opt = MoLSDynamic(net.named_parameters(), lr=1e-2, interval=2, warmup_steps=2)
    _steps(net, opt, 8)
    assert len(opt.history) == 4
    path = tmp_path / f"{key}.png"
    assert plot_history(opt.history, path, key=key, title="t") == path
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


# ---- bad input: clear errors before any step ----------------------------------------------------------
@pytest.mark.parametrize("kw,match", [
    (dict(lr=-1.0), "Invalid lr"),
    (dict(eps=-1e-8), "Invalid eps"),
    (dict(betas=(0.9, 1.0)), "Invalid betas"),
    (dict(betas=(-0.1, 0.9)), "Invalid betas"),
    (dict(weight_decay=-0.1), "Invalid weight_decay"),
    (dict(granularity="block"), "Invalid granularity.*tensor, layer, type"),
    (dict(interval=0), "Invalid interval"),
    (dict(snr_beta=1.0), "Invalid snr_beta"),
    (dict(scale_min=2.0), "Invalid scale range"),
    (dict(warmup_steps=-1), "Invalid warmup_steps"),
    (dict(reference="mean"), "Invalid reference"),
    (dict(alpha=float("nan")), "Invalid alpha"),
    (dict(strict=True, rules=[("x", ("nothing",))]), "matched by no module rule"),
])
def test_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        MoLSDynamic(_net().named_parameters(), **kw)


@pytest.mark.parametrize("group,match", [
    ({"interval": 0}, "Invalid interval: 0 .param group"), ({"lr": -1.0}, "Invalid lr: -1.0 .param group"),
    ({"betas": (0.9, 1.0)}, "Invalid betas"), ({"alpha": -0.5}, "per-group alpha"),
    ({"scale_max": 3.0}, "per-group scale_max"), ({"reference": "none"}, "per-group reference"),
])
def test_param_group_settings_are_checked(group, match):
    net = _net()
    named = list(net.named_parameters())
    with pytest.raises(ValueError, match=match):
        MoLSDynamic([{"params": named[:2], "module": "a"}, {"params": named[2:], "module": "b", **group}], lr=1e-2)
    opt = MoLSDynamic(named[:2], lr=1e-2)
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": named[2:], "module": "b", **group})


def test_add_param_group_and_per_group_interval():
    net = _net()
    named = list(net.named_parameters())
    opt = MoLSDynamic(named[:2], lr=1e-2, interval=1, warmup_steps=0)
    opt.add_param_group({"params": named[2:], "module": "late", "interval": 2})
    assert opt.param_groups[-1]["module"] == "late" and opt.param_groups[-1]["lr"] == 1e-2
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(8, 4)).square().mean().backward()
        opt.step()
    assert set(opt.scales()) >= {"late"} and opt.snrs()["late"] is not None


def test_strict_needs_names():
    with pytest.raises(ValueError, match="strict=True needs names"):
        MoLSDynamic(list(_net().parameters()), strict=True)


def test_sparse_gradients_refused_before_any_change():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = MoLSDynamic(emb.named_parameters(), lr=0.1)
    before = emb.weight.detach().clone()
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()
    assert torch.equal(before, emb.weight)


def test_empty_params_refused():
    with pytest.raises(ValueError, match="empty"):
        MoLSDynamic([])


# ---- DDP: every rank ends with identical scales -------------------------------------------------------
def test_ddp_two_ranks_identical_scales(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           str(worker), str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt") for i in range(2))
    assert r0["scales"] == r1["scales"] and r0["snrs"] == r1["snrs"]
    assert any(s != 1.0 for s in r0["scales"].values())
    for a, b in zip(r0["w"], r1["w"]):
        assert torch.equal(a, b)
    # the calibrated MoLS: DDP averages the gradients before step, so every rank fixes the same multipliers
    assert r0["multipliers"] == r1["multipliers"] and r0["cal_snrs"] == r1["cal_snrs"]
    assert set(r0["multipliers"]) == {"embed", "mlp", "other"}
    for a, b in zip(r0["cal_w"], r1["cal_w"]):
        assert torch.equal(a, b)


# ---- HF Trainer: MoLS through optimizers=(opt, sched) -------------------------------------------------
def test_hf_trainer_example(tmp_path):
    pytest.importorskip("accelerate")
    from transformers import Trainer, TrainingArguments, get_cosine_schedule_with_warmup

    from tenfold.models.hf_tiny import tiny_llama

    model, _ = tiny_llama("debug")
    data = [{"input_ids": torch.randint(0, 256, (16,)), "labels": None} for _ in range(16)]
    for d in data:
        d["labels"] = d["input_ids"]
    opt = MoLSDynamic(model.named_parameters(), lr=3e-3, interval=2, warmup_steps=2)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=8)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=2,
                             report_to=[], logging_steps=4, save_strategy="no", use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, sched)).train()
    assert all(g["mols_step"] == 8 for g in opt.param_groups)
    assert opt.history and any(s != 1.0 for s in opt.scales().values())
