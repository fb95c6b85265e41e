"""Calibration metrics against torchmetrics, netcal (when installed) and naive per-bin loops."""

import math

import numpy as np
import pytest
import torch

from tenfold.calibration import adaece, brier, calibration_metrics, classwise_ece, ece, mce, nll, reliability_bins
from tenfold.common.errors import UserError


def _sample(n=600, c=5, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.distributions.Categorical(logits=z / 1.7).sample()   # mis-calibrated on purpose
    return z, torch.softmax(z, 1), y


def _naive_ece(conf, correct, edges_of):
    """sum_b n_b / N |acc_b - conf_b| with an explicit Python loop over bins (edges_of: sample -> bin)."""
    bins = {}
    for c, a in zip(conf.tolist(), correct.tolist()):
        bins.setdefault(edges_of(c), []).append((c, a))
    n = len(conf)
    return sum(len(v) / n * abs(np.mean([a for _, a in v]) - np.mean([c for c, _ in v])) for v in bins.values())


@pytest.mark.parametrize("n_bins", [1, 5, 15, 30])
@pytest.mark.parametrize("seed", [0, 1])
def test_ece_mce_match_torchmetrics(n_bins, seed):
    from torchmetrics.functional.classification import multiclass_calibration_error

    _, p, y = _sample(seed=seed)
    for ours, norm in ((ece, "l1"), (mce, "max")):
        ref = multiclass_calibration_error(p.float(), y, num_classes=5, n_bins=n_bins, norm=norm)
        assert ours(p.float(), y, n_bins) == pytest.approx(float(ref), abs=2e-6)


def test_ece_matches_naive_loop():
    _, p, y = _sample(n=300, seed=3)
    conf, pred = p.max(1)
    ref = _naive_ece(conf, (pred == y).double(), lambda c: min(int(c * 15), 14))
    assert ece(p, y) == pytest.approx(ref, abs=1e-12)


def test_ece_matches_netcal():
    metrics = pytest.importorskip("netcal.metrics")
    _, p, y = _sample(n=800, seed=4)
    ref = metrics.ECE(bins=15).measure(p.numpy(), y.numpy())
    assert ece(p, y) == pytest.approx(ref, abs=1e-6)


def test_adaece_equal_mass_naive():
    _, p, y = _sample(n=301, seed=5)
    conf, pred = p.max(1)
    order = np.argsort(conf.numpy(), kind="stable")
    chunks = np.array_split(order, 15)                     # sizes 21 x 1 and 20 x 14
    rank_bin = {int(i): b for b, ch in enumerate(chunks) for i in ch}
    correct = (pred == y).double().numpy()
    ref = sum(len(ch) / 301 * abs(correct[ch].mean() - conf.numpy()[ch].mean()) for ch in chunks)
    assert adaece(p, y) == pytest.approx(ref, abs=1e-12)
    assert len(rank_bin) == 301


def test_classwise_ece_naive():
    _, p, y = _sample(n=200, c=3, seed=6)
    ref = np.mean([_naive_ece(p[:, c], (y == c).double(), lambda v: min(int(v * 15), 14)) for c in range(3)])
    assert classwise_ece(p, y) == pytest.approx(ref, abs=1e-12)


def test_nll_brier_and_bundle_naive():
    z, p, y = _sample(n=50, c=4, seed=7)
    ref_nll = -np.mean([math.log(p[i, y[i]].item()) for i in range(50)])
    ref_brier = np.mean([sum((p[i, c].item() - (c == y[i].item())) ** 2 for c in range(4)) for i in range(50)])
    assert nll(p, y) == pytest.approx(ref_nll, rel=1e-9)
    assert brier(p, y) == pytest.approx(ref_brier, rel=1e-9)
    m = calibration_metrics(z, y)
    assert m["nll"] == pytest.approx(ref_nll, rel=1e-9)
    assert m["accuracy"] == pytest.approx(float((p.argmax(1) == y).double().mean()))
    for k in ("ece", "adaece", "classwise_ece", "mce", "brier"):
        assert m[k] == pytest.approx({"ece": ece, "adaece": adaece, "classwise_ece": classwise_ece, "mce": mce,
                                      "brier": brier}[k](p, y), abs=1e-12)


def test_perfectly_calibrated_and_confident_cases():
    p = torch.eye(3)[[0, 1, 2, 0]].double()
    y = torch.tensor([0, 1, 2, 0])
    assert ece(p, y) == 0 and mce(p, y) == 0 and brier(p, y) == 0
    assert ece(p, torch.tensor([1, 1, 2, 0])) == pytest.approx(0.25)


def test_reliability_bins_counts():
    z, _, y = _sample(n=123, seed=8)
    r = reliability_bins(z, y, n_bins=10)
    assert sum(r["count"]) == 123 and len(r["accuracy"]) == 10


def test_numpy_inputs_accepted():
    _, p, y = _sample(n=100, seed=9)
    assert ece(p.numpy(), y.numpy()) == pytest.approx(ece(p, y))


BAD = [
    ("shape mismatch", lambda: calibration_metrics(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)), "mismatch"),
    ("1-D logits", lambda: calibration_metrics(torch.zeros(4), torch.zeros(4, dtype=torch.long)), "expected (N, C)"),
    ("label too big", lambda: calibration_metrics(torch.zeros(2, 3), torch.tensor([0, 3])), "[0, 2]"),
    ("label negative", lambda: calibration_metrics(torch.zeros(2, 3), torch.tensor([-1, 0])), "out of range"),
    ("NaN logits", lambda: calibration_metrics(torch.tensor([[0.0, float("nan")]]), torch.tensor([0])), "NaN"),
    ("float labels", lambda: calibration_metrics(torch.zeros(2, 3), torch.tensor([0.5, 1.0])), "integer"),
    ("not probs", lambda: ece(torch.tensor([[2.0, -1.0]]), torch.tensor([0])), "softmax probabilities"),
    ("rows != 1", lambda: ece(torch.tensor([[0.5, 0.2]]), torch.tensor([0])), "sum to 1"),
    ("bad n_bins", lambda: ece(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), n_bins=0), "n_bins"),
    ("too few for adaece", lambda: adaece(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), n_bins=15), "n_bins"),
    ("empty", lambda: calibration_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), "empty"),
]


@pytest.mark.parametrize("case,fn,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_errors(case, fn, msg):
    with pytest.raises(UserError, match=__import__("re").escape(msg)):
        fn()
