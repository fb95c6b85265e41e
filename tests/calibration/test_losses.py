"""GCE and the baseline losses against naive per-sample loops; drop-in behaviour, state and resume."""

import math

import pytest
import torch
import torch.nn.functional as F

from tenfold.calibration import (
    LOSSES, DualFocalLoss, FLSD53Loss, FocalLoss, GCELoss, LabelSmoothingLoss, gce_loss, make_loss,
)
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.errors import UserError


def _batch(b=7, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(b, c, generator=g, dtype=torch.float64), torch.randint(0, c, (b,), generator=g)


def _naive_gce(z, y, reg_weight=1.0, normalizer="sum", prior=None):
    """-log p(y_i|x_i) + w * log[ sum_j p(y_i|x_j) ] per sample, with explicit loops."""
    p = torch.softmax(z, 1)
    b = len(y)
    out = []
    for i in range(b):
        c = int(y[i])
        if prior is None:
            denom = sum(float(p[j, c]) for j in range(b))
            if normalizer == "mean":
                denom /= b
        else:
            denom = float(prior[c]) * (b if normalizer == "sum" else 1)
        out.append(-math.log(float(p[i, c])) + reg_weight * math.log(denom))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("reg_weight", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("normalizer", ["sum", "mean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_gce_batch_prior_matches_naive(reg_weight, normalizer, seed):
    z, y = _batch(seed=seed)
    got = GCELoss(reg_weight, normalizer=normalizer, reduction="none")(z, y)
    torch.testing.assert_close(got, _naive_gce(z, y, reg_weight, normalizer))
    assert GCELoss(reg_weight, normalizer=normalizer)(z, y).item() == pytest.approx(got.mean().item())
    assert GCELoss(reg_weight, normalizer=normalizer, reduction="sum")(z, y).item() == pytest.approx(got.sum().item())


def test_gce_zero_weight_is_ce_and_sum_form_is_nonnegative():
    z, y = _batch(b=32, c=10, seed=2)
    assert GCELoss(0.0)(z, y).item() == pytest.approx(F.cross_entropy(z, y).item())
    assert bool((GCELoss(reduction="none")(z, y) >= 0).all())      # p(y_i|x_i) <= sum_j p(y_i|x_j)


def test_gce_normalizers_differ_by_log_b_with_same_gradient():
    z, y = _batch(b=9, seed=3)
    grads = []
    for norm in ("sum", "mean"):
        zz = z.clone().requires_grad_(True)
        loss = GCELoss(normalizer=norm)(zz, y)
        loss.backward()
        grads.append((loss.item(), zz.grad))
    assert grads[0][0] - grads[1][0] == pytest.approx(math.log(9))
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_gce_gradient_matches_autograd_of_naive_formula():
    z, y = _batch(b=6, seed=4)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    GCELoss()(z1, y).backward()
    logp = torch.log_softmax(z2, 1)
    ref = torch.stack([-logp[i, y[i]] + torch.logsumexp(logp[:, y[i]], 0) for i in range(6)]).mean()
    ref.backward()
    torch.testing.assert_close(z1.grad, z2.grad)


def test_gce_ema_prior_matches_naive_and_updates_only_in_train_mode():
    loss = GCELoss(prior="ema", momentum=0.8, n_classes=4, reduction="none")
    running = torch.full((4,), 0.25, dtype=torch.float64)
    for seed in range(3):
        z, y = _batch(seed=seed)
        mix = 0.2 * torch.softmax(z, 1).mean(0) + 0.8 * running
        torch.testing.assert_close(loss(z, y), _naive_gce(z, y, prior=mix))
        running = mix
        torch.testing.assert_close(loss.running_prior.double(), running, rtol=1e-6, atol=1e-7)
    loss.eval()
    before = loss.running_prior.clone()
    loss(*_batch(seed=9))
    assert torch.equal(before, loss.running_prior)


def _naive_focal(z, y, gamma_of):
    p = torch.softmax(z, 1)
    return torch.tensor([-(1 - p[i, y[i]].item()) ** gamma_of(p[i, y[i]].item()) * math.log(p[i, y[i]].item())
                         for i in range(len(y))], dtype=torch.float64)


def _naive_dual(z, y, gamma):
    p = torch.softmax(z, 1)
    out = []
    for i in range(len(y)):
        pt = p[i, y[i]].item()
        pj = max([v for v in p[i].tolist() if v < pt], default=0.0)
        out.append(-(1 - pt + pj) ** gamma * math.log(pt))
    return torch.tensor(out, dtype=torch.float64)


CASES = [
    ("focal0", FocalLoss(0.0, reduction="none"), lambda z, y: F.cross_entropy(z, y, reduction="none")),
    ("focal3", FocalLoss(3.0, reduction="none"), lambda z, y: _naive_focal(z, y, lambda p: 3.0)),
    ("flsd53", FLSD53Loss(reduction="none"), lambda z, y: _naive_focal(z, y, lambda p: 5.0 if p < 0.2 else 3.0)),
    ("dual5", DualFocalLoss(5.0, reduction="none"), lambda z, y: _naive_dual(z, y, 5.0)),
    ("ls", LabelSmoothingLoss(0.1, reduction="none"),
     lambda z, y: -(0.9 * torch.log_softmax(z, 1).gather(1, y[:, None]).squeeze(1)
                    + 0.1 * torch.log_softmax(z, 1).mean(1))),
]


@pytest.mark.parametrize("name,loss,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_baselines_match_naive(name, loss, ref, seed):
    z, y = _batch(b=12, c=5, seed=seed)
    torch.testing.assert_close(loss(z, y), ref(z, y))


@pytest.mark.parametrize("name", list(LOSSES))
def test_registry_drop_in_for_cross_entropy(name):
    """Every registered loss trains a linear model like nn.CrossEntropyLoss would: scalar, finite, lowers."""
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = (x @ torch.randn(5, 3)).argmax(1)                 # learnable labels
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    loss_fn = make_loss(name)
    first = None
    for _ in range(30):
        loss = loss_fn(model(x), y)
        assert loss.ndim == 0 and torch.isfinite(loss)
        opt.zero_grad(); loss.backward(); opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first


def test_gce_ema_save_resume_bit_identical_next_step(tmp_path):
    """Train with the stateful (ema) GCE, checkpoint, take one more step; reload and redo it exactly."""
    torch.manual_seed(0)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))

    def build():
        model = torch.nn.Linear(6, 3)
        return model, torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), GCELoss(prior="ema", n_classes=3)

    def step(model, opt, loss_fn):
        idx = torch.randperm(40)[:16]
        loss = loss_fn(model(x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step()

    model, opt, loss_fn = build()
    for _ in range(5):
        step(model, opt, loss_fn)
    save_checkpoint(tmp_path / "ck.pt", model=model.state_dict(), optimizer=opt.state_dict(), loss=loss_fn.state_dict())
    step(model, opt, loss_fn)
    expected = (model.weight.detach().clone(), loss_fn.running_prior.clone())

    model2, opt2, loss2 = build()
    ck = load_checkpoint(tmp_path / "ck.pt")
    model2.load_state_dict(ck["model"]); opt2.load_state_dict(ck["optimizer"]); loss2.load_state_dict(ck["loss"])
    step(model2, opt2, loss2)
    assert torch.equal(model2.weight, expected[0]) and torch.equal(loss2.running_prior, expected[1])


BAD = [
    ("reg_weight<0", lambda: GCELoss(-1.0), "reg_weight"),
    ("prior", lambda: GCELoss(prior="global"), "prior"),
    ("normalizer", lambda: GCELoss(normalizer="max"), "normalizer"),
    ("reduction", lambda: GCELoss(reduction="avg"), "reduction"),
    ("ema without classes", lambda: GCELoss(prior="ema"), "n_classes"),
    ("momentum", lambda: GCELoss(prior="ema", n_classes=3, momentum=1.0), "momentum"),
    ("ema wrong classes", lambda: GCELoss(prior="ema", n_classes=3)(torch.zeros(2, 4), torch.tensor([0, 1])),
     "n_classes=3"),
    ("target out of range", lambda: GCELoss()(torch.zeros(2, 3), torch.tensor([0, 3])), "[0, 2]"),
    ("shape mismatch", lambda: FocalLoss()(torch.zeros(2, 3), torch.tensor([0, 1, 2])), "mismatch"),
    ("1-D input", lambda: DualFocalLoss()(torch.zeros(3), torch.tensor([0])), "(B, C)"),
    ("float target", lambda: LabelSmoothingLoss()(torch.zeros(2, 3), torch.tensor([0.0, 1.0])), "dtype"),
    ("gamma<0", lambda: FocalLoss(-1.0), "gamma"),
    ("threshold", lambda: FLSD53Loss(threshold=1.5), "threshold"),
    ("alpha", lambda: LabelSmoothingLoss(1.0), "alpha"),
    ("unknown loss", lambda: make_loss("hinge"), "valid names"),
]


@pytest.mark.parametrize("case,fn,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_errors(case, fn, msg):
    with pytest.raises(UserError, match=__import__("re").escape(msg)):
        fn()


def test_functional_matches_module():
    z, y = _batch(seed=5)
    assert gce_loss(z, y, reg_weight=0.7).item() == pytest.approx(GCELoss(0.7)(z, y).item())
