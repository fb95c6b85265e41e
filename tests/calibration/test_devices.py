"""CUDA round trips for the calibration components (opt-in `gpu` marker; skipped without a GPU; unverified in
the session that wrote it): results on the GPU equal the CPU ones, and outputs stay on the input's device."""

import pytest
import torch

from tenfold.calibration import AdaFocalLoss, AdaptiveTemperatureScaling, GCELoss, TemperatureScaling


def _cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


def _data(n=400, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, c, generator=g, dtype=torch.float64)
    return z, torch.multinomial(torch.softmax(z / 2, 1), 1, generator=g).squeeze(1)


@pytest.mark.gpu
def test_losses_on_cuda_match_cpu():
    dev = _cuda()
    z, y = _data(64)
    y[:5] = -100
    w = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    for make in (lambda: GCELoss(weight=w, label_smoothing=0.1), lambda: GCELoss(prior="ema", n_classes=5)):
        torch.testing.assert_close(make().to(dev)(z.to(dev), y.to(dev)).cpu(), make()(z, y))
    yk = y.clamp_min(0)
    ada, ada_gpu = AdaFocalLoss(n_bins=4), AdaFocalLoss(n_bins=4).to(dev)
    zv, yv = _data(300, seed=1)
    ada.update_from_validation(zv, yv)
    ada_gpu.update_from_validation(zv.to(dev), yv.to(dev))
    assert ada_gpu.gammas.device.type == "cuda"
    torch.testing.assert_close(ada_gpu(z.to(dev), yk.to(dev)).cpu(), ada(z, yk))
    torch.testing.assert_close(AdaFocalLoss()(z.to(dev), yk.to(dev)).cpu(), AdaFocalLoss()(z, yk))   # CPU module


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_calibrators_return_on_the_input_device_and_dtype(dtype):
    dev = _cuda()
    z, y = _data()
    for make in (TemperatureScaling, lambda: AdaptiveTemperatureScaling(n_bins=4)):
        cal = make().fit(z.to(dev, dtype), y.to(dev))
        ref = make().fit(z.to(dtype), y)
        out = cal.predict_proba(z.to(dev, dtype))
        assert out.device.type == "cuda" and out.dtype == dtype
        torch.testing.assert_close(out.cpu(), ref.predict_proba(z.to(dtype)))
