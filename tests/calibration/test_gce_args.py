"""GCELoss as a drop-in for nn.CrossEntropyLoss: every CE argument and input shape is honoured (checked at
reg_weight=0 against torch and at reg_weight=1 against a naive loop) or refused by name; ignore_index leaves
the prior; (N, C, d...) equals the flattened call; a batch of one gives exactly zero."""

import inspect
import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.calibration import GCELoss, gce_loss
from tenfold.common.errors import UserError

C = 4


def _data(shape=(9,), seed=0, ignore=None):
    """Logits (N, C, d...) and class targets (N, d...); with `ignore`, about a third of targets set to it."""
    g = torch.Generator().manual_seed(seed)
    n, *rest = shape
    z = 2 * torch.randn(n, C, *rest, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, shape, generator=g)
    if ignore is not None:
        drop = torch.rand(shape, generator=g) < 0.35
        drop.view(-1)[0] = False                                       # keep at least two positions
        drop.view(-1)[1] = False
        y = torch.where(drop, torch.full_like(y, ignore), y)
    return z, y


def _soft(shape, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    n, *rest = shape
    return torch.softmax(torch.randn(n, C, *rest, generator=g, dtype=torch.float64), 1)


W = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
# (id, input shape, kwargs, soft targets?)
CASES = [
    ("plain", (9,), {}, False),
    ("weight", (9,), {"weight": W}, False),
    ("ignore", (12,), {"ignore_index": -100}, False),
    ("ignore_class1", (12,), {"ignore_index": 1}, False),
    ("smoothing", (9,), {"label_smoothing": 0.2}, False),
    ("weight_ignore_smoothing", (12,), {"weight": W, "ignore_index": -100, "label_smoothing": 0.1}, False),
    ("spatial", (3, 5), {}, False),
    ("spatial2_weight_ignore", (2, 3, 4), {"weight": W, "ignore_index": 7}, False),
    ("soft", (9,), {}, True),
    ("soft_weight_smoothing", (9,), {"weight": W, "label_smoothing": 0.3}, True),
    ("soft_spatial", (3, 5), {"weight": W}, True),
]


def _inputs(shape, kw, soft, seed=0):
    ignore = kw.get("ignore_index") if "ignore_index" in kw else None
    z, y = _data(shape, seed, ignore)
    return z, (_soft(shape, seed) if soft else y)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case,shape,kw,soft", CASES, ids=[c[0] for c in CASES])
def test_reg_weight_zero_is_cross_entropy_for_every_argument(case, shape, kw, soft, reduction):
    z, t = _inputs(shape, kw, soft)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    got = GCELoss(0.0, reduction=reduction, **kw)(z1, t)
    ref = nn.CrossEntropyLoss(reduction=reduction, **kw)(z2, t)
    torch.testing.assert_close(got, ref)
    got.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad)
    torch.testing.assert_close(gce_loss(z, t, kw.get("weight"), reg_weight=0.0, reduction=reduction,
                                        **{k: v for k, v in kw.items() if k != "weight"}), ref.detach())


def _naive(z, t, weight=None, ignore_index=-100, label_smoothing=0.0, reg_weight=1.0):
    """Per-position GCE with explicit loops over positions i, classes c and batch members j."""
    zf = z.movedim(1, -1).reshape(-1, C)
    soft = t.is_floating_point()
    tf = t.movedim(1, -1).reshape(-1, C) if soft else t.reshape(-1)
    keep = [i for i in range(len(zf)) if soft or int(tf[i]) != ignore_index]
    p = torch.softmax(zf, 1)
    w = [1.0] * C if weight is None else weight.tolist()

    def g(i, c):                                                   # -log p(x_i|c) (up to log B)
        return -math.log(float(p[i, c])) + reg_weight * math.log(sum(float(p[j, c]) for j in keep))

    rows, denom = [], 0.0
    for i in range(len(zf)):
        if i not in keep:
            rows.append(0.0)
            continue
        if soft:
            q = [float(tf[i, c]) * (1 - label_smoothing) + label_smoothing / C for c in range(C)]
            rows.append(sum(q[c] * w[c] * g(i, c) for c in range(C)))
            denom += 1
        else:
            y = int(tf[i])
            hard = w[y] * g(i, y)
            rows.append((1 - label_smoothing) * hard + label_smoothing / C * sum(w[c] * g(i, c) for c in range(C)))
            denom += w[y]
    return torch.tensor(rows, dtype=torch.float64), denom


@pytest.mark.parametrize("reg_weight", [1.0, 0.5])
@pytest.mark.parametrize("case,shape,kw,soft", CASES, ids=[c[0] for c in CASES])
def test_gce_matches_naive_loop_for_every_argument(case, shape, kw, soft, reg_weight):
    z, t = _inputs(shape, kw, soft, seed=1)
    rows, denom = _naive(z, t, reg_weight=reg_weight, **kw)
    none = GCELoss(reg_weight, reduction="none", **kw)(z, t)
    assert none.shape == (t.shape[:1] + t.shape[2:] if soft else t.shape)
    torch.testing.assert_close(none.reshape(-1), rows)                 # both in (N, d1, ..., dk) order
    torch.testing.assert_close(GCELoss(reg_weight, reduction="sum", **kw)(z, t), rows.sum())
    torch.testing.assert_close(GCELoss(reg_weight, **kw)(z, t), rows.sum() / denom)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_spatial_input_equals_flattened_call(shape, reduction):
    z, y = _data(shape, seed=2, ignore=-100)
    flat_z = z.movedim(1, -1).reshape(-1, C)
    loss = GCELoss(weight=W, label_smoothing=0.1, reduction=reduction)
    got = loss(z, y)
    ref = loss(flat_z, y.reshape(-1))
    torch.testing.assert_close(got.reshape(-1) if reduction == "none" else got, ref)
    if reduction == "none":
        assert got.shape == y.shape
    ema = dict(prior="ema", n_classes=C, reduction=reduction)
    torch.testing.assert_close(GCELoss(**ema)(z, y).reshape(-1), GCELoss(**ema)(flat_z, y.reshape(-1)).reshape(-1))


def test_ignored_positions_take_no_part_in_either_term():
    z, y = _data((12,), seed=3, ignore=-100)
    ign = y == -100
    assert 0 < int(ign.sum()) < 10
    kept_only = GCELoss(reduction="none")(z[~ign], y[~ign])
    full = GCELoss(reduction="none")(z, y)
    torch.testing.assert_close(full[~ign], kept_only)                  # the prior sum skips ignored rows
    assert bool((full[ign] == 0).all())
    assert GCELoss()(z, y).item() == pytest.approx(kept_only.mean().item())
    # changing ignored logits changes nothing, and they get no gradient
    z2 = z.clone()
    z2[ign] = 50 * torch.randn(int(ign.sum()), C, dtype=torch.float64)
    torch.testing.assert_close(GCELoss()(z2, y), GCELoss()(z, y))
    zz = z.clone().requires_grad_(True)
    GCELoss()(zz, y).backward()
    assert bool((zz.grad[ign] == 0).all()) and bool((zz.grad[~ign] != 0).any())
    # the running prior of prior="ema" only sees kept rows too
    ema = GCELoss(prior="ema", momentum=0.5, n_classes=C)
    ema(z, y)
    torch.testing.assert_close(ema.running_prior.double(), 0.5 * torch.softmax(z[~ign], 1).mean(0) + 0.5 / C,
                               rtol=1e-6, atol=1e-7)
    # every position ignored: nan mean, zero sum, as torch's CE
    all_ign = torch.full_like(y, -100)
    assert math.isnan(GCELoss()(z, all_ign).item()) and math.isnan(F.cross_entropy(z, all_ign).item())
    assert GCELoss(reduction="sum")(z, all_ign).item() == 0.0


def test_weight_scales_the_whole_per_sample_term_and_leaves_the_prior_unweighted():
    z, y = _data((10,), seed=4)
    plain = GCELoss(reduction="none")(z, y)
    weighted = GCELoss(weight=W, reduction="none")(z, y)
    torch.testing.assert_close(weighted, W[y] * plain)
    assert GCELoss(weight=W)(z, y).item() == pytest.approx((W[y] * plain).sum().item() / W[y].sum().item())
    loss = GCELoss(weight=W.float())
    assert "weight" in loss.state_dict() and loss.to(torch.float64).weight.dtype == torch.float64


def test_one_hot_probability_targets_equal_class_indices_and_smoothing_is_an_expectation():
    z, y = _data((10,), seed=5)
    onehot = F.one_hot(y, C).double()
    for kw in ({}, {"weight": W}, {"label_smoothing": 0.2}):
        torch.testing.assert_close(GCELoss(reduction="none", **kw)(z, onehot), GCELoss(reduction="none", **kw)(z, y))
    # smoothing eps mixes the hard-label term with the uniform-label term, on both parts of GCE
    eps = 0.3
    hard = GCELoss(reduction="none")(z, y)
    uniform = GCELoss(reduction="none")(z, torch.full((10, C), 1.0 / C, dtype=torch.float64))
    torch.testing.assert_close(GCELoss(label_smoothing=eps, reduction="none")(z, y), (1 - eps) * hard + eps * uniform)


@pytest.mark.parametrize("shape,ignore", [((1,), None), ((3,), 2), ((1, 1), None)])
def test_batch_of_one_is_exactly_zero_with_zero_gradient_and_warns(shape, ignore):
    z, y = _data(shape, seed=6)
    if ignore is not None:                                             # three rows, two ignored: one left
        y = torch.tensor([y[0].item(), -100, -100])
    zz = z.clone().requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="batch of one"):
        loss = GCELoss()(zz, y)
    loss.backward()
    assert loss.item() == 0.0 and bool((zz.grad == 0).all())
    with pytest.warns(RuntimeWarning, match="batch of one"):
        half = gce_loss(z, y, reg_weight=0.5)                          # (1 - lambda) * CE in general
    assert half.item() == pytest.approx(0.5 * F.cross_entropy(z, y).item())
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                 # no warning without the batch prior
        GCELoss(prior="ema", n_classes=C)(z, y)
        GCELoss(0.0)(z, y)


def test_unbatched_input_is_a_batch_of_one():
    z, y = _data((1,), seed=7)
    with pytest.warns(RuntimeWarning, match="batch of one"):
        out = GCELoss(reduction="none")(z[0], y[0])
    assert out.shape == () and out.item() == 0.0
    torch.testing.assert_close(GCELoss(0.0)(z[0], y[0]), F.cross_entropy(z[0], y[0]))


# ------------------------------------------------------------------------------ each CE argument, by name
HONOURED = {"weight": W, "ignore_index": 1, "reduction": "sum", "label_smoothing": 0.1}
REFUSED = {"size_average": True, "reduce": False}


def test_every_cross_entropy_argument_is_honoured_or_refused_by_name():
    names = set(inspect.signature(nn.CrossEntropyLoss).parameters)
    assert names == set(HONOURED) | set(REFUSED)                        # a new torch argument fails this test
    z, y = _data((12,), seed=8, ignore=1)
    for name, value in HONOURED.items():
        torch.testing.assert_close(GCELoss(0.0, **{name: value})(z, y), nn.CrossEntropyLoss(**{name: value})(z, y))
    for name, value in REFUSED.items():
        with pytest.raises(UserError, match=rf"Invalid {name}:"):
            GCELoss(**{name: value})
        with pytest.raises(UserError, match=rf"Invalid {name}:"):
            gce_loss(z, y, **{name: value})


BAD = [
    ("weight positional", lambda: GCELoss(torch.ones(C)), "reg_weight"),
    ("weight length", lambda: GCELoss(weight=torch.ones(3))(*_data()), "Invalid weight"),
    ("weight list", lambda: GCELoss(weight=[1.0, 2.0, 3.0, 4.0]), "Invalid weight"),
    ("weight vs n_classes", lambda: GCELoss(weight=torch.ones(3), prior="ema", n_classes=C), "Invalid weight"),
    ("ignore_index float", lambda: GCELoss(ignore_index=1.5), "ignore_index"),
    ("label_smoothing", lambda: GCELoss(label_smoothing=1.5), "label_smoothing"),
    ("reduction", lambda: gce_loss(*_data(), reduction="avg"), "reduction"),
    ("normalizer", lambda: gce_loss(*_data(), normalizer="max"), "normalizer"),
    ("target shape", lambda: GCELoss()(torch.zeros(2, C, 3), torch.zeros(2, 4, dtype=torch.long)), "(2, 3)"),
    ("soft shape", lambda: GCELoss()(torch.zeros(2, C), torch.zeros(2, 3)), "soft targets"),
    ("bool target", lambda: GCELoss()(torch.zeros(2, C), torch.tensor([True, False])), "dtype"),
    ("out of range", lambda: GCELoss()(torch.zeros(2, C), torch.tensor([0, C])), "ignore_index=-100"),
    ("integer input", lambda: GCELoss()(torch.zeros(2, C, dtype=torch.long), torch.tensor([0, 1])), "input"),
]


@pytest.mark.parametrize("case,fn,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_are_named(case, fn, msg):
    with pytest.raises(UserError, match=re.escape(msg)):
        fn()
