import pytest
import torch

from tenfold.federated.maths import delta_equivalent, dispersion, relaxed_start, weighted_average


def _sd(seed):
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 2, generator=g), "b": torch.randn(2, generator=g), "n": torch.tensor(7)}


def test_relaxed_start_formula_and_identities():
    w, last = _sd(0), _sd(1)
    out = relaxed_start(w, last, 0.1)
    for k in ("w", "b"):
        assert torch.allclose(out[k], w[k] + 0.1 * (w[k] - last[k]))
    assert out["n"] == 7                                           # non-float entries copied
    assert all(torch.equal(relaxed_start(w, last, 0.0)[k], w[k]) for k in w)   # beta 0: FedAvg's start
    assert all(torch.equal(relaxed_start(w, None, 0.3)[k], w[k]) for k in w)   # first participation


@pytest.mark.parametrize("beta", [-0.1, 1.0, 2.0])
def test_relaxed_start_rejects_beta(beta):
    with pytest.raises(ValueError, match="Invalid beta"):
        relaxed_start(_sd(0), _sd(1), beta)


def test_weighted_average_and_dispersion_match_naive():
    sds, ws = [_sd(i) for i in range(3)], [1.0, 2.0, 3.0]
    avg = weighted_average(sds, ws)
    naive = (sds[0]["w"] * 1 + sds[1]["w"] * 2 + sds[2]["w"] * 3) / 6
    assert torch.allclose(avg["w"], naive, atol=1e-6)
    d = sum(w / 6 * sum(float(((sd[k] - avg[k]) ** 2).sum()) for k in ("w", "b")) for sd, w in zip(sds, ws))
    assert dispersion(sds, ws) == pytest.approx(d, rel=1e-6)
    assert dispersion([sds[0], sds[0]]) == 0.0


def test_average_of_delta_uploads_is_global_plus_mean_update():
    w = _sd(0)
    starts = [relaxed_start(w, _sd(10 + i), 0.1) for i in range(2)]
    locals_ = [{k: (v + 0.5 if torch.is_floating_point(v) else v) for k, v in s.items()} for s in starts]
    ups = [delta_equivalent(w, s, l) for s, l in zip(starts, locals_)]
    avg = weighted_average(ups, [1, 1])
    assert torch.allclose(avg["w"], w["w"] + 0.5)
