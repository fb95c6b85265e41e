"""AdaFocal against naive re-statements of the official code's rules: the per-bin gamma lookup, the
focal / inverse-focal forward, the multiplicative update with switch and clip; direction of the update on
over- and under-confident validation sets; exact resume; registry entry."""

import inspect
import math
import re

import numpy as np
import pytest
import torch

from tenfold.calibration import LOSSES, AdaFocalLoss, FocalLoss, make_loss
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.errors import UserError


def _batch(b=12, c=5, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(b, c, generator=g, dtype=torch.float64), torch.randint(0, c, (b,), generator=g)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 3.0, 5.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_shared_gamma_is_focal_loss(gamma, reduction):
    z, y = _batch(seed=1)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    got = AdaFocalLoss(gamma_init=gamma, reduction=reduction)(z1, y)
    ref = FocalLoss(gamma, reduction=reduction)(z2, y)
    torch.testing.assert_close(got, ref)
    got.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad)


def _naive_gamma(p, lowers, uppers, gammas):
    """The official `get_gamma_per_sample` lookup for one probability."""
    m = len(gammas)
    for b in range(m):
        if b == 0 and p < uppers[0]:
            return gammas[0]
        if b == m - 1 and p >= lowers[-1]:
            return gammas[-1]
        if lowers[b] <= p < uppers[b]:
            return gammas[b]
    raise AssertionError("no bin")


def test_forward_picks_each_samples_bin_gamma_and_inverse_focal_form():
    z, y = _batch(b=40, seed=2, scale=1.5)
    loss = AdaFocalLoss(n_bins=4, reduction="none")
    gammas = [-1.5, 0.2, 2.0, 7.0]
    edges = [0.2, 0.35, 0.6]
    state = loss.state_dict()
    state["gammas"] = torch.tensor(gammas, dtype=torch.float64)
    state["edges"] = torch.tensor(edges, dtype=torch.float64)
    loss.load_state_dict(state)
    p = torch.softmax(z, 1)
    lowers, uppers = [0.0] + edges, edges + [1.0]
    expected = []
    for i in range(len(y)):
        pt = float(p[i, y[i]])
        gam = _naive_gamma(pt, lowers, uppers, gammas)
        factor = (1 - pt) ** gam if gam > 0 else (1 + pt) ** (-gam)
        expected.append(-factor * math.log(pt))
    torch.testing.assert_close(loss(z, y), torch.tensor(expected, dtype=torch.float64))
    assert len({_naive_gamma(float(p[i, y[i]]), lowers, uppers, gammas) for i in range(len(y))}) == 4   # all used


def _naive_update(loss, z, y):
    """The official update_bin_stats over adaECE_error_mukhoti's bins (with bin 0 closed on the left)."""
    conf, pred = torch.softmax(z, 1).max(1)
    conf, correct = conf.tolist(), (pred == y).tolist()
    m = loss.n_bins
    bounds = np.interp(np.linspace(0, len(conf), m + 1), np.arange(len(conf)), np.sort(conf))
    new = []
    for b, g in enumerate(loss.gammas.tolist()):
        members = [i for i, c in enumerate(conf) if (bounds[b] < c or b == 0) and c <= bounds[b + 1]]
        gap = (np.mean([conf[i] for i in members]) - np.mean([correct[i] for i in members])) if members else 0.0
        g = g * math.exp(loss.lam * gap) if g > 0 else g * math.exp(-loss.lam * gap)
        if abs(g) < loss.switch_pt:
            g = -loss.switch_pt if g > 0 else loss.switch_pt
        new.append(min(max(g, loss.gamma_min), loss.gamma_max))
    return new, list(bounds[1:-1])


def _val(n, seed, *, temperature):
    """Validation logits whose labels follow softmax(z / temperature): T > 1 means the model is
    over-confident (its confidences exceed its accuracy), T < 1 under-confident."""
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(z / temperature, 1), 1, generator=g).squeeze(1)
    return z, y


@pytest.mark.parametrize("temperature,direction", [(3.0, 1), (0.4, -1)], ids=["overconfident", "underconfident"])
def test_update_moves_every_bin_the_right_way_and_matches_the_official_rule(temperature, direction):
    z, y = _val(3000, seed=3, temperature=temperature)
    loss = AdaFocalLoss(gamma_init=2.0)
    expected, edges = _naive_update(loss, z, y)
    out = loss.update_from_validation(z, y)
    np.testing.assert_allclose(loss.gammas.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(loss.edges.numpy(), edges)
    assert np.sign(out["gap"]).tolist() == [direction] * 15               # every bin over- / under-confident
    assert (np.sign(loss.gammas.numpy() - 2.0) == direction).all()        # more focal / less focal
    assert sum(out["count"]) == 3000 and int(loss.n_updates) == 1 and out["gamma"] == loss.gammas.tolist()


def test_switch_to_inverse_focal_and_back_and_clipping():
    under, over = _val(1500, seed=4, temperature=0.1), _val(1500, seed=5, temperature=4.0)
    loss = AdaFocalLoss(n_bins=3, gamma_init=0.2)
    trace = []
    for z, y in [under] * 3 + [over] * 6:
        expected, _ = _naive_update(loss, z, y)
        loss.update_from_validation(z, y)
        np.testing.assert_allclose(loss.gammas.numpy(), expected, rtol=1e-12)
        trace.append(loss.gammas.tolist())
    g = np.array(trace)                                                   # (updates, bins)
    assert (g[0] == -0.2).all()                                           # 0.2 * e^(gap < 0) < 0.2: inverse focal
    assert (g[2] < g[1]).all() and (g[1] < g[0]).all()                    # still under-confident: stronger
    assert (np.diff(g[2:], axis=0) > 0).all()                             # over-confident: towards focal, then up
    assert (g[-1] > 0.2).all() and (g[3:] == 0.2).any()                   # every bin switched back through +0.2
    clipped = AdaFocalLoss(n_bins=1, gamma_init=19.0, gamma_max=20.0)
    clipped.update_from_validation(*_val(500, seed=6, temperature=50.0))
    assert clipped.gammas.item() == 20.0
    floor = AdaFocalLoss(n_bins=1, gamma_init=-1.9, gamma_min=-2.0)
    floor.update_from_validation(*_val(500, seed=7, temperature=0.05))
    assert floor.gammas.item() == -2.0


def test_save_resume_bit_identical_next_epoch(tmp_path):
    """Train with AdaFocal and per-epoch updates, checkpoint, run one more epoch; reload and redo it exactly."""
    torch.manual_seed(0)
    x, y = torch.randn(96, 6), torch.randint(0, 3, (96,))
    xv, yv = torch.randn(60, 6), torch.randint(0, 3, (60,))

    def build():
        model = torch.nn.Linear(6, 3)
        return model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), AdaFocalLoss(n_bins=5)

    def epoch(model, opt, loss_fn):
        for idx in torch.randperm(96).split(32):
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            loss_fn.update_from_validation(model(xv), yv)

    model, opt, loss_fn = build()
    for _ in range(3):
        epoch(model, opt, loss_fn)
    assert not torch.equal(loss_fn.gammas, torch.ones(5, dtype=torch.float64))
    save_checkpoint(tmp_path / "ck.pt", model=model.state_dict(), optimizer=opt.state_dict(), loss=loss_fn.state_dict())
    epoch(model, opt, loss_fn)
    expected = (model.weight.detach().clone(), loss_fn.gammas.clone(), loss_fn.edges.clone())

    model2, opt2, loss2 = build()
    ck = load_checkpoint(tmp_path / "ck.pt")
    model2.load_state_dict(ck["model"]); opt2.load_state_dict(ck["optimizer"]); loss2.load_state_dict(ck["loss"])
    assert int(loss2.n_updates) == 3
    epoch(model2, opt2, loss2)
    assert torch.equal(model2.weight, expected[0])
    assert torch.equal(loss2.gammas, expected[1]) and torch.equal(loss2.edges, expected[2])


def test_registry_entry_and_hyper_defaults():
    info = LOSSES.get("adafocal")
    assert info.label == "AdaFocal" and info.needs_validation
    assert not any(LOSSES.get(n).needs_validation for n in LOSSES if n != "adafocal")
    assert make_loss("adafocal", lam=2.0).lam == 2.0
    for name in LOSSES:                                                   # hyper restates the constructor defaults
        entry = LOSSES.get(name)
        params = inspect.signature(entry.build).parameters
        for key, value in entry.hyper.items():
            assert params[key].default == value, (name, key)


BAD = [
    ("n_bins", lambda: AdaFocalLoss(0), "n_bins"),
    ("lam", lambda: AdaFocalLoss(lam=-1.0), "lam"),
    ("switch_pt", lambda: AdaFocalLoss(switch_pt=-0.1), "switch_pt"),
    ("gamma_init", lambda: AdaFocalLoss(gamma_init=30.0), "gamma_init"),
    ("gamma_max nan", lambda: AdaFocalLoss(gamma_max=float("nan")), "gamma_max"),
    ("reduction", lambda: AdaFocalLoss(reduction="avg"), "reduction"),
    ("few val samples", lambda: AdaFocalLoss(n_bins=15).update_from_validation(*_batch(b=10)), "n_bins=15"),
    ("val labels", lambda: AdaFocalLoss().update_from_validation(torch.zeros(20, 3), torch.full((20,), 5)), "[0, 2]"),
    ("input shape", lambda: AdaFocalLoss()(torch.zeros(3), torch.tensor([0])), "(B, C)"),
]


@pytest.mark.parametrize("case,fn,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_errors(case, fn, msg):
    with pytest.raises(UserError, match=re.escape(msg)):
        fn()
