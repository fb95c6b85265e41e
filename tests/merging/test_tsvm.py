"""TSVM (Task Singular Vectors merge) against a naive NumPy float64 copy of the reference's layout (zero-padded
U, S, V^T, summed, each orthogonalised by its own SVD); identities (one task, already-orthogonal tasks, rank below
the task count); dtypes; input errors."""

import numpy as np
import pytest
import torch
from torch import nn

from tenfold.common.errors import UserError
from tenfold.merging import MERGES, merge, tsvm, tsvm_matrix


def _model_sd(seed=0):
    """A toy MLP (weights 8x6 and 4x8: 3 tasks keep 2 and 1 components) with biases and an int64 buffer."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    sd["steps"] = torch.tensor(7, dtype=torch.int64)
    return sd


def _experts(base, k=3, scale=0.05, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [{n: (t + scale * torch.randn(t.shape, generator=g) if t.is_floating_point() else t.clone())
             for n, t in base.items()} for _ in range(k)]


BASE = _model_sd()
EXPERTS = _experts(BASE)
FLOAT_KEYS = [k for k in BASE if BASE[k].is_floating_point()]


def _naive_matrix(taus):
    """The reference's layout, in float64: per task i, its top int(r / T) components written into zero matrices of
    the full rank r at block i; summed; U and V^T each replaced by P Q^T from its own SVD."""
    t = len(taus)
    m, n = taus[0].shape
    r = min(m, n)
    k = r // t
    sum_u, sum_s, sum_vh = np.zeros((m, r)), np.zeros(r), np.zeros((r, n))
    for i, tau in enumerate(taus):
        u, s, vh = np.linalg.svd(tau, full_matrices=False)
        sum_u[:, i * k:(i + 1) * k] = u[:, :k]
        sum_s[i * k:(i + 1) * k] = s[:k]
        sum_vh[i * k:(i + 1) * k, :] = vh[:k, :]
    pu, _, qu = np.linalg.svd(sum_u, full_matrices=False)
    pv, _, qv = np.linalg.svd(sum_vh, full_matrices=False)
    return pu @ qu @ np.diag(sum_s) @ pv @ qv


def _naive_tsvm(base, experts, w, scale):
    out = {}
    for k in FLOAT_KEYS:
        b = base[k].double().numpy()
        taus = [wi * (e[k].double().numpy() - b) for wi, e in zip(w, experts)]
        merged = _naive_matrix(taus) if b.ndim == 2 else sum(taus) / len(taus)
        out[k] = b + scale * merged
    return out


# A zero weight is left out: it makes a zero task vector, whose kept singular vectors the reference takes from LAPACK's
# arbitrary null-space basis (see test_expert_equal_to_base_in_one_weight_is_ignored_there).
@pytest.mark.parametrize("w,scale", [(None, 1.0), ([1.0, 0.5, 2.0], 0.7), ([0.2, 1.0, 1.0], 1.3)])
def test_tsvm_matches_naive_reference_layout(w, scale):
    got = tsvm(BASE, EXPERTS, weights=w, scale=scale)
    ref = _naive_tsvm(BASE, EXPERTS, w or [1.0] * 3, scale)
    for k in FLOAT_KEYS:
        assert np.allclose(got[k].double().numpy(), ref[k], atol=1e-5, rtol=1e-5), k
    assert got["steps"].dtype == torch.int64 and int(got["steps"]) == 7


@pytest.mark.parametrize("t,m,n", [(2, 7, 5), (3, 10, 9), (4, 6, 12), (5, 16, 16)])
def test_tsvm_matrix_matches_naive_on_odd_shapes(t, m, n):
    g = torch.Generator().manual_seed(t * 100 + m)
    taus = torch.randn(t, m, n, generator=g, dtype=torch.float64)
    ref = _naive_matrix([x.numpy() for x in taus])
    assert np.allclose(tsvm_matrix(taus).numpy(), ref, atol=1e-10)


def test_one_task_keeps_every_component():
    got = tsvm(BASE, EXPERTS[:1])
    for k in FLOAT_KEYS:
        assert torch.allclose(got[k], EXPERTS[0][k], atol=1e-6), k


def test_already_orthogonal_tasks_are_summed_after_truncation():
    """When the tasks' kept singular vectors are mutually orthogonal, P Q^T leaves them unchanged: the merge is the
    sum of each task's rank-k truncation."""
    g = torch.Generator().manual_seed(3)
    q_left, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    q_right, _ = torch.linalg.qr(torch.randn(9, 9, generator=g, dtype=torch.float64))
    taus = []
    for i in range(3):  # task i has rank 3 on its own columns [3i, 3i+3) of both bases; r = 9, so k = 3 keeps it all
        s = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64) * (i + 1)
        taus.append(q_left[:, 3 * i:3 * i + 3] @ torch.diag(s) @ q_right[:, 3 * i:3 * i + 3].T)
    assert torch.allclose(tsvm_matrix(torch.stack(taus)), sum(taus), atol=1e-10)


def test_rank_below_task_count_keeps_base():
    """min(m, n) < T: each task keeps int(r / T) = 0 components, so the reference's merged matrix is zero."""
    base = {"w": torch.zeros(2, 5), "b": torch.zeros(5)}
    g = torch.Generator().manual_seed(0)
    experts = [{"w": torch.randn(2, 5, generator=g), "b": torch.ones(5) * i} for i in range(3)]
    out = tsvm(base, experts, check_base=False)
    assert torch.equal(out["w"], base["w"])
    assert torch.allclose(out["b"], torch.ones(5))  # the mean of 0, 1, 2


def test_non_matrix_and_excluded_keys_get_the_mean():
    out = tsvm(BASE, EXPERTS, weights=[1.0, 2.0, 3.0], exclude_keys=["2.weight"])
    for k in ("0.bias", "2.bias", "2.weight"):
        mean = sum(w * (e[k] - BASE[k]) for w, e in zip([1.0, 2.0, 3.0], EXPERTS)) / 3
        assert torch.allclose(out[k], BASE[k] + mean, atol=1e-6), k


def test_bf16_inputs_keep_dtype_and_track_float32():
    to16 = lambda sd: {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in sd.items()}  # noqa: E731
    base, experts = to16(BASE), [to16(e) for e in EXPERTS]
    before = [{k: v.clone() for k, v in e.items()} for e in experts]
    out = tsvm(base, experts)
    up = lambda sd: {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}  # noqa: E731
    ref = tsvm(up(base), [up(e) for e in experts])
    for k in FLOAT_KEYS:
        assert out[k].dtype == torch.bfloat16
        assert torch.allclose(out[k].float(), ref[k], atol=1e-2, rtol=1e-2), k  # bf16 has 8 mantissa bits
    assert all(torch.equal(a[k], b[k]) for a, b in zip(experts, before) for k in a)


def test_registered_with_reference_and_defaults():
    info = MERGES.get("tsvm")
    assert info.fn is tsvm and "2412.00081" in info.reference and info.hyper == {"scale": 1.0}
    out = merge("tsvm", BASE, EXPERTS, **info.hyper)
    assert set(out) == set(BASE)


@pytest.mark.parametrize("kwargs,msg", [
    ({"weights": [1.0, -1.0, 1.0]}, "Invalid weights\\[1\\]"),
    ({"weights": [1.0, 1.0]}, "one weight per expert"),
    ({"scale": 0.0}, "Invalid scale"),
    ({"scale": float("inf")}, "Invalid scale"),
    ({"exclude_keys": ["nope"]}, "Invalid exclude_keys"),
    ({"rank_rtol": -1e-3}, "Invalid rank_rtol"),
])
def test_parameter_errors(kwargs, msg):
    with pytest.raises(UserError, match=msg):
        tsvm(BASE, EXPERTS, **kwargs)


def test_input_errors():
    with pytest.raises(UserError, match="empty list"):
        tsvm(BASE, [])
    stranger = _model_sd(seed=123)
    with pytest.raises(UserError, match="does not look branched from base"):
        tsvm(BASE, [EXPERTS[0], stranger])


def _rank(r, m, n, g):
    return torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, n, generator=g, dtype=torch.float64)


def test_low_rank_task_vectors_give_a_basis_free_result():
    """Rank-2 task vectors (merged LoRAs) under T = 3, k = 5: the reference's kept null-space vectors are arbitrary.
    Dropping them makes the merge equivariant, tsvm(Q tau R) = Q tsvm(tau) R for orthogonal Q, R, and equal to the
    merge of the rank-2 truncations computed with exactly the nonzero components."""
    g = torch.Generator().manual_seed(7)
    taus = torch.stack([_rank(2, 16, 15, g) for _ in range(3)])
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    r, _ = torch.linalg.qr(torch.randn(15, 15, generator=g, dtype=torch.float64))
    got = tsvm_matrix(taus)
    assert torch.allclose(tsvm_matrix(q @ taus @ r), q @ got @ r, atol=1e-9)
    # the same as concatenating only the two nonzero components per task by hand
    u, s, vh = torch.linalg.svd(taus, full_matrices=False)
    uc = torch.cat([u[i, :, :2] for i in range(3)], 1)
    vc = torch.cat([vh[i, :2] for i in range(3)], 0)
    pu, _, qu = torch.linalg.svd(uc, full_matrices=False)
    pv, _, qv = torch.linalg.svd(vc, full_matrices=False)
    assert torch.allclose(got, (pu @ qu) @ torch.diag(s[:, :2].reshape(-1)) @ (pv @ qv), atol=1e-9)
    # full-rank task vectors: nothing is dropped, so the default equals rank_rtol=0 (the reference)
    full = torch.randn(3, 16, 15, generator=g, dtype=torch.float64)
    assert torch.allclose(tsvm_matrix(full), tsvm_matrix(full, rank_rtol=0), atol=1e-12)


def test_expert_equal_to_base_in_one_weight_is_ignored_there():
    base = {"w": torch.zeros(8, 6)}
    g = torch.Generator().manual_seed(1)
    e = {"w": torch.randn(8, 6, generator=g)}
    out = tsvm(base, [{"w": torch.zeros(8, 6)}, e], check_base=False)["w"]
    u, s, vh = torch.linalg.svd(e["w"], full_matrices=False)  # k = 3 of the live task, orthogonal to nothing else
    assert torch.allclose(out, (u[:, :3] * s[:3]) @ vh[:3], atol=1e-5)


def test_lora_stages_that_share_a_parent_give_a_basis_free_result():
    """The SSR merge's inputs: S, S + D, S + A (all of low rank, the last two containing the first). The tasks' kept
    singular vectors are linearly dependent, so the reference's polar factor depends on the SVD's basis; ours (over
    the non-zero singular values) is equivariant under orthogonal Q, R, in float64 and in float32."""
    g = torch.Generator().manual_seed(3)
    s_, d_, a_ = (_rank(4, 96, 80, g) for _ in range(3))
    taus = torch.stack([s_, s_ + d_, s_ + a_])
    q, _ = torch.linalg.qr(torch.randn(96, 96, generator=g, dtype=torch.float64))
    r, _ = torch.linalg.qr(torch.randn(80, 80, generator=g, dtype=torch.float64))
    for dtype, tol in ((torch.float64, 1e-8), (torch.float32, 1e-3)):
        got = tsvm_matrix(taus.to(dtype)).double()
        turned = (q.T @ tsvm_matrix((q @ taus @ r).to(dtype)).double() @ r.T)
        assert float((turned - got).norm() / got.norm()) < tol
