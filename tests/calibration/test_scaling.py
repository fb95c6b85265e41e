"""Temperature scaling and ATS: recovery of a known temperature, arg-max invariance, NLL, sklearn contract."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tenfold.calibration import AdaptiveTemperatureScaling, TemperatureScaling, calibration_metrics
from tenfold.common.errors import UserError


def _overconfident(n=2000, c=5, t_true=2.5, seed=0):
    """Logits whose labels are drawn from softmax(z / t_true): the right temperature is t_true."""
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.multinomial(torch.softmax(z / t_true, 1), 1, generator=g).squeeze(1)
    return z, y


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_ts_recovers_temperature(t_true):
    z, y = _overconfident(n=4000, t_true=t_true)
    ts = TemperatureScaling().fit(z, y)
    assert ts.temperature_ == pytest.approx(t_true, rel=0.1)
    # the fitted T is a minimum of the validation NLL (naive grid check around it)
    nll = lambda t: F.cross_entropy(z / t, y).item()
    assert nll(ts.temperature_) <= min(nll(ts.temperature_ * 1.05), nll(ts.temperature_ / 1.05))


def _ats_cases():
    g = torch.Generator().manual_seed(1)
    ties = torch.randint(-2, 3, (500, 4), generator=g).double()                # many exactly tied logits
    huge = 40 * torch.randn(500, 4, generator=g, dtype=torch.float64)          # saturated softmax
    return [("gaussian", *_overconfident(n=500, seed=2)), ("ties", ties, torch.randint(0, 4, (500,), generator=g)),
            ("saturated", huge, torch.randint(0, 4, (500,), generator=g))]


@pytest.mark.parametrize("name,z,y", _ats_cases(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("mode,bin_by", [("equal_mass", "confidence"), ("equal_width", "confidence"),
                                         ("equal_mass", "logit_norm"), ("equal_width", "logit_norm")])
def test_ats_never_changes_argmax(name, z, y, mode, bin_by):
    ats = AdaptiveTemperatureScaling(n_bins=8, mode=mode, bin_by=bin_by, min_samples_per_bin=10).fit(z, y)
    assert (ats.temperatures_ > 0).all()
    for test in (z, 5 * torch.randn(300, z.shape[1], dtype=torch.float64)):      # on validation and fresh logits
        out = ats.transform(test)
        assert torch.equal(out.argmax(1), test.argmax(1))
        p = ats.predict_proba(test)
        assert torch.allclose(p.sum(1), torch.ones(len(test), dtype=p.dtype))


def test_ats_validation_nll_not_worse_than_ts_and_per_bin_temperatures_differ():
    # confidence-dependent mis-calibration: confident samples over-confident, others under-confident
    z, y = _overconfident(n=3000, t_true=2.0, seed=3)
    conf = torch.softmax(z, 1).max(1).values
    z = torch.where((conf > 0.8)[:, None], z, z / 3)
    ts = TemperatureScaling().fit(z, y)
    ats = AdaptiveTemperatureScaling(n_bins=6).fit(z, y)
    nll_ts = F.cross_entropy(ts.transform(z), y).item()
    nll_ats = F.cross_entropy(ats.transform(z), y).item()
    assert nll_ats <= nll_ts + 1e-9
    assert ats.temperatures_.max() / ats.temperatures_.min() > 1.5
    assert ats.temperature_ == pytest.approx(ts.temperature_)
    assert calibration_metrics(ats.transform(z), y)["accuracy"] == calibration_metrics(z, y)["accuracy"]


def test_ats_equal_mass_bins_and_fallback():
    z, y = _overconfident(n=1000, seed=4)
    ats = AdaptiveTemperatureScaling(n_bins=10).fit(z, y)
    assert ats.bin_counts_.sum() == 1000 and (abs(ats.bin_counts_ - 100) <= 1).all()
    assert ats.edges_.shape == (9,) and ats.temperatures_.shape == (10,)
    # equal-width confidence bins below 1/C are empty: they keep the global temperature
    ew = AdaptiveTemperatureScaling(n_bins=10, mode="equal_width").fit(z, y)
    empty = ew.bin_counts_ < 20
    assert empty.any() and np.allclose(ew.temperatures_[empty], ew.temperature_)


def test_prior_pulls_towards_global_temperature_and_prevents_divergence():
    z, y = _overconfident(n=800, seed=5)
    spread = lambda a: np.abs(np.log(a.temperatures_ / a.temperature_)).max()
    mle = AdaptiveTemperatureScaling(n_bins=5, prior_std=None).fit(z, y)
    assert spread(AdaptiveTemperatureScaling(n_bins=5, prior_std=0.05).fit(z, y)) < spread(mle)
    # a bin whose samples are all correct: maximum likelihood drives its T towards 0, the prior does not
    y_sep = z.argmax(1).clone()
    conf = torch.softmax(z, 1).max(1).values
    low = conf < conf.median()
    y_sep[low] = torch.randint(0, 5, (int(low.sum()),), generator=torch.Generator().manual_seed(0))
    mle = AdaptiveTemperatureScaling(n_bins=4, prior_std=None).fit(z, y_sep)
    map_ = AdaptiveTemperatureScaling(n_bins=4).fit(z, y_sep)
    assert mle.temperatures_[-1] < 0.2 * map_.temperatures_[-1]


def test_sklearn_contract_clone_and_numpy_roundtrip():
    z, y = _overconfident(n=600, seed=6)
    ats = AdaptiveTemperatureScaling(n_bins=4, mode="equal_width", min_samples_per_bin=5)
    assert ats.get_params()["n_bins"] == 4 and not hasattr(ats, "temperatures_")
    twin = clone(ats)
    assert twin.get_params() == ats.get_params()
    a, b = ats.fit(z.numpy(), y.numpy()), twin.fit(z, y)
    assert a is ats
    np.testing.assert_allclose(a.temperatures_, b.temperatures_)
    out = a.transform(z.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (600, 5)
    assert isinstance(TemperatureScaling().fit(z, y).transform(z.float()), torch.Tensor)


BAD = [
    ("too small", lambda: AdaptiveTemperatureScaling(n_bins=15).fit(*_overconfident(n=100)),
     "Validation set too small"),
    ("n_bins", lambda: AdaptiveTemperatureScaling(n_bins=0).fit(*_overconfident(n=100)), "n_bins"),
    ("mode", lambda: AdaptiveTemperatureScaling(mode="quantile").fit(*_overconfident(n=100)), "mode"),
    ("bin_by", lambda: AdaptiveTemperatureScaling(bin_by="entropy").fit(*_overconfident(n=100)), "bin_by"),
    ("prior_std", lambda: AdaptiveTemperatureScaling(prior_std=0).fit(*_overconfident(n=300)), "prior_std"),
    ("mismatch", lambda: TemperatureScaling().fit(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long)), "mismatch"),
    ("labels", lambda: TemperatureScaling().fit(torch.zeros(2, 3), torch.tensor([0, 7])), "[0, 2]"),
    ("nan fit", lambda: TemperatureScaling().fit(torch.tensor([[0.0, float("nan")]]), torch.tensor([0])), "NaN"),
    ("max_iter", lambda: TemperatureScaling(max_iter=0).fit(*_overconfident(n=50)), "max_iter"),
    ("classes", lambda: TemperatureScaling().fit(*_overconfident(n=50)).transform(torch.zeros(2, 3)), "(N, 5)"),
    ("nan transform", lambda: TemperatureScaling().fit(*_overconfident(n=50)).transform(
        torch.full((1, 5), float("nan"))), "NaN"),
]


@pytest.mark.parametrize("case,fn,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_errors(case, fn, msg):
    with pytest.raises(UserError, match=__import__("re").escape(msg)):
        fn()


def test_transform_before_fit():
    with pytest.raises(NotFittedError):
        AdaptiveTemperatureScaling().transform(torch.zeros(2, 3))
