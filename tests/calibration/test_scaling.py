"""Temperature scaling and ATS: recovery of a known temperature, arg-max invariance, NLL, sklearn contract,
the grid fits against naive searches, and dtype round trips."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from tenfold.calibration import (
    ATS_GRID, TS_ECE_GRID, AdaptiveTemperatureScaling, TemperatureScaling, calibration_metrics, ece,
)
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
@pytest.mark.parametrize("solver,objective", [("grid", "nll"), ("grid", "ece"), ("lbfgs", "nll")])
def test_ats_never_changes_argmax(name, z, y, mode, bin_by, solver, objective):
    ats = AdaptiveTemperatureScaling(n_bins=8, mode=mode, bin_by=bin_by, min_samples_per_bin=10, solver=solver,
                                     objective=objective).fit(z, y)
    assert (ats.temperatures_ > 0).all()
    for test in (z, 5 * torch.randn(300, z.shape[1], dtype=torch.float64)):      # on validation and fresh logits
        out = ats.transform(test)
        assert torch.equal(out.argmax(1), test.argmax(1))
        p = ats.predict_proba(test)
        assert torch.allclose(p.sum(1), torch.ones(len(test), dtype=p.dtype))


@pytest.mark.parametrize("solver", ["grid", "lbfgs"])
def test_ats_validation_nll_not_worse_than_ts_and_per_bin_temperatures_differ(solver):
    # confidence-dependent mis-calibration: confident samples over-confident, others under-confident
    z, y = _overconfident(n=3000, t_true=2.0, seed=3)
    conf = torch.softmax(z, 1).max(1).values
    z = torch.where((conf > 0.8)[:, None], z, z / 3)
    ts = TemperatureScaling().fit(z, y)
    ats = AdaptiveTemperatureScaling(n_bins=6, solver=solver).fit(z, y)
    nll_ts = F.cross_entropy(ts.transform(z), y).item()
    nll_ats = F.cross_entropy(ats.transform(z), y).item()
    assert nll_ats <= nll_ts + 1e-9
    assert ats.temperatures_.max() / ats.temperatures_.min() > 1.5
    if solver == "lbfgs":
        assert ats.temperature_ == pytest.approx(ts.temperature_)
    else:   # the grid optimum of the whole-set NLL is a grid neighbour of the continuous one
        assert ats.temperature_ in ATS_GRID and abs(np.log(ats.temperature_ / ts.temperature_)) <= np.log(1.025)
    assert calibration_metrics(ats.transform(z), y)["accuracy"] == calibration_metrics(z, y)["accuracy"]


@pytest.mark.parametrize("solver", ["grid", "lbfgs"])
def test_ats_equal_mass_bins_and_fallback(solver):
    z, y = _overconfident(n=1000, seed=4)
    ats = AdaptiveTemperatureScaling(n_bins=10, solver=solver).fit(z, y)
    assert ats.bin_counts_.sum() == 1000 and (abs(ats.bin_counts_ - 100) <= 1).all()
    assert ats.edges_.shape == (9,) and ats.temperatures_.shape == (10,)
    # equal-width confidence bins below 1/C are empty: they keep the global temperature
    ew = AdaptiveTemperatureScaling(n_bins=10, mode="equal_width", solver=solver).fit(z, y)
    empty = ew.bin_counts_ < 20
    assert empty.any() and np.allclose(ew.temperatures_[empty], ew.temperature_)


def test_prior_pulls_towards_global_temperature_and_prevents_divergence():
    z, y = _overconfident(n=800, seed=5)
    spread = lambda a: np.abs(np.log(a.temperatures_ / a.temperature_)).max()
    mle = AdaptiveTemperatureScaling(n_bins=5, solver="lbfgs", prior_std=None).fit(z, y)
    assert spread(AdaptiveTemperatureScaling(n_bins=5, solver="lbfgs", prior_std=0.05).fit(z, y)) < spread(mle)
    # "auto" is today's default prior for L-BFGS
    auto = AdaptiveTemperatureScaling(n_bins=5, solver="lbfgs").fit(z, y)
    half = AdaptiveTemperatureScaling(n_bins=5, solver="lbfgs", prior_std=0.5).fit(z, y)
    np.testing.assert_array_equal(auto.temperatures_, half.temperatures_)
    # a bin whose samples are all correct: maximum likelihood drives its T towards 0, the prior does not
    y_sep = z.argmax(1).clone()
    conf = torch.softmax(z, 1).max(1).values
    low = conf < conf.median()
    y_sep[low] = torch.randint(0, 5, (int(low.sum()),), generator=torch.Generator().manual_seed(0))
    mle = AdaptiveTemperatureScaling(n_bins=4, solver="lbfgs", prior_std=None).fit(z, y_sep)
    map_ = AdaptiveTemperatureScaling(n_bins=4, solver="lbfgs").fit(z, y_sep)
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
    ("prior_std str", lambda: AdaptiveTemperatureScaling(prior_std="on").fit(*_overconfident(n=300)), "prior_std"),
    ("prior with ece", lambda: AdaptiveTemperatureScaling(objective="ece", prior_std=0.5).fit(*_overconfident(n=300)),
     "prior_std"),
    ("solver", lambda: AdaptiveTemperatureScaling(solver="adam").fit(*_overconfident(n=300)), "solver"),
    ("objective", lambda: AdaptiveTemperatureScaling(objective="brier").fit(*_overconfident(n=300)), "objective"),
    ("lbfgs ece", lambda: AdaptiveTemperatureScaling(solver="lbfgs", objective="ece").fit(*_overconfident(n=300)),
     "objective"),
    ("lbfgs grid", lambda: AdaptiveTemperatureScaling(solver="lbfgs", grid=[1.0]).fit(*_overconfident(n=300)), "grid"),
    ("empty grid", lambda: AdaptiveTemperatureScaling(grid=[]).fit(*_overconfident(n=300)), "grid"),
    ("negative grid", lambda: TemperatureScaling(objective="ece", grid=[1.0, -2.0]).fit(*_overconfident(n=50)), "grid"),
    ("grid with nll", lambda: TemperatureScaling(grid=[1.0, 2.0]).fit(*_overconfident(n=50)), "grid"),
    ("ts objective", lambda: TemperatureScaling(objective="adaece").fit(*_overconfident(n=50)), "objective"),
    ("ece_bins", lambda: TemperatureScaling(objective="ece", ece_bins=0).fit(*_overconfident(n=50)), "ece_bins"),
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


# ------------------------------------------------------------------------------------ grid fits vs naive searches
def test_ts_ece_objective_is_the_first_grid_minimum_of_validation_ece():
    z, y = _overconfident(n=1500, t_true=1.7, seed=7)
    ts = TemperatureScaling(objective="ece").fit(z, y)
    scores = [ece(torch.softmax(z / t, 1), y, n_bins=15) for t in TS_ECE_GRID]
    best = min(scores)
    assert ts.temperature_ == TS_ECE_GRID[scores.index(best)]          # first minimum: the smaller T
    assert ece(ts.predict_proba(z), y) == pytest.approx(best)
    assert TS_ECE_GRID[0] == 0.1 and TS_ECE_GRID[-1] == 10.0 and len(TS_ECE_GRID) == 100   # Mukhoti et al.'s grid
    # a custom grid and bin count are honoured
    grid = [0.5, 1.0, 1.5, 2.0, 3.0]
    ts5 = TemperatureScaling(objective="ece", grid=grid, ece_bins=5).fit(z, y)
    scores5 = [ece(torch.softmax(z / t, 1), y, n_bins=5) for t in grid]
    assert ts5.temperature_ == grid[int(np.argmin(scores5))]
    # the NLL objective is still the L-BFGS optimum, off any grid
    assert TemperatureScaling().fit(z, y).temperature_ == pytest.approx(1.7, rel=0.1)


def _naive_ats_grid(z, y, bins, n_bins, grid, objective, min_count, prior_std=None):
    """Loop over bins and temperatures: each bin's objective, the global T, and per-bin T with fallback."""
    def bin_obj(mask, t):
        zb, yb = z[mask] / t, y[mask]
        if objective == "nll":
            return F.cross_entropy(zb, yb, reduction="sum").item()
        conf = torch.softmax(zb, 1).max(1).values
        acc = (zb.argmax(1) == yb).double()
        return abs(conf.sum().item() - acc.sum().item())
    masks = [bins == b for b in range(n_bins)]
    totals = [sum(bin_obj(mk, t) for mk in masks if mk.any()) for t in grid]
    t_glob = grid[int(np.argmin(totals))]
    out = []
    for mk in masks:
        if int(mk.sum()) < min_count:
            out.append(t_glob)
            continue
        vals = [bin_obj(mk, t) + (0 if prior_std is None else np.log(t / t_glob) ** 2 / (2 * prior_std ** 2))
                for t in grid]
        out.append(grid[int(np.argmin(vals))])
    return t_glob, np.array(out)


@pytest.mark.parametrize("objective,prior_std", [("nll", "auto"), ("ece", "auto"), ("nll", 0.3)])
def test_ats_grid_matches_naive_per_bin_search(objective, prior_std):
    z, y = _overconfident(n=900, t_true=2.0, seed=8)
    conf = torch.softmax(z, 1).max(1).values
    z = torch.where((conf > 0.7)[:, None], z, z / 2)                      # bins want different temperatures
    grid = list(np.geomspace(0.2, 8.0, 41))
    ats = AdaptiveTemperatureScaling(n_bins=6, mode="equal_width", min_samples_per_bin=30, grid=grid,
                                     objective=objective, prior_std=prior_std).fit(z, y)
    bins = ats._bins(z)
    t_glob, temps = _naive_ats_grid(z, y, bins, 6, grid, objective, 30, None if prior_std == "auto" else prior_std)
    assert ats.temperature_ == pytest.approx(t_glob)
    np.testing.assert_allclose(ats.temperatures_, temps)
    assert (ats.bin_counts_ < 30).any() and (ats.bin_counts_ >= 30).sum() >= 3     # both branches exercised
    assert len(set(np.round(ats.temperatures_, 6))) >= 3


def test_ats_grid_recovers_a_known_temperature_in_every_bin():
    z, y = _overconfident(n=6000, t_true=2.5, seed=9)
    ats = AdaptiveTemperatureScaling(n_bins=5).fit(z, y)
    assert ats.temperature_ == pytest.approx(2.5, rel=0.05)
    np.testing.assert_allclose(ats.temperatures_, 2.5, rtol=0.2)
    # the ECE objective lands near it too (the bin's mean confidence matches its accuracy there)
    np.testing.assert_allclose(AdaptiveTemperatureScaling(n_bins=5, objective="ece").fit(z, y).temperatures_, 2.5,
                               rtol=0.3)


def test_ats_grid_all_correct_bin_stops_at_the_grid_end_and_the_prior_holds_it_back():
    z, y = _overconfident(n=800, seed=5)
    y_sep = z.argmax(1).clone()
    conf = torch.softmax(z, 1).max(1).values
    low = conf < conf.median()
    y_sep[low] = torch.randint(0, 5, (int(low.sum()),), generator=torch.Generator().manual_seed(0))
    plain = AdaptiveTemperatureScaling(n_bins=4).fit(z, y_sep)
    assert plain.temperatures_[-1] == ATS_GRID[0]                       # the NLL optimum is T -> 0
    map_ = AdaptiveTemperatureScaling(n_bins=4, prior_std=0.5).fit(z, y_sep)
    assert map_.temperatures_[-1] > 2 * plain.temperatures_[-1]
    assert ATS_GRID[0] == pytest.approx(0.05) and ATS_GRID[-1] == pytest.approx(20.0) and 1.0 in np.round(ATS_GRID, 12)


# ------------------------------------------------------------------------------------------------ dtypes
CALIBRATORS = [
    ("ts_nll", lambda: TemperatureScaling()),
    ("ts_ece", lambda: TemperatureScaling(objective="ece")),
    ("ats_grid", lambda: AdaptiveTemperatureScaling(n_bins=4)),
    ("ats_grid_ece", lambda: AdaptiveTemperatureScaling(n_bins=4, objective="ece")),
    ("ats_lbfgs", lambda: AdaptiveTemperatureScaling(n_bins=4, solver="lbfgs")),
]
TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}


@pytest.mark.parametrize("name,make", CALIBRATORS, ids=[c[0] for c in CALIBRATORS])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_calibrators_keep_the_tensor_dtype(name, make, dtype):
    z, y = _overconfident(n=600, seed=10)
    zd = z.to(dtype)
    cal = make().fit(zd, y)                                              # fits on low-precision input too
    ref = make().fit(zd.double(), y)                                     # the same values, in float64
    assert cal.temperature_ == ref.temperature_                          # the fit itself runs in float64
    for method in ("transform", "predict_proba"):
        out = getattr(cal, method)(zd)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == z.shape
        expected = getattr(ref, method)(zd.double())
        torch.testing.assert_close(out.double(), expected, rtol=TOL[dtype], atol=TOL[dtype])
    if dtype in (torch.float64, torch.float32):                          # half precision may round near-ties
        assert torch.equal(cal.transform(zd).argmax(1), zd.argmax(1))


@pytest.mark.parametrize("name,make", CALIBRATORS, ids=[c[0] for c in CALIBRATORS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=lambda d: d.__name__)
def test_calibrators_keep_the_numpy_dtype(name, make, dtype):
    z, y = _overconfident(n=600, seed=11)
    zn = z.numpy().astype(dtype)
    cal = make().fit(zn, y.numpy())
    for method in ("transform", "predict_proba"):
        out = getattr(cal, method)(zn)
        assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == zn.shape
    p = cal.predict_proba(zn).astype(np.float64)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-2 if dtype == np.float16 else 1e-6)
    # lists are numpy-like input: float64 out
    assert cal.transform(zn[:3].tolist()).dtype == np.float64
