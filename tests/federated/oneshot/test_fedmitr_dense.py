"""The DENSE baseline: the ViT feature-moment forward against HF's hidden states, pooled statistics, the
statistics and adversarial terms against naive loops, the generator, and the interleaved synthesis + KD
(determinism, budget, that each loss term acts) with its error messages."""

import pytest
import torch

from tenfold.common.errors import UserError
from tenfold.federated.oneshot import ConvGenerator, DenseSynthesizer, TokenRelabelLoss, feature_stats
from tenfold.federated.oneshot.dense import adversarial_loss, forward_with_stats, stats_loss
from tenfold.models.hf_tiny import tiny_vit


def _vit(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(image_size=12, patch_size=4, num_channels=1, num_labels=5)
    args.update(kw)
    m, _ = tiny_vit("debug", **args)
    return m.eval()


@pytest.mark.parametrize("patch,size", [(4, 12), (7, 28)])
def test_forward_with_stats_matches_hf_hidden_states(patch, size):
    m = _vit(image_size=size, patch_size=patch)
    x = torch.randn(4, 1, size, size)
    logits, st = forward_with_stats(m, x)
    ref = m(x, output_hidden_states=True)
    torch.testing.assert_close(logits, ref.logits)
    assert st.shape == (len(m.vit.layers), 2, m.config.hidden_size)
    for layer in range(len(m.vit.layers)):
        h = ref.hidden_states[layer].reshape(-1, m.config.hidden_size)   # the layer's input, (B * T, D)
        torch.testing.assert_close(st[layer, 0], h.mean(0))
        torch.testing.assert_close(st[layer, 1], ((h - h.mean(0)) ** 2).mean(0))


def test_feature_stats_pooled_over_batches_equal_one_pass():
    m = _vit()
    x = torch.randn(11, 1, 12, 12)
    whole = forward_with_stats(m, x)[1].detach()
    torch.testing.assert_close(feature_stats(m, x, batch=4), whole, rtol=1e-5, atol=1e-6)


def test_stats_loss_against_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    stats = [torch.randn(2, 2, 3, generator=gen) for _ in range(3)]
    targets = [torch.randn(2, 2, 3, generator=gen) for _ in range(3)]
    ref = 0.0
    for s, t in zip(stats, targets):
        for layer in range(2):
            ref += float(((s[layer, 0] - t[layer, 0]) ** 2).sum().sqrt() + ((s[layer, 1] - t[layer, 1]) ** 2).sum().sqrt())
    assert abs(float(stats_loss(stats, targets)) - ref) < 1e-5


@pytest.mark.parametrize("student,ens", [
    ([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1]]),   # one disagrees, one agrees
    ([[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]], [[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]),   # both agree: zero
    ([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[0.1, 0.1, 0.8], [0.3, 0.6, 0.1]]),   # both disagree
])
def test_adversarial_loss_against_a_naive_loop(student, ens):
    s, p = torch.tensor(student), torch.tensor(ens)
    ref = 0.0
    for b in range(2):
        if s[b].argmax() != p[b].argmax():
            q = torch.softmax(s[b], -1)
            ref += float((p[b] * (p[b].log() - q.log())).sum())
    assert abs(float(adversarial_loss(s, p.log())) + ref / 2) < 1e-6


def test_generator_shape_range_and_seeded_reset():
    g = ConvGenerator(nz=8, ngf=4, img_size=12, nc=1)
    z = torch.randn(5, 8)
    g.reset(torch.Generator().manual_seed(1))
    a = g(z)
    assert a.shape == (5, 1, 12, 12) and float(a.detach().abs().max()) <= 1.0
    g.reset(torch.Generator().manual_seed(1))
    assert torch.equal(g(z), a)


def _run(seed=0, stats=True, **kw):
    models = [_vit(0), _vit(1)]
    x = torch.randn(6, 1, 12, 12)
    fs = [feature_stats(m, x) for m in models] if stats else None
    student = _vit(7)
    args = dict(rounds=2, g_steps=3, batch_size=4, nz=8, ngf=4, seed=seed)
    args.update(kw)
    out = DenseSynthesizer(**args).distill(models, student, feature_stats=fs, kd_steps=5, kd_batch=3)
    return out, student


def test_dense_is_deterministic_makes_the_pool_and_trains_the_student():
    (a, sa), (b, sb) = _run(), _run()
    assert torch.equal(a["synthetic"].x, b["synthetic"].x) and torch.equal(a["synthetic"].y, b["synthetic"].y)
    for k, v in sa.state_dict().items():
        assert torch.equal(v, sb.state_dict()[k]), k
    syn = a["synthetic"]
    assert len(syn) == 8 and syn.x.shape == (8, 1, 12, 12) and torch.all(syn.mask == 1)
    torch.testing.assert_close(syn.soft.sum(1), torch.ones(8))
    assert len(a["losses"]) == 2 and syn.stats["token_steps"] == 2 * 3 * 4 * 9 * 2   # rounds*steps*B*N*models
    fresh = _vit(7)
    assert any(not torch.equal(fresh.state_dict()[k], v) for k, v in sa.state_dict().items())


@pytest.mark.parametrize("change", [{"adv_weight": 0.0}, {"bn_weight": 0.0}, {"lr_g": 1e-2}])
def test_each_generator_term_changes_the_images(change):
    base, _ = _run()
    other, _ = _run(**change)
    assert not torch.equal(base["synthetic"].x, other["synthetic"].x)


def test_no_statistics_equals_zero_statistics_weight():
    a, _ = _run(stats=False)
    b, _ = _run(bn_weight=0.0)
    assert torch.equal(a["synthetic"].x, b["synthetic"].x)


def test_kd_uses_the_given_temperature():
    models, student = [_vit(0)], _vit(3)
    out = DenseSynthesizer(rounds=1, g_steps=1, batch_size=2, nz=4, ngf=2).distill(
        models, student, loss=TokenRelabelLoss(1.0, 1.0, 4.0), kd_steps=1, kd_batch=2)
    syn = out["synthetic"]
    # the loss of the single step, recomputed on the pool with the initial student at T=4 (KL term only)
    ref = TokenRelabelLoss(1.0, 0.0, 4.0)(_vit(3)(syn.x).logits, None, syn.y, syn.soft, syn.mask)
    assert abs(out["losses"][0] - float(ref.detach())) < 1e-5


@pytest.mark.parametrize("make,match", [
    (lambda: DenseSynthesizer(rounds=0), "rounds"),
    (lambda: DenseSynthesizer(g_steps=0), "g_steps"),
    (lambda: DenseSynthesizer(lr_g=0), "lr_g"),
    (lambda: DenseSynthesizer(adv_weight=-1), "adv_weight"),
    (lambda: DenseSynthesizer(oh_weight=0, bn_weight=0, adv_weight=0), "weights"),
    (lambda: DenseSynthesizer(ensemble_weighting="max"), "ensemble_weighting"),
    (lambda: ConvGenerator(img_size=10), "img_size"),
    (lambda: feature_stats(_vit(), torch.zeros(0, 1, 12, 12)), "x"),
    (lambda: DenseSynthesizer().distill([_vit()], _vit(num_labels=3)), "student"),
    (lambda: DenseSynthesizer().distill([_vit(), _vit(patch_size=6)], _vit()), "patch_size"),
    (lambda: DenseSynthesizer().distill([_vit()], _vit(), feature_stats=[]), "feature_stats"),
    (lambda: DenseSynthesizer().distill([_vit()], _vit(), feature_stats=[torch.zeros(2, 2, 5)]), "feature_stats"),
    (lambda: DenseSynthesizer().distill([_vit()], _vit(), kd_steps=0), "kd_steps"),
])
def test_errors(make, match):
    with pytest.raises(UserError, match=match):
        make()
