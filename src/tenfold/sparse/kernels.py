"""CUDA path of ELAS: the 2:4-sparse activation x dense GEMM on torch's semi-structured sparse tensors.

`torch.sparse.to_sparse_semi_structured` (CUTLASS or cuSPARSELt backend) is CUDA only, takes fp16/bf16
(and int8) 2-D tensors whose shape is a multiple of the backend's minimum tile, and needs a GPU the pinned
torch build supports (sm8x is known-good; sm90 depends on the cuSPARSELt build, see
pytorch/pytorch#132009, #132928). `semi_structured_status` probes all of that once per device and says
why it fails; `resolve_backend` turns `backend="auto"` into "cuda" or "reference" with that message.

Only the forward GEMM z = s @ A2^T (s: N x d_ff, 2:4 along d_ff) runs sparse here; the backward GEMMs
run dense (which backward GEMMs ELAS makes sparse is not stated in what we could read).

**Unverified**: no GPU was available when this was written; the tests that exercise it are marked
`gpu` and were skipped. On CPU this module is only imported for `resolve_backend`.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from tenfold.common.errors import UserError

BACKENDS = ("auto", "reference", "cuda")
CUDA_DTYPES = (torch.float16, torch.bfloat16)
ROW_TILE = 32   # fp16/bf16 sparse operand: rows a multiple of 32 (we pad the token dim) ...
COL_TILE = 64   # ... and columns (the 2:4 dim, d_ff) a multiple of 64 (we refuse otherwise)


@functools.lru_cache(maxsize=None)
def semi_structured_status(device_index: int = 0) -> tuple[bool, str]:
    """Whether the pinned torch runs a 2:4 semi-structured matmul on this GPU, and why not.

    Returns
    -------
    ok : bool
    reason : str
        "" when ok, else a one-line explanation (no CUDA, compute capability, backend error).
    """
    if not torch.cuda.is_available():
        return False, "CUDA is not available (torch %s)" % torch.__version__
    try:
        from torch.sparse import to_sparse_semi_structured
    except ImportError as e:  # pragma: no cover - very old torch
        return False, f"torch.sparse.to_sparse_semi_structured missing: {e}"
    major, minor = torch.cuda.get_device_capability(device_index)
    if major < 8:
        return False, f"GPU compute capability {major}.{minor} < 8.0 has no sparse tensor cores"
    try:
        dev = torch.device("cuda", device_index)
        a = torch.tensor([0, 0, 1, 1], dtype=torch.float16, device=dev).tile(64, 32)  # (64, 128), 2:4 rows
        b = torch.randn(128, 64, dtype=torch.float16, device=dev)
        out = torch.mm(to_sparse_semi_structured(a), b)
        if not torch.allclose(out, a @ b, atol=1e-2, rtol=1e-2):
            return False, "2:4 matmul ran but disagreed with the dense product"
    except Exception as e:  # noqa: BLE001 - any backend failure means "not usable here"
        name = torch.cuda.get_device_name(device_index)
        return False, f"2:4 semi-structured matmul failed on {name} (sm{major}{minor}): {type(e).__name__}: {e}"
    return True, ""


def resolve_backend(backend: str, like: Tensor) -> str:
    """"reference" or "cuda" for a sparse GEMM on `like` (the activation about to be multiplied).

    "auto" picks "cuda" when `like` is a CUDA fp16/bf16 tensor and the probe passes, else "reference"
    (warning once with the reason when `like` is on CUDA). "cuda" raises `UserError` with the reason.
    """
    if backend not in BACKENDS:
        raise UserError(f"Invalid backend: {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "reference":
        return "reference"
    reason = ""
    if like.dtype not in CUDA_DTYPES:
        reason = f"dtype {like.dtype} is not supported by the 2:4 kernels; expected float16 or bfloat16"
    elif not like.is_cuda:
        reason = f"tensor is on {like.device}, the 2:4 kernels are CUDA only"
    else:
        ok, why = semi_structured_status(like.device.index or 0)
        reason = "" if ok else why
    if not reason:
        return "cuda"
    if backend == "cuda":
        raise UserError(f"Invalid backend: 'cuda' cannot run here: {reason}; use backend='auto' or 'reference'")
    if like.is_cuda:
        _warn_once(reason)
    return "reference"


@functools.lru_cache(maxsize=None)
def _warn_once(reason: str) -> None:
    warnings.warn(f"ELAS: falling back to the masked-dense reference path: {reason}", RuntimeWarning, stacklevel=3)


def check_cuda_shape(d_ff: int) -> None:
    """Refuse a feature width the semi-structured tile cannot take (before any work)."""
    if d_ff % COL_TILE:
        raise UserError(f"Invalid intermediate_size: {d_ff}; the CUDA 2:4 path needs a multiple of {COL_TILE}")


def sparse24_mm(s: Tensor, w: Tensor) -> Tensor:
    """z = s @ w.T with s (N, K) already 2:4 along K, on the sparse tensor cores.

    Parameters
    ----------
    s : Tensor of shape (N, K)
        Masked activation (exactly <= 2 non-zeros in every group of 4 along K), CUDA fp16/bf16.
    w : Tensor of shape (R, K)
        Dense weight (the first factor A2 of the down projection).

    Returns
    -------
    Tensor of shape (N, R)
    """
    from torch.sparse import to_sparse_semi_structured

    check_cuda_shape(s.shape[1])
    n = s.shape[0]
    pad = (-n) % ROW_TILE
    if pad:
        s = torch.cat([s, s.new_zeros(pad, s.shape[1])])
    out = torch.mm(to_sparse_semi_structured(s.contiguous()), w.t().contiguous())
    return out[:n]


def time_fwd_bwd(fn, inputs: list[Tensor], repeats: int = 20) -> float:
    """Median milliseconds of fn(*inputs).sum().backward() on CUDA (events, after 3 warm-up calls)."""
    import statistics

    times = []
    for i in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*inputs).float().sum().backward()
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


@torch.no_grad()
def time_forward(fn, inputs: list[Tensor], repeats: int = 20) -> float:
    """Median milliseconds of an inference call fn(*inputs) on CUDA (events, no grad, after 3 warm-up calls)."""
    import statistics

    times = []
    for i in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(*inputs)
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    return statistics.median(times)
