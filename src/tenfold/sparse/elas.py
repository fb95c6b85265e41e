"""ELAS: low-rank LLaMA layers with a squared-ReLU FFN whose activation is 2:4 sparse, as module swaps.

Paper: Li, Yin, Shen, Xu, Liu, Wang, Liu, Wang, *ELAS: Efficient pre-training of Low-rank LLMs via 2:4
Activation Sparsity*, arXiv 2605.03667 (2026). No reference code was found (the abstract's "ELAS Repo"
link did not resolve); the module-swap API follows torchao's SemiSparseLinear /
swap_linear_with_semi_sparse_linear pattern.

Implemented: LORO-style low-rank linears W = B·A (no nonlinearity between factors; optionally CoLA's
B·σ(A·x) as a baseline), exact magnitude top-2-of-4 sparsity along the feature dim with a
straight-through (or masked) backward and deterministic tie-breaking, a compressed 2:4 format (values
+ 4-bit index metadata per group), a squared-ReLU FFN whose fused core stores only the compressed
activation for the backward (and recomputes the pre-activation from the rank-r input), a dense warm-up
driven by a step counter, `elasify`/`deelasify` on an HF LlamaForCausalLM by fully-qualified name, and
save/load as an HF checkpoint plus `elas_config.json`. The CUDA sparse GEMM lives in `kernels.py`.
Defaults follow the paper where a source gives the element (docs/elas.md lists each with its source): Xavier
factors, rank hidden/4, a squared-ReLU FFN widened 1.5x to SwiGLU's dense parameter count, 1000 dense steps. The
LORO optimizer the paper trains with is `tenfold.optim.LORO`. Not implemented: sparse backward GEMMs, transposable
2:4 patterns, FP8.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tenfold.common.config import field
from tenfold.common.errors import UserError, check_choice
from tenfold.sparse.kernels import BACKENDS, resolve_backend, sparse24_mm

FFN_KINDS = ("srelu24", "srelu", "swiglu")
GRADS = ("ste", "masked")
INITS = ("xavier", "svd", "cola")
INNER_ACTS = ("", "silu")
DEFAULT_TARGETS = ("model.layers.*.self_attn.*_proj", "model.layers.*.mlp")
CONFIG_NAME = "elas_config.json"


# ---- 2:4 selection and the compressed format --------------------------------------------------------
def _groups(x: Tensor, name: str = "x") -> Tensor:
    if x.shape[-1] % 4:
        raise UserError(f"Invalid {name}: feature dim {x.shape[-1]} is not divisible by 4 (2:4 groups)")
    return x.reshape(*x.shape[:-1], x.shape[-1] // 4, 4)


def _keep_groups(x: Tensor) -> Tensor:
    """(..., G, 4) bool: top-2 |x| per group, ties to the lower index (6 pairwise comparisons per group)."""
    a0, a1, a2, a3 = _groups(x).abs().unbind(-1)
    # b_ij (i < j): element j beats element i; otherwise i beats j (i wins ties)
    b01, b02, b03, b12, b13, b23 = a1 > a0, a2 > a0, a3 > a0, a2 > a1, a3 > a1, a3 > a2
    r0 = b01.to(torch.uint8) + b02 + b03          # how many of the other three beat element 0
    r1 = (~b01).to(torch.uint8) + b12 + b13
    r2 = (~b02).to(torch.uint8) + ~b12 + b23
    r3 = (~b03).to(torch.uint8) + ~b13 + ~b23
    return torch.stack([r0 < 2, r1 < 2, r2 < 2, r3 < 2], -1)


def mask_24(x: Tensor) -> Tensor:
    """Boolean mask keeping the 2 largest |x| in every group of 4 contiguous features (last dim).

    Ties go to the lower index, so the mask is deterministic (zeros included: an all-zero group keeps
    its first two positions).

    Parameters
    ----------
    x : Tensor of shape (..., K), K divisible by 4

    Returns
    -------
    Tensor of shape (..., K), dtype bool, exactly K/2 True per row

    Examples
    --------
    >>> mask_24(torch.tensor([[1., -3., 2., 0.5]])).tolist()
    [[False, True, True, False]]
    """
    return _keep_groups(x).reshape(x.shape)


# pattern p = k0 + 2 k1 + 4 k2 + 8 k3 of a 2-of-4 mask -> its two kept indices, ascending
_LUT = torch.zeros(16, 2, dtype=torch.long)
for _i in range(4):
    for _j in range(_i + 1, 4):
        _LUT[(1 << _i) | (1 << _j)] = torch.tensor([_i, _j])


def _compress(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(values (..., G, 2), meta uint8 (..., ceil(G/2)), keep mask (..., K)) of x under its 2:4 mask."""
    keep = _keep_groups(x)
    k = keep.to(torch.uint8)
    pattern = (k[..., 0] | (k[..., 1] << 1) | (k[..., 2] << 2) | (k[..., 3] << 3)).long()
    idx = _LUT.to(x.device)[pattern]                          # (..., G, 2) kept positions, ascending
    values = _groups(x).gather(-1, idx)
    code = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8)  # two 2-bit indices per group (4 bits)
    if code.shape[-1] % 2:
        code = torch.cat([code, code.new_zeros(*code.shape[:-1], 1)], -1)
    meta = code[..., 0::2] | (code[..., 1::2] << 4)  # two groups per byte, as the CUTLASS metadata
    return values, meta, keep.reshape(x.shape)


def compress_24(x: Tensor) -> tuple[Tensor, Tensor]:
    """The 2:4-sparse form of x: kept values plus 4 bits of index metadata per group of 4.

    Parameters
    ----------
    x : Tensor of shape (..., K), K divisible by 4

    Returns
    -------
    values : Tensor of shape (..., K/4, 2), x's dtype (the kept entries, in index order)
    meta : Tensor of shape (..., ceil(K/8)), uint8 (two groups per byte)

    For fp32 this is 9/16 of the dense bytes (8 value bytes + 0.5 metadata bytes per 4 features).
    """
    values, meta, _ = _compress(x)
    return values, meta


def decompress_24(values: Tensor, meta: Tensor, k: int) -> Tensor:
    """Dense (..., k) tensor from `compress_24` output (zeros at the dropped positions)."""
    g = values.shape[-2]
    code = torch.stack([meta & 15, meta >> 4], -1).reshape(*meta.shape[:-1], -1)[..., :g].long()
    idx = torch.stack([code & 3, code >> 2], -1)
    out = values.new_zeros(*values.shape[:-1], 4)
    out.scatter_(-1, idx, values)
    return out.reshape(*values.shape[:-2], k)


class _Sparse24Fn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grad):
        keep = mask_24(x)
        ctx.grad = grad
        if grad == "masked":
            ctx.save_for_backward(keep)
        return x.masked_fill(~keep, 0)

    @staticmethod
    def backward(ctx, g):
        if ctx.grad == "masked":
            (keep,) = ctx.saved_tensors
            g = g.masked_fill(~keep, 0)
        return g, None


def sparse24(x: Tensor, grad: Literal["ste", "masked"] = "ste") -> Tensor:
    """x with all but the top-2-of-4 |x| zeroed (last dim); backward straight-through or masked.

    Parameters
    ----------
    x : Tensor of shape (..., K), K divisible by 4
    grad : {"ste", "masked"}, default="ste"
        "ste" passes the gradient unchanged to every entry (torchao/xformers STE semantics, what ELAS
        uses per the notes); "masked" passes it only to the kept entries.

    Examples
    --------
    >>> sparse24(torch.tensor([4., 1., 1., 3.]))
    tensor([4., 0., 0., 3.])
    """
    check_choice("grad", grad, GRADS)
    return _Sparse24Fn.apply(x, grad)


class Sparse24(nn.Module):
    """Module form of `sparse24` (for use inside hand-built FFNs)."""

    def __init__(self, grad: Literal["ste", "masked"] = "ste"):
        super().__init__()
        check_choice("grad", grad, GRADS)
        self.grad = grad

    def forward(self, x: Tensor) -> Tensor:
        return sparse24(x, self.grad)


def squared_relu(x: Tensor) -> Tensor:
    """ReLU(x)^2 (the FFN activation of ELAS and Primer)."""
    return torch.relu(x).square()


# ---- low-rank linear ----------------------------------------------------------------------------------
class LowRankLinear(nn.Module):
    """y = B(A(x)) with A: in -> rank, B: rank -> out (LORO-style, no nonlinearity between the factors).

    Parameters
    ----------
    in_features, out_features : int
    rank : int
        0 < rank < min(in_features, out_features).
    bias : bool, default=False
        Bias on the output factor B.
    inner_act : {"", "silu"}, default=""
        "" gives W = B·A (ELAS/LORO); "silu" puts an activation between the factors (CoLA, a baseline;
        such a layer has no dense equivalent, so `to_dense` refuses it).

    Attributes
    ----------
    A : nn.Linear, weight of shape (rank, in_features)
    B : nn.Linear, weight of shape (out_features, rank)

    Examples
    --------
    >>> low = LowRankLinear.from_dense(torch.nn.Linear(16, 8, bias=False), rank=4)  # best rank-4 approximation
    >>> x = torch.randn(3, 16)
    >>> bool(torch.allclose(low(x), low.to_dense()(x), atol=1e-5))
    True
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = False, inner_act: str = "",
                 device=None, dtype=None):
        super().__init__()
        _check_rank(rank, in_features, out_features, "LowRankLinear")
        check_choice("inner_act", inner_act, INNER_ACTS)
        self.in_features, self.out_features, self.rank, self.inner_act = in_features, out_features, rank, inner_act
        self.A = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.B = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        h = self.A(x)
        if self.inner_act == "silu":
            h = F.silu(h)
        return self.B(h)

    @classmethod
    def from_dense(cls, linear: nn.Linear, rank: int, init: Literal["xavier", "svd", "cola"] = "xavier",
                   inner_act: str = "") -> "LowRankLinear":
        """A low-rank layer of `linear`'s shape: fresh Xavier-normal factors (LORO's `--loro_init xavier`, the
        paper's pre-training init; the dense weights are not used), the truncated SVD of `linear`'s weight
        split as B = U√S, A = √S Vᵀ (for converting a trained model), or CoLA's init (both factors normal with
        std r^-1/4 (in + out)^-1/4, so B·A has the variance of a (in + out)^-1/2 dense init)."""
        check_choice("init", init, INITS)
        w = linear.weight
        mod = cls(linear.in_features, linear.out_features, rank, bias=linear.bias is not None, inner_act=inner_act,
                  device=w.device, dtype=w.dtype)
        with torch.no_grad():
            if init == "svd":
                u, s, vh = torch.linalg.svd(w.float(), full_matrices=False)
                root = s[:rank].sqrt()
                mod.B.weight.copy_(u[:, :rank] * root)
                mod.A.weight.copy_(root[:, None] * vh[:rank])
            elif init == "cola":
                std = rank ** -0.25 * (linear.in_features + linear.out_features) ** -0.25
                mod.A.weight.normal_(0.0, std)
                mod.B.weight.normal_(0.0, std)
            else:
                nn.init.xavier_normal_(mod.A.weight)  # LORO lowrank_module.py: xavier_normal_ on both factors
                nn.init.xavier_normal_(mod.B.weight)
            if linear.bias is not None:
                mod.B.bias.copy_(linear.bias)
        return mod

    def to_dense(self) -> nn.Linear:
        """The equivalent `nn.Linear` with weight B·A (refused for CoLA layers)."""
        if self.inner_act:
            raise UserError(f"Invalid inner_act: {self.inner_act!r} has no dense equivalent; only '' converts")
        w = self.B.weight
        lin = nn.Linear(self.in_features, self.out_features, bias=self.B.bias is not None, device=w.device,
                        dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.B.weight @ self.A.weight)
            if self.B.bias is not None:
                lin.bias.copy_(self.B.bias)
        return lin

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, inner_act={self.inner_act!r}"


def _check_rank(rank, d_in: int, d_out: int, where: str) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 < rank < min(d_in, d_out):
        raise UserError(f"Invalid rank: {rank!r} for {where} ({d_out}x{d_in}); expected an int with "
                        f"0 < rank < {min(d_in, d_out)}")


# ---- the fused squared-ReLU (+2:4) core ------------------------------------------------------------------
class _SReLUCore(torch.autograd.Function):
    """z = sparse?(relu(u1 B1ᵀ)²) A2ᵀ, saving u1 (rank r), the factors and s compressed (or a dense).

    u1: (N, r) rank-r input, b1: (d_ff, r) up factor B, a2: (r2, d_ff) down factor A.
    The backward recomputes u = u1 B1ᵀ (one rank-r GEMM) instead of storing the (N, d_ff) pre-activation.
    """

    @staticmethod
    def forward(ctx, u1, b1, a2, sparse, grad, backend, store=True):
        u = u1 @ b1.t()                                     # (N, d_ff)
        a = torch.relu(u).square()
        ctx.sparse, ctx.grad, ctx.k = sparse, grad, a.shape[-1]
        if not store:  # inference: nothing is kept for a backward, so no compressed copy is built
            if sparse:
                a = a.masked_fill(~mask_24(a), 0)
                return sparse24_mm(a, a2) if resolve_backend(backend, a) == "cuda" else a @ a2.t()
            return a @ a2.t()
        if sparse:
            values, meta, keep = _compress(a)
            s = a.masked_fill(~keep, 0)
            kind = resolve_backend(backend, s)
            z = sparse24_mm(s, a2) if kind == "cuda" else s @ a2.t()   # (N, r2)
            ctx.save_for_backward(u1, b1, a2, values, meta)    # compressed: ~9/16 of s in fp32
        else:
            z = a @ a2.t()
            ctx.save_for_backward(u1, b1, a2, a)
        return z

    @staticmethod
    def backward(ctx, dz):
        if ctx.sparse:
            u1, b1, a2, values, meta = ctx.saved_tensors
            s = decompress_24(values, meta, ctx.k)
        else:
            u1, b1, a2, s = ctx.saved_tensors
        da2 = dz.t() @ s                                     # (r2, d_ff)
        ds = dz @ a2                                         # (N, d_ff), dense
        if ctx.sparse and ctx.grad == "masked":
            ds = ds.masked_fill(s == 0, 0)  # kept zeros have relu(u) = 0, so s == 0 is the mask where it matters
        r = torch.relu(u1 @ b1.t())                          # recomputed relu(u)
        du = ds * 2 * r
        return du @ b1, du.t() @ u1, da2, None, None, None, None


class SquaredReLUFFN(nn.Module):
    """FFN y = down(sparse24(relu(up(x))²)) with a dense warm-up, replacing a SwiGLU LlamaMLP.

    Parameters
    ----------
    up : nn.Linear or LowRankLinear
        hidden -> intermediate.
    down : nn.Linear or LowRankLinear
        intermediate -> hidden.
    sparse : bool, default=True
        Apply 2:4 to the activation once the warm-up is over (False: low-rank squared-ReLU baseline).
    warmup_steps : int, default=0
        Dense steps before 2:4 starts (paper: 1000); compared with the `step` buffer.
    grad : {"ste", "masked"}, default="ste"
        Backward of the 2:4 mask (see `sparse24`).
    backend : {"auto", "reference", "cuda"}, default="auto"
        Sparse GEMM: masked dense on CPU ("reference"), torch semi-structured tensors on CUDA.

    Attributes
    ----------
    step : Tensor, shape (), int64 buffer (saved in state_dict)
        Training steps taken; advance it with `advance`/`attach_warmup`.

    When up and down are both bias-free `LowRankLinear` (no inner activation), the middle runs as one
    autograd function that saves only the rank-r input and the compressed 2:4 activation (values +
    indices) for the backward; otherwise the plain composition runs.

    Examples
    --------
    >>> ffn = SquaredReLUFFN(LowRankLinear(16, 32, 4), LowRankLinear(32, 16, 4))
    >>> ffn(torch.randn(2, 3, 16)).shape
    torch.Size([2, 3, 16])
    """

    def __init__(self, up: nn.Module, down: nn.Module, *, sparse: bool = True, warmup_steps: int = 0,
                 grad: str = "ste", backend: str = "auto"):
        super().__init__()
        check_choice("grad", grad, GRADS)
        check_choice("backend", backend, BACKENDS)
        if warmup_steps < 0:
            raise UserError(f"Invalid warmup_steps: {warmup_steps}; expected an int >= 0")
        d_ff = up.out_features
        if sparse and d_ff % 4:
            raise UserError(f"Invalid intermediate_size: {d_ff} is not divisible by 4 (2:4 groups)")
        self.up, self.down = up, down
        self.sparse, self.warmup_steps, self.grad, self.backend = sparse, warmup_steps, grad, backend
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def sparse_active(self) -> bool:
        return self.sparse and int(self.step) >= self.warmup_steps

    def _fused(self) -> bool:
        up, down = self.up, self.down
        return (isinstance(up, LowRankLinear) and isinstance(down, LowRankLinear) and not up.inner_act
                and not down.inner_act and up.B.bias is None and down.A.bias is None)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])                     # (N, d)
        if self._fused():
            u1 = self.up.A(x)
            store = torch.is_grad_enabled() and (u1.requires_grad or self.up.B.weight.requires_grad
                                                 or self.down.A.weight.requires_grad)
            z = _SReLUCore.apply(u1, self.up.B.weight, self.down.A.weight, self.sparse_active,
                                 self.grad, self.backend, store)  # (N, r)
            y = self.down.B(z)
        else:
            a = squared_relu(self.up(x))
            if self.sparse_active:
                a = sparse24(a, self.grad)
            y = self.down(a)
        return y.reshape(*lead, -1)

    @torch.no_grad()
    def activation_stats(self, x: Tensor) -> dict[str, float]:
        """Natural sparsity of relu(up(x))² (fraction exactly 0) and the fraction of its mass 2:4 keeps."""
        a = squared_relu(self.up(x.reshape(-1, x.shape[-1])))
        kept = a.masked_fill(~mask_24(a), 0) if a.shape[-1] % 4 == 0 else a
        total = float(a.sum())
        return {"natural_sparsity": float((a == 0).float().mean()),
                "mass_kept": float(kept.sum()) / total if total > 0 else 1.0}

    @classmethod
    def from_dense(cls, mlp: nn.Module, rank: int | None = None, *, init: str = "xavier", width: int | None = None,
                   **kw) -> "SquaredReLUFFN":
        """From a gated MLP (LlamaMLP, Qwen2MLP, ...): drop gate_proj; up/down factored when `rank` is given.

        `width` (default: the MLP's intermediate_size) sets the squared-ReLU width; a different width builds
        fresh up/down layers (Xavier factors, or dense layers drawn with the std of the MLP's own weights), so it
        is refused with init="svd", which factors the MLP's weights.
        """
        up, down = mlp.up_proj, mlp.down_proj
        if width is not None and width != up.out_features:
            if init == "svd":
                raise UserError(f"Invalid init: 'svd' factors the MLP's own {up.out_features}-wide weights and "
                                f"cannot give width {width}; use init='xavier' or the MLP's width (ffn_mult=1)")
            w = up.weight
            new_up = nn.Linear(up.in_features, width, bias=False, device=w.device, dtype=w.dtype)
            new_down = nn.Linear(width, down.out_features, bias=False, device=w.device, dtype=w.dtype)
            with torch.no_grad():
                new_up.weight.normal_(0.0, float(up.weight.float().std()))
                new_down.weight.normal_(0.0, float(down.weight.float().std()))
            up, down = new_up, new_down
        if rank is not None:
            up, down = LowRankLinear.from_dense(up, rank, init), LowRankLinear.from_dense(down, rank, init)
        else:
            up, down = _copy_linear(up), _copy_linear(down)
        return cls(up, down, **kw)

    def to_dense(self) -> "SquaredReLUFFN":
        """The same FFN with dense linears (B·A multiplied out); sparsity settings and step kept."""
        dense = [m.to_dense() if isinstance(m, LowRankLinear) else m for m in (self.up, self.down)]
        out = SquaredReLUFFN(*dense, sparse=self.sparse, warmup_steps=self.warmup_steps, grad=self.grad,
                             backend=self.backend)
        out.step.copy_(self.step)
        return out


def _copy_linear(lin: nn.Linear) -> nn.Linear:
    new = nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None, device=lin.weight.device,
                    dtype=lin.weight.dtype)
    new.load_state_dict(lin.state_dict())
    return new


@torch.no_grad()
def ffn_activation_bytes(ffn: nn.Module, x: Tensor) -> int:
    """Bytes of the FFN's intermediate activation as its backward stores it: the paper's memory metric (Table 2).

    For a `SquaredReLUFFN` with 2:4 active this is the compressed form the fused core saves (values + 4-bit
    metadata, 9/16 of the dense bf16 bytes); without 2:4, the dense relu(u)² tensor; for a gated (SwiGLU) MLP, the
    dense silu(gate)·up tensor fed to down_proj. Other saved tensors (inputs, rank-r intermediates) are not
    counted: `saved_tensor_bytes` measures everything.

    Parameters
    ----------
    ffn : SquaredReLUFFN or a gated MLP (gate_proj/up_proj/down_proj, dense or `LowRankLinear`)
    x : Tensor of shape (..., hidden)

    Returns
    -------
    int
    """
    x = x.reshape(-1, x.shape[-1])
    if isinstance(ffn, SquaredReLUFFN):
        a = squared_relu(ffn.up(x))
        if ffn.sparse_active:
            values, meta = compress_24(a)
            return values.nbytes + meta.nbytes
        return a.nbytes
    if all(isinstance(getattr(ffn, n, None), nn.Module) for n in ("gate_proj", "up_proj", "down_proj")):
        return (F.silu(ffn.gate_proj(x)) * ffn.up_proj(x)).nbytes  # dense or low-rank (LORO, CoLA) projections
    raise UserError(f"Invalid ffn: {type(ffn).__name__}; expected a SquaredReLUFFN or a gated MLP")


FFN_FORMS = ("swiglu", "lowrank_swiglu", "cola", "srelu", "srelu24")


def build_ffn(form: str, hidden: int, intermediate: int, rank: int, *, ffn_mult: float = 1.5,
              backend: str = "reference") -> nn.Module:
    """A freshly initialised FFN of one of the forms ELAS is compared in (for timing and memory at a given width).

    Parameters
    ----------
    form : {"swiglu", "lowrank_swiglu", "cola", "srelu", "srelu24"}
        Dense SwiGLU `LlamaMLP`; the same with rank-`rank` factors (LORO's model); with CoLA's B·silu(A·x) factors;
        the squared-ReLU FFN `ffn_mult` x wide without 2:4; ELAS's (2:4 active from step 0).
    hidden, intermediate, rank : int
        Model width, SwiGLU width, factor rank (Xavier factors; CoLA's init for "cola").
    ffn_mult : float, default=1.5
    backend : {"auto", "reference", "cuda"}, default="reference"
        Sparse GEMM of "srelu24".
    """
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    check_choice("form", form, FFN_FORMS)
    mlp = LlamaMLP(LlamaConfig(hidden_size=hidden, intermediate_size=intermediate))
    if form == "swiglu":
        return mlp
    if form in ("lowrank_swiglu", "cola"):
        act, init = ("silu", "cola") if form == "cola" else ("", "xavier")
        for proj in ("gate_proj", "up_proj", "down_proj"):
            setattr(mlp, proj, LowRankLinear.from_dense(getattr(mlp, proj), rank, init, act))
        return mlp
    return SquaredReLUFFN.from_dense(mlp, rank, init="xavier", width=ffn_width(intermediate, ffn_mult),
                                     sparse=form == "srelu24", warmup_steps=0, backend=backend)


# ---- config and module swaps --------------------------------------------------------------------------
@dataclass
class ElasConfig:
    """How `elasify` converts a Llama-layout causal LM (saved next to the HF checkpoint as elas_config.json)."""

    rank: int = field(0, help="factor rank r for every target linear (0 = hidden_size // 4: the paper's 128/256/256/"
                              "512 at d = 512/768/1024/2048, inferred from its parameter counts and the first "
                              "author's benchmark ranks)")
    ffn: str = field("srelu24", help="FFN form: srelu24 (ELAS), srelu (squared ReLU, no 2:4), swiglu (keep LlamaMLP)")
    ffn_mult: float = field(1.5, help="squared-ReLU width as a multiple of intermediate_size, rounded to a multiple of "
                                      "4 (1.5: the first author's code, the dense SwiGLU's parameter count without "
                                      "the gate; 1.0: the earlier same-width form); not used by ffn='swiglu'")
    warmup_steps: int = field(1000, help="dense steps before 2:4 starts (paper: 1000; 0 diverged at 60M)")
    targets: tuple[str, ...] = field(DEFAULT_TARGETS, help="fnmatch patterns over module FQNs: Linears and LlamaMLPs")
    inner_act: str = field("", help="'' = LORO factors B·A; 'silu' = CoLA's B·σ(A·x) (baseline only)")
    init: str = field("xavier", help="factor init: fresh Xavier-normal (LORO, the paper's pre-training), the "
                                     "truncated SVD of the model's weights (converting a trained model), or CoLA's")
    grad: str = field("ste", help="backward of the 2:4 mask: straight-through (paper) or masked")
    backend: str = field("auto", help="sparse GEMM: auto (CUDA when usable), reference (masked dense), cuda")

    def validate(self) -> None:
        check_choice("ffn", self.ffn, FFN_KINDS)
        check_choice("inner_act", self.inner_act, INNER_ACTS)
        check_choice("init", self.init, INITS)
        check_choice("grad", self.grad, GRADS)
        check_choice("backend", self.backend, BACKENDS)
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise UserError(f"Invalid warmup_steps: {self.warmup_steps!r}; expected an int >= 0")
        if not self.targets:
            raise UserError("Invalid targets: empty; expected fnmatch patterns such as " + repr(DEFAULT_TARGETS))
        if isinstance(self.ffn_mult, bool) or not isinstance(self.ffn_mult, (int, float)) or not self.ffn_mult > 0:
            raise UserError(f"Invalid ffn_mult: {self.ffn_mult!r}; expected a number > 0 (paper: 1.5)")
        if self.init == "svd" and self.ffn != "swiglu" and self.ffn_mult != 1:
            raise UserError(f"Invalid init: 'svd' factors the model's own MLP weights, which keep intermediate_size; "
                            f"with ffn_mult={self.ffn_mult} use init='xavier', or ffn_mult=1.0")
        if self.inner_act and self.ffn != "swiglu":
            raise UserError(f"Invalid inner_act: {self.inner_act!r} is a CoLA baseline and needs ffn='swiglu'")


def ffn_width(intermediate_size: int, mult: float) -> int:
    """The squared-ReLU FFN width for a SwiGLU `intermediate_size`: unchanged at mult 1, else mult x it rounded to a
    multiple of 4 (2:4 groups)."""
    return intermediate_size if mult == 1 else max(4, int(round(mult * intermediate_size / 4)) * 4)


def _set_module(root: nn.Module, fqn: str, new: nn.Module) -> None:
    parent, _, leaf = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def is_gated_mlp(mod: nn.Module) -> bool:
    """A Llama-layout feed-forward block: `gate_proj`, `up_proj`, `down_proj` as `nn.Linear` (LlamaMLP, Qwen2MLP,
    MistralMLP, ... all have this shape)."""
    return all(isinstance(getattr(mod, n, None), nn.Linear) for n in ("gate_proj", "up_proj", "down_proj"))


LLAMA_LAYOUT = ("a decoder with `model.layers[i].mlp` blocks holding `gate_proj`/`up_proj`/`down_proj` as "
                "nn.Linear and a SiLU gate, and attention projections `self_attn.{q,k,v,o}_proj` (Llama, Qwen2, "
                "Mistral, ...)")


def _check_llama_layout(model: nn.Module) -> None:
    """Refuse, naming what is needed, a model whose blocks do not have the Llama layout."""
    cfg = getattr(model, "config", None)
    layers = getattr(getattr(model, "model", None), "layers", None)
    mlps = [getattr(layer, "mlp", None) for layer in layers] if layers is not None else []
    act = getattr(cfg, "hidden_act", None)
    if not mlps or not all(m is not None and is_gated_mlp(m) for m in mlps):
        raise UserError(f"Invalid model: {type(model).__name__} does not have the Llama layout elasify needs: "
                        f"{LLAMA_LAYOUT}")
    if act not in ("silu", "swish"):
        raise UserError(f"Invalid model: {type(model).__name__} gates its MLP with {act!r}; elasify replaces a "
                        "SiLU-gated (SwiGLU) FFN, the paper's baseline")


def _find_targets(model: nn.Module, patterns: Sequence[str]) -> list[tuple[str, nn.Module]]:
    found = []
    for name, mod in model.named_modules():
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            if not (isinstance(mod, nn.Linear) or is_gated_mlp(mod)):
                raise UserError(f"Invalid targets: {name!r} is a {type(mod).__name__}; patterns must match "
                                "nn.Linear modules or gated MLP blocks (gate_proj/up_proj/down_proj)")
            if not any(name.startswith(f + ".") for f, _ in found):  # a matched MLP owns its linears
                found.append((name, mod))
    return found


def elasify(model: nn.Module, config: ElasConfig | None = None, **overrides) -> nn.Module:
    """Convert an HF causal LM with the Llama layout (Llama, Qwen2, Mistral, ...) in place into its ELAS (or
    low-rank baseline) form.

    Matched `nn.Linear`s become `LowRankLinear`; matched gated MLPs become `SquaredReLUFFN` (ffn
    "srelu24"/"srelu", with low-rank up/down) or keep SwiGLU with low-rank gate/up/down ("swiglu").
    Every check runs before the first swap.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Any causal LM with the Llama layout (see `LLAMA_LAYOUT`); other layouts are refused, naming what is needed.
    config : ElasConfig, optional
    **overrides
        ElasConfig fields (e.g. rank=16, warmup_steps=100).

    Returns
    -------
    model (the same object), with `model.elas_config` set.

    Examples
    --------
    >>> from tenfold.models.hf_tiny import tiny_llama
    >>> m, _ = tiny_llama("debug")
    >>> m = elasify(m, rank=8, warmup_steps=0)
    >>> type(m.model.layers[0].mlp).__name__, type(m.model.layers[0].self_attn.q_proj).__name__
    ('SquaredReLUFFN', 'LowRankLinear')
    """
    _check_llama_layout(model)
    cfg = dataclasses.replace(config or ElasConfig(), **overrides)
    cfg.targets = tuple(cfg.targets)
    cfg.validate()
    rank = cfg.rank or model.config.hidden_size // 4
    targets = _find_targets(model, cfg.targets)
    if not targets:
        raise UserError(f"Invalid targets: {cfg.targets!r} match no module of {type(model).__name__}")
    for name, mod in targets:  # validate everything first
        lins = [mod] if isinstance(mod, nn.Linear) else [mod.gate_proj, mod.up_proj, mod.down_proj]
        for lin in lins:
            _check_rank(rank, lin.in_features, lin.out_features, name)
        if not isinstance(mod, nn.Linear) and cfg.ffn != "swiglu":
            width = ffn_width(mod.up_proj.out_features, cfg.ffn_mult)
            _check_rank(rank, mod.up_proj.in_features, width, name)
            if cfg.ffn == "srelu24" and width % 4:
                raise UserError(f"Invalid intermediate_size: {width} at {name} is not divisible by 4 (2:4 groups)")
    for name, mod in targets:
        if isinstance(mod, nn.Linear):
            new = LowRankLinear.from_dense(mod, rank, cfg.init, cfg.inner_act)
        elif cfg.ffn == "swiglu":
            for proj in ("gate_proj", "up_proj", "down_proj"):
                setattr(mod, proj, LowRankLinear.from_dense(getattr(mod, proj), rank, cfg.init, cfg.inner_act))
            continue
        else:
            new = SquaredReLUFFN.from_dense(mod, rank, init=cfg.init, width=ffn_width(mod.up_proj.out_features,
                                                                                      cfg.ffn_mult),
                                            sparse=cfg.ffn == "srelu24",
                                            warmup_steps=cfg.warmup_steps, grad=cfg.grad, backend=cfg.backend)
        _set_module(model, name, new)
    model.elas_config = dataclasses.replace(cfg, rank=rank)
    return model


def deelasify(model: nn.Module) -> nn.Module:
    """Multiply every `LowRankLinear` back into an `nn.Linear` (in place; same function).

    A `SquaredReLUFFN` stays (SwiGLU cannot be recovered from it) but gets dense up/down; CoLA layers
    (inner activation) are refused before anything changes.
    """
    lows = [(n, m) for n, m in model.named_modules() if isinstance(m, LowRankLinear)]
    for n, m in lows:
        if m.inner_act:
            raise UserError(f"Invalid model: {n} has inner_act={m.inner_act!r} (CoLA), which has no dense form")
    for n, m in lows:
        _set_module(model, n, m.to_dense())
    if hasattr(model, "elas_config"):
        del model.elas_config
    return model


# ---- warm-up step control ---------------------------------------------------------------------------
def ffn_modules(model: nn.Module) -> list[SquaredReLUFFN]:
    return [m for m in model.modules() if isinstance(m, SquaredReLUFFN)]


def set_step(model: nn.Module, step: int) -> None:
    """Set the step counter of every `SquaredReLUFFN` (2:4 is active once step >= warmup_steps)."""
    for m in ffn_modules(model):
        m.step.fill_(step)


def advance(model: nn.Module, n: int = 1) -> None:
    """Advance every FFN's step counter by n (call once per optimizer step)."""
    for m in ffn_modules(model):
        m.step.add_(n)


def attach_warmup(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Register an optimizer step post-hook that calls `advance(model)`; returns the hook handle."""
    return optimizer.register_step_post_hook(lambda *_: advance(model))


# ---- checkpoints and measurement ----------------------------------------------------------------------
def save_elas(model: nn.Module, path: str | Path) -> Path:
    """`model.save_pretrained(path)` plus `elas_config.json` (the ElasConfig used by `elasify`)."""
    path = Path(path)
    if not hasattr(model, "elas_config"):
        raise UserError("Invalid model: not converted by elasify (no elas_config)")
    model.save_pretrained(path)
    (path / CONFIG_NAME).write_text(json.dumps(dataclasses.asdict(model.elas_config), indent=2))
    return path


def load_elas(path: str | Path) -> nn.Module:
    """Rebuild a model saved by `save_elas`: HF config -> its causal-LM class -> elasify -> load weights."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if not (path / CONFIG_NAME).exists():
        raise UserError(f"Invalid path: {path} has no {CONFIG_NAME}; save it with save_elas")
    raw = json.loads((path / CONFIG_NAME).read_text())
    raw.setdefault("ffn_mult", 1.0)  # checkpoints written before ffn_mult existed used the SwiGLU width
    cfg = ElasConfig(**{**raw, "targets": tuple(raw["targets"]), "init": "xavier"})  # weights come from the file
    model = elasify(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)), cfg)
    state = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(f))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and model.config.tie_word_embeddings)]
    if missing or unexpected:
        raise UserError(f"Invalid checkpoint at {path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.elas_config = dataclasses.replace(cfg, init=raw["init"])
    return model


def saved_tensor_bytes(fn: Callable[[], Tensor], exclude: Sequence[Tensor] = ()) -> int:
    """Bytes autograd saves for the backward while running fn() (storages counted once).

    Parameters
    ----------
    fn : callable returning a Tensor
        The forward to measure (run with grad enabled).
    exclude : sequence of Tensor
        Tensors whose storages are not activations (the module's parameters).

    Returns
    -------
    int, the total `nbytes` of the distinct storages that saved-tensor pack hooks received.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def count_params(model: nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


__all__ = ["mask_24", "compress_24", "decompress_24", "sparse24", "Sparse24", "squared_relu", "LowRankLinear",
           "SquaredReLUFFN", "ElasConfig", "elasify", "deelasify", "ffn_modules", "set_step", "advance",
           "attach_warmup", "save_elas", "load_elas", "saved_tensor_bytes", "count_params", "ffn_activation_bytes",
           "ffn_width", "is_gated_mlp", "build_ffn", "FFN_FORMS"]
