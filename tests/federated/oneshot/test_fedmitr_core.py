"""FedMITR core: the token-dropping ViT forward against HF's own, sparse inversion (halting really skips work, as
seen by the first encoder layer, and freezes pixels), the token-relabel loss against a naive loop, determinism/
save-reuse, the mask the student is trained with, progress bars (FedMITR and DENSE), and error messages."""

import pytest
import torch
from torch.nn import functional as F

from tenfold.common.errors import UserError
from tenfold.federated.oneshot import (DenseSynthesizer, SparseInverter, SyntheticSet, TokenRelabelLoss,
                                      one_shot_distill, vit_forward)
from tenfold.federated.oneshot.fedmitr import (_flip_index, attention_mask, ensemble_forward, ensemble_weights,
                                               patch_mask_to_pixels, vit_geometry)
from tenfold.models.hf_tiny import tiny_vit


def _vit(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(image_size=12, patch_size=4, num_channels=1, num_labels=5)
    args.update(kw)
    m, _ = tiny_vit("debug", **args)
    return m.eval()


@pytest.mark.parametrize("patch,size", [(4, 12), (7, 28), (2, 8)])
def test_forward_matches_hf_and_cls_attention(patch, size):
    m = _vit(image_size=size, patch_size=patch)
    x = torch.randn(3, 1, size, size)
    n = (size // patch) ** 2
    out = vit_forward(m, x, cls_attention=True)
    full = vit_forward(m, x, torch.arange(n).expand(3, n))
    torch.testing.assert_close(out["logits"], m(x).logits)
    torch.testing.assert_close(full["logits"], m(x).logits)
    m.set_attn_implementation("eager")
    ref = m(x, output_attentions=True).attentions[-1][:, :, 0, 1:].mean(1)     # (B, N), HF's own weights
    torch.testing.assert_close(out["cls_attn"], ref)
    assert out["tokens"].shape == (3, n, m.config.hidden_size)


def test_dropped_tokens_equal_a_naive_shorter_sequence():
    m = _vit()
    x = torch.randn(2, 1, 12, 12)
    keep = torch.tensor([[0, 4, 8], [1, 2, 7]])
    emb = m.vit.embeddings(x)                                                     # (2, 10, D) from HF
    seq = torch.stack([torch.cat([emb[b, :1], emb[b, 1:][keep[b]]]) for b in range(2)])
    h = seq
    for layer in m.vit.layers:
        h = layer(h)
    ref = m.classifier(m.vit.layernorm(h)[:, 0])
    torch.testing.assert_close(vit_forward(m, x, keep)["logits"], ref)


def test_flip_index_matches_torch_flip():
    grid = 3
    img = torch.arange(grid * grid).float().view(1, 1, grid, grid)              # patch size 1: pixel = patch
    flipped = torch.flip(img, dims=(-1,)).flatten()
    keep = torch.tensor([[0, 2, 4, 7]])
    # the patch that index k points at in the original sits at _flip_index(k) in the flipped image
    assert torch.equal(flipped[_flip_index(keep, grid)], img.flatten()[keep])


@pytest.mark.parametrize("cls_w,dense_w,t", [(1.0, 1.0, 1.0), (0.5, 2.0, 3.0), (1.0, 0.0, 2.0), (0.0, 1.0, 1.0)])
def test_token_relabel_loss_matches_naive_loop(cls_w, dense_w, t):
    torch.manual_seed(0)
    b, n, c = 3, 4, 5
    cls, tok = torch.randn(b, c), torch.randn(b, n, c)
    y, soft = torch.randint(0, c, (b,)), torch.softmax(torch.randn(b, c), -1)
    mask = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]]).float()
    ref = 0.0
    for i in range(b):
        target = torch.softmax(torch.log(soft[i]) / t, -1)
        kl = sum(target[j] * (torch.log(target[j]) - F.log_softmax(cls[i] / t, -1)[j]) for j in range(c))
        ref += cls_w * t * t * kl / b
        for k in range(n):
            lp = F.log_softmax(tok[i, k], -1)
            term = -lp[y[i]] if mask[i, k] else -(soft[i] * lp).sum()
            ref += dense_w * term / (b * n)
    got = TokenRelabelLoss(cls_w, dense_w, t)(cls, tok if dense_w else None, y, soft, mask)
    torch.testing.assert_close(got, torch.as_tensor(ref, dtype=got.dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ratio,prune_at,n,expected_keep", [(0.0, (0.5,), 9, 9), (0.5, (0.5,), 9, 5),
                                                            (0.3, (0.3, 0.6), 9, 5), (0.9, (0.2, 0.4, 0.6), 9, 1)])
def test_keep_schedule_and_work(ratio, prune_at, n, expected_keep):
    models = [_vit(0), _vit(1)]
    inv = SparseInverter(steps=20, batch_size=4, prune_at=prune_at, prune_ratio=ratio, seed=0)
    s = inv.synthesize(models, 4)
    assert s.mask.shape == (4, n) and torch.all(s.mask.sum(1) == expected_keep)
    assert inv.keep_count(n) == expected_keep
    dense = SparseInverter(steps=20, batch_size=4, prune_ratio=0.0, seed=0).synthesize(models, 4)
    if expected_keep < n:     # halted tokens are not forwarded: less work, ranking passes included
        assert s.stats["token_steps"] < dense.stats["token_steps"]
    else:
        assert s.stats["token_steps"] == dense.stats["token_steps"]


# K per step, written out from the schedule: prune steps are round(f * steps); a prune step runs a ranking pass on
# the K patches still kept, then the update pass on ceil(K * (1 - ratio)) of them. Sequence length seen = 1 + K.
@pytest.mark.parametrize("steps,prune_at,ratio,lengths", [
    (6, (0.5,), 0.0, [10] * 6),                                                   # dense: no ranking pass, N + 1
    (10, (0.3, 0.6), 0.5, [10, 10, 10, 6, 6, 6, 6, 4, 4, 4, 4, 4]),             # steps 3, 6: 9 -> 5 -> 3
    (5, (0.2, 0.4, 0.6), 0.9, [10, 2, 2, 2, 2, 2, 2, 2]),                       # steps 1, 2, 3: 9 -> 1 -> 1 -> 1
])
def test_first_encoder_layer_sees_one_plus_k_tokens(steps, prune_at, ratio, lengths):
    # the sequence the encoder really runs on (not a count the code keeps): dropped tokens, not masked attention
    models = [_vit(0), _vit(1)]
    seen = {i: [] for i in range(len(models))}

    def hook(i):
        def record(module, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]                    # (B, T, D)
            seen[i].append(tuple(h.shape[:2]))
        return record

    handles = [m.vit.layers[0].register_forward_pre_hook(hook(i), with_kwargs=True) for i, m in enumerate(models)]
    try:
        inv = SparseInverter(steps=steps, batch_size=4, prune_at=prune_at, prune_ratio=ratio, seed=0)
        s = inv.synthesize(models, 6)
    finally:
        for h in handles:
            h.remove()
    # batches of 4 and 2 images, then one pass on all 6 full images for the soft labels
    want = [(4, t) for t in lengths] + [(2, t) for t in lengths] + [(6, 10)]
    for i in seen:
        assert seen[i] == want, i
    assert torch.all(s.mask.sum(1) == lengths[-1] - 1)


def test_halted_patches_are_frozen():
    models = [_vit(0)]
    geo = vit_geometry(models)
    inv = SparseInverter(steps=5, batch_size=3, prune_at=(0.01,), prune_ratio=0.5, flip=False, tv_weight=1.0,
                         l2_weight=1.0)                                 # pruning at step 1, before any update
    w = ensemble_weights(None, 1, 5)
    x, mask, _ = inv.invert_batch(models, torch.tensor([0, 1, 2]), geo, w, torch.Generator().manual_seed(7))
    x0 = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(7))
    halted = patch_mask_to_pixels(1 - mask, 4, 3).bool()
    assert halted.any() and torch.equal(x[halted], x0[halted])           # priors do not move halted pixels either
    assert not torch.equal(x[~halted], x0[~halted])


@pytest.mark.parametrize("prune_at", [(0.5,), (0.3, 0.7)])
def test_halted_patches_stay_at_their_value_when_halted_despite_adam_momentum(prune_at, monkeypatch):
    # halting mid-run: Adam's first moment would keep moving pixels whose gradient is zeroed; they must not move
    import tenfold.federated.oneshot.fedmitr as fm

    models = [_vit(0)]
    geo = vit_geometry(models)
    inv = SparseInverter(steps=10, batch_size=3, prune_at=prune_at, prune_ratio=0.5, flip=False)
    snaps, real = [], fm.ensemble_forward

    def spy(ms, x, keep, w, cls_attention=False):  # the ranking pass sees x exactly as it is at halting time
        if cls_attention:
            snaps.append(x.detach().clone())
        return real(ms, x, keep, w, cls_attention=cls_attention)

    monkeypatch.setattr(fm, "ensemble_forward", spy)
    x, mask, _ = inv.invert_batch(models, torch.tensor([0, 1, 2]), geo, ensemble_weights(None, 1, 5),
                                  torch.Generator().manual_seed(7))
    assert len(snaps) == len(prune_at)
    halted = patch_mask_to_pixels(1 - mask, 4, 3).bool()
    assert halted.any() and not torch.equal(x[~halted], snaps[-1][~halted])
    # every pixel halted at the last ranking pass keeps the value it had then (earlier halts: earlier values)
    assert torch.equal(x[halted], snaps[-1][halted])


def test_synthesis_deterministic_save_and_reuse_gives_identical_student(tmp_path):
    models = [_vit(0), _vit(1)]
    inv = SparseInverter(steps=4, batch_size=4, prune_at=(0.5,), prune_ratio=0.5, seed=3)
    a, b = inv.synthesize(models, 6), inv.synthesize(models, 6)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask) and torch.equal(a.y, b.y)
    a.save(tmp_path / "syn.pt")
    loaded = SyntheticSet.load(tmp_path / "syn.pt")
    students = []
    for syn in (a, loaded):
        st = _vit(9)
        one_shot_distill(models, st, None, synthetic=syn, epochs=2, batch_size=4, seed=1)
        students.append(st.state_dict())
    for k in students[0]:
        assert torch.equal(students[0][k], students[1][k]), k


class _RecordingLoss(TokenRelabelLoss):
    """TokenRelabelLoss that keeps every mask it is called with."""

    def __init__(self):
        super().__init__(1.0, 1.0, 1.0)
        self.masks = []

    def forward(self, cls_logits, token_logits, y, soft, mask):
        self.masks.append(mask.clone())
        return super().forward(cls_logits, token_logits, y, soft, mask)


def _rows(t):
    return sorted(map(tuple, t.tolist()))


def test_one_shot_distill_trains_and_relabel_uses_posthoc_mask():
    models = [_vit(0), _vit(1)]
    st = _vit(5)
    before = {k: v.clone() for k, v in st.state_dict().items()}
    rec = _RecordingLoss()
    out = one_shot_distill(models, st, SparseInverter(steps=3, batch_size=4, prune_ratio=0.0), n_images=4,
                           epochs=3, batch_size=4, posthoc_keep=0.5, loss=rec)
    assert out["aux_head"] is not None and len(out["losses"]) == 3 and len(out["synthetic"]) == 4
    assert any(not torch.equal(before[k], v) for k, v in st.state_dict().items())
    assert torch.all(out["synthetic"].mask == 1)                          # dense inversion: nothing halted
    m = attention_mask(models, out["synthetic"].x, 0.5)
    assert torch.all(m.sum(1) == 4)          # round(9 * 0.5) = 4 high-information patches per image
    assert torch.equal(out["train_mask"], m)
    assert len(rec.masks) == 3 and all(_rows(r) == _rows(m) for r in rec.masks)   # one batch = all 4, shuffled


def test_one_shot_distill_trains_a_sparse_set_with_its_own_mask():
    models = [_vit(0), _vit(1)]
    syn = SparseInverter(steps=4, batch_size=4, prune_at=(0.5,), prune_ratio=0.5, seed=2).synthesize(models, 4)
    assert torch.all(syn.mask.sum(1) == 5)
    rec = _RecordingLoss()
    out = one_shot_distill(models, _vit(5), None, synthetic=syn, epochs=2, batch_size=4, posthoc_keep=0.5, loss=rec)
    assert torch.equal(out["train_mask"], syn.mask)                       # not the post-hoc top-50% mask
    assert len(rec.masks) == 2 and all(_rows(r) == _rows(syn.mask) for r in rec.masks)


def _recording_progress():
    bars = []

    def progress(iterable, desc):
        bars.append([desc, 0])
        for item in iterable:
            bars[-1][1] += 1
            yield item

    return bars, progress


@pytest.mark.parametrize("run,want", [
    (lambda ms, p: SparseInverter(steps=2, batch_size=4).synthesize(ms, 10, progress=p), [["inversion", 3]]),
    (lambda ms, p: one_shot_distill(ms, _vit(5), SparseInverter(steps=2, batch_size=4), n_images=5, epochs=3,
                                    batch_size=4, progress=p), [["inversion", 2], ["distillation", 3]]),
    (lambda ms, p: one_shot_distill(ms, _vit(5), None, synthetic=SparseInverter(steps=1, batch_size=4).synthesize(
        ms, 4), epochs=2, batch_size=4, progress=p), [["distillation", 2]]),
    (lambda ms, p: DenseSynthesizer(rounds=3, g_steps=1, batch_size=2, nz=4, ngf=2).distill(
        ms, _vit(5), kd_steps=3, kd_batch=2, progress=p), [["DENSE rounds", 3]]),
])
def test_progress_bars(run, want):
    bars, progress = _recording_progress()
    run([_vit(0), _vit(1)], progress)
    assert bars == want




def test_ensemble_weights_and_mixture():
    counts = torch.tensor([[10, 0, 5], [0, 10, 5]])
    w = ensemble_weights(counts, 2, 3, "label_count")
    torch.testing.assert_close(w.sum(0), torch.ones(3))
    assert w[0, 0] > 0.99 and w[1, 1] > 0.99 and abs(w[0, 2] - 0.5) < 1e-6
    models = [_vit(0, num_labels=3), _vit(1, num_labels=3)]
    x = torch.randn(2, 1, 12, 12)
    p = torch.stack([torch.softmax(m(x).logits, -1) for m in models]).mean(0)
    torch.testing.assert_close(ensemble_forward(models, x)["log_prob"].exp(), p)


@pytest.mark.parametrize("make,match", [
    (lambda: SparseInverter(prune_ratio=1.0), "prune_ratio"),
    (lambda: SparseInverter(prune_ratio=-0.1), "prune_ratio"),
    (lambda: SparseInverter(prune_at=(1.5,)), "prune_at"),
    (lambda: SparseInverter(steps=0), "steps"),
    (lambda: SparseInverter(ensemble_weighting="median"), "ensemble_weighting"),
    (lambda: TokenRelabelLoss(0.0, 0.0), "weights"),
    (lambda: TokenRelabelLoss(temperature=0), "temperature"),
    (lambda: vit_geometry([]), "client_models"),
    (lambda: vit_geometry([_vit(), _vit(num_labels=7)]), "num_labels"),
    (lambda: vit_geometry([_vit(), _vit(patch_size=6)]), "patch_size"),
    (lambda: vit_geometry([torch.nn.Linear(2, 2)]), "ViTForImageClassification"),
    (lambda: one_shot_distill([_vit()], _vit(num_labels=3), None, synthetic=None), "student"),
    (lambda: one_shot_distill([_vit()], _vit(), None), "inverter"),
    (lambda: one_shot_distill([_vit()], _vit(), None, train_on="half"), "train_on"),
    (lambda: ensemble_weights(None, 2, 3, "label_count"), "label_counts"),
])
def test_errors(make, match):
    with pytest.raises(UserError, match=match):
        make()
