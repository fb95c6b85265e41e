"""Data-free model merging over state dicts: average, task arithmetic, TIES, DARE, WUDI and TSVM.

Paper (the consumer): Gong et al., "ACE-Brain-0: Spatial Intelligence as a Shared Scaffold for Universal
Embodiments", arXiv 2603.03198, whose "reconcile" stage merges domain experts branched from one scaffold with
WUDI. Merges: task arithmetic (Ilharco et al., arXiv 2212.04089), TIES (Yadav et al., arXiv 2306.01708), DARE
(Yu et al., arXiv 2311.03099), WUDI (Cheng et al., "Whoever Started the Interference Should End It", arXiv
2503.08099; reference code tanganke/fusion_bench fusion_bench/method/wudi/wudi.py), TSVM (Gargiulo et al., "Task
Singular Vectors: Reducing Task Interference in Model Merging", CVPR 2025, arXiv 2412.00081; reference code
AntoAndGar/task_singular_vectors src/utils/TSVM_utils.py and its port tanganke/fusion_bench
fusion_bench/method/task_singular_vector/). The weighting and sign-election conventions of task arithmetic and
TIES follow mergekit (arcee-ai/mergekit merge_methods/generalized_task_arithmetic.py), against which tests/merging
checks them.

Implemented: the six merges as pure functions with one signature, ``f(base, experts, *, <parameters>)``
-> merged state dict, input checks (keys, shapes, ranges, a same-base heuristic) and a registry `MERGES`.
The scaffold / specialise / reconcile pipeline and GRPO live in ssr.py and grpo.py beside this file
(see docs/ssr.md). Reconstruction: the closed form of WUDI (derived below, not in the WUDI paper's code) and
the `check_same_base` heuristic are ours.

Conventions. A state dict maps a name to a tensor. Only floating-point tensors are merged; integer / bool
buffers (step counters, position ids) are copied from `base`. Maths runs in float32 (WUDI's closed form in
float64) and the result is cast back to the base tensor's dtype (bf16 stays bf16). The task vector of expert i is
tau_i = theta_i - theta_base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from tenfold.common.errors import UserError, check_choice
from tenfold.common.registry import Registry

StateDict = Mapping[str, torch.Tensor]

SOLVERS = ("closed_form", "adam")
TRIM_SCOPES = ("tensor", "global")
DEFAULT_MAX_REL_DIST = 0.5
DEFAULT_RANK_RTOL = 1e-5  # TSVM: kept singular values at or below this fraction of their task's largest count as zero


# ------------------------------------------------------------------------------------------------ checks
def check_state_dicts(base: StateDict, experts: Sequence[StateDict]) -> None:
    """Raise `UserError` unless `experts` is non-empty and every expert has `base`'s keys and shapes.

    Parameters
    ----------
    base : Mapping[str, torch.Tensor]
    experts : sequence of Mapping[str, torch.Tensor]
    """
    if not isinstance(base, Mapping):
        raise UserError(f"Invalid base: {type(base).__name__}; expected a state dict (name -> tensor)")
    if isinstance(experts, Mapping) or not isinstance(experts, Sequence):
        raise UserError(f"Invalid experts: {type(experts).__name__}; expected a list of state dicts")
    if len(experts) == 0:
        raise UserError("Invalid experts: empty list; expected at least one expert state dict")
    keys = set(base)
    for i, sd in enumerate(experts):
        if not isinstance(sd, Mapping):
            raise UserError(f"Invalid experts[{i}]: {type(sd).__name__}; expected a state dict")
        missing, extra = sorted(keys - set(sd)), sorted(set(sd) - keys)
        if missing or extra:
            raise UserError(f"Key mismatch in experts[{i}]: missing {missing[:5]}, unexpected {extra[:5]} "
                            "(experts must have exactly the base's keys)")
        for k in base:
            if tuple(sd[k].shape) != tuple(base[k].shape):
                raise UserError(f"Shape mismatch for key {k!r} in experts[{i}]: {tuple(sd[k].shape)} vs "
                                f"base {tuple(base[k].shape)}")


def _mergeable(t: torch.Tensor) -> bool:
    return t.is_floating_point()


def check_same_base(base: StateDict, experts: Sequence[StateDict], *,
                    max_rel_dist: float = DEFAULT_MAX_REL_DIST) -> list[float]:
    """Check (heuristically) that every expert was branched from `base`; return each relative distance.

    Heuristic, per tensor and scale-aware: each floating-point tensor's relative distance
    ||theta_i[k] - theta_base[k]|| / ||theta_base[k]|| is averaged over tensors, weighted by their element counts
    (tensors whose base is all zeros, such as zero-initialised biases, have no scale and are left out). Two
    independent draws from the same zero-mean init are at relative distance about sqrt(2) (= 1.41) in every weight
    matrix, while a fine-tune moves each tensor a small fraction of its norm, so the default 0.5 separates "branched
    from base" from "a different model of the same architecture". Per tensor, so that tensors with a large norm and a
    shared constant init (norm weights of 1) cannot hide an unrelated model, as they do in one norm over all tensors
    flattened together (issue 31). A heavily trained expert can exceed it: raise `max_rel_dist` (or pass
    ``check_base=False`` to a merge) then.

    Parameters
    ----------
    base : Mapping[str, torch.Tensor]
    experts : sequence of Mapping[str, torch.Tensor]
        Same keys and shapes as `base` (checked first).
    max_rel_dist : float, default=0.5
        Largest accepted relative distance, > 0.

    Returns
    -------
    list of float, length len(experts)
        The relative distances.

    Examples
    --------
    >>> b = {"w": torch.ones(2, 2)}
    >>> [round(d, 3) for d in check_same_base(b, [{"w": torch.full((2, 2), 1.1)}])]
    [0.1]
    """
    check_state_dicts(base, experts)
    if not (isinstance(max_rel_dist, (int, float)) and max_rel_dist > 0 and math.isfinite(max_rel_dist)):
        raise UserError(f"Invalid max_rel_dist: {max_rel_dist!r}; expected a finite number > 0")
    keys = [k for k in base if _mergeable(base[k])]
    norms = {k: float(base[k].double().norm()) for k in keys}
    scaled = [k for k in keys if norms[k] > 0]
    dists = []
    for i, sd in enumerate(experts):
        if scaled:
            total = sum(base[k].numel() for k in scaled)
            rel = sum(float((sd[k].double() - base[k].double()).norm()) / norms[k] * base[k].numel()
                      for k in scaled) / total
        else:  # every base tensor is zero: only "identical" is measurable
            rel = 0.0 if all(torch.equal(sd[k], base[k]) for k in keys) else math.inf
        if rel > max_rel_dist:
            raise UserError(f"experts[{i}] does not look branched from base: relative distance "
                            f"||theta_i - theta_base|| / ||theta_base|| (per tensor, size-weighted mean) = {rel:.3g} > "
                            f"max_rel_dist = {max_rel_dist} (independent inits sit near 1.41); pass check_base=False "
                            "to merge anyway")
        dists.append(rel)
    return dists


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """Per-expert weights: default all 1; each finite and >= 0, at least one > 0."""
    if weights is None:
        return [1.0] * n
    w = list(weights)
    if len(w) != n:
        raise UserError(f"Invalid weights: {len(w)} values for {n} experts; expected one weight per expert")
    for i, x in enumerate(w):
        if not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
            raise UserError(f"Invalid weights[{i}]: {x!r}; expected a finite number >= 0")
    if not any(x > 0 for x in w):
        raise UserError(f"Invalid weights: {w}; expected at least one weight > 0")
    return [float(x) for x in w]


def _check_unit_interval(name: str, value: float) -> float:
    """A value in (0, 1] (densities)."""
    if not isinstance(value, (int, float)) or not (0 < value <= 1):
        raise UserError(f"Invalid {name}: {value!r}; expected a number in (0, 1]")
    return float(value)


def _check_scale(scale: float) -> float:
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise UserError(f"Invalid scale: {scale!r}; expected a finite number > 0")
    return float(scale)


def _prepare(base: StateDict, experts: Sequence[StateDict], check_base: bool | float) -> None:
    """Shared input checks of every merge: keys and shapes, then (optionally) the same-base heuristic."""
    check_state_dicts(base, experts)
    if check_base is not False:
        limit = DEFAULT_MAX_REL_DIST if check_base is True else check_base
        check_same_base(base, experts, max_rel_dist=limit)


def _deltas(base: StateDict, experts: Sequence[StateDict], key: str) -> torch.Tensor:
    """Stacked float32 task vectors of one key, (K, *shape)."""
    b = base[key].float()
    return torch.stack([sd[key].float() - b for sd in experts])


def _finish(base: StateDict, merged_delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """theta_base + delta for merged keys, a copy of base elsewhere, in base's dtypes."""
    out = {}
    for k, t in base.items():
        out[k] = (t.float() + merged_delta[k]).to(t.dtype) if k in merged_delta else t.clone()
    return out


def _weight_view(w: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """(K, 1, ..., 1) weights broadcastable against stacked deltas `like` (K, *shape)."""
    return torch.tensor(w, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


# ------------------------------------------------------------------------------------------------ simple merges
def average(base: StateDict, experts: Sequence[StateDict], *, weights: Sequence[float] | None = None,
            check_base: bool | float = True) -> dict[str, torch.Tensor]:
    """Weighted parameter average (model soup): theta = sum_i w_i theta_i / sum_i w_i.

    Parameters
    ----------
    base : Mapping[str, torch.Tensor]
        The common ancestor; used for checks and for non-float buffers only.
    experts : sequence of Mapping[str, torch.Tensor]
        K expert state dicts, same keys and shapes as `base`.
    weights : sequence of float, optional
        K weights >= 0 (normalised here); default uniform.
    check_base : bool or float, default=True
        Run `check_same_base` (a float sets its `max_rel_dist`); False skips it.

    Returns
    -------
    dict of str to torch.Tensor
        The merged state dict, base's dtypes.

    Examples
    --------
    >>> b = {"w": torch.zeros(2)}
    >>> average(b, [{"w": torch.tensor([1., 0.])}, {"w": torch.tensor([0., 1.])}], check_base=False)["w"]
    tensor([0.5000, 0.5000])
    """
    _prepare(base, experts, check_base)
    w = _check_weights(weights, len(experts))
    total = sum(w)
    merged = {}
    for k in base:
        if _mergeable(base[k]):
            d = _deltas(base, experts, k)  # averaging theta_i == base + averaging tau_i
            merged[k] = (d * _weight_view(w, d)).sum(0) / total
    return _finish(base, merged)


def task_arithmetic(base: StateDict, experts: Sequence[StateDict], *, weights: Sequence[float] | None = None,
                    scale: float = 1.0, check_base: bool | float = True) -> dict[str, torch.Tensor]:
    """Task arithmetic: theta = theta_base + scale * sum_i w_i tau_i (mergekit's `task_arithmetic`).

    Parameters
    ----------
    base, experts : see `average`
    weights : sequence of float, optional
        K weights >= 0, not normalised; default all 1.
    scale : float, default=1.0
        The global lambda (> 0). Ilharco et al. pick it on validation data (typically 0.3-0.5 for 1/K-free
        weights); with weights 1/K, scale 1 is the average.
    check_base : bool or float, default=True

    Returns
    -------
    dict of str to torch.Tensor

    Examples
    --------
    >>> b = {"w": torch.zeros(2)}
    >>> e = [{"w": torch.tensor([1., 0.])}, {"w": torch.tensor([0., 1.])}]
    >>> task_arithmetic(b, e, scale=0.5, check_base=False)["w"]
    tensor([0.5000, 0.5000])
    """
    _prepare(base, experts, check_base)
    w, lam = _check_weights(weights, len(experts)), _check_scale(scale)
    merged = {}
    for k in base:
        if _mergeable(base[k]):
            d = _deltas(base, experts, k)
            merged[k] = lam * (d * _weight_view(w, d)).sum(0)
    return _finish(base, merged)


def _topk_mask(x: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the max(1, int(density * numel)) largest |x| entries of one tensor (mergekit's `magnitude`)."""
    if density >= 1:
        return torch.ones_like(x, dtype=torch.bool)
    k = max(1, int(density * x.numel()))
    mask = torch.zeros(x.numel(), dtype=torch.bool)
    mask[torch.topk(x.abs().reshape(-1), k).indices] = True
    return mask.reshape(x.shape)


def _sign_consensus(d: torch.Tensor) -> torch.Tensor:
    """TIES sign election on weighted deltas (K, *shape): keep entries whose sign matches sign(sum_i d_i).

    A zero sum elects +; zero (trimmed) entries never match, so they do not count in the disjoint mean.
    """
    elected = torch.where(d.sum(0) >= 0, 1.0, -1.0)  # (*shape)
    return d.sign() == elected


def ties(base: StateDict, experts: Sequence[StateDict], *, weights: Sequence[float] | None = None,
         scale: float = 1.0, density: float = 0.2, normalize: bool = True, trim: str = "tensor",
         check_base: bool | float = True) -> dict[str, torch.Tensor]:
    """TIES merging: trim each task vector to its top-`density` magnitudes, elect a sign per entry, then take
    the (weighted) disjoint mean of the entries that agree with it.

    With w_i the weights, d_i = w_i * trim(tau_i) and m_i = [sign(d_i) == sign(sum_j d_j)]:
    theta = theta_base + scale * sum_i m_i d_i / sum_i m_i w_i  (``normalize=True``; the divisor is 1 where
    no expert agrees), or scale * sum_i m_i d_i without normalisation. This is mergekit's `ties`.

    Parameters
    ----------
    base, experts : see `average`
    weights : sequence of float, optional
        K weights >= 0; default all 1.
    scale : float, default=1.0
        lambda (> 0); the TIES paper uses 1 with the disjoint mean.
    density : float, default=0.2
        Fraction of entries kept per task vector, in (0, 1] (the paper keeps the top 20%).
    normalize : bool, default=True
        Divide by the summed weights of the agreeing experts (the disjoint mean).
    trim : {"tensor", "global"}, default="tensor"
        "tensor": top-k per tensor (mergekit; keeps at least one entry per tensor); "global": one magnitude
        threshold per expert over all its floating-point tensors flattened together (the TIES paper's code).
    check_base : bool or float, default=True

    Returns
    -------
    dict of str to torch.Tensor
    """
    _prepare(base, experts, check_base)
    w, lam = _check_weights(weights, len(experts)), _check_scale(scale)
    density = _check_unit_interval("density", density)
    check_choice("trim", trim, TRIM_SCOPES)
    keys = [k for k in base if _mergeable(base[k])]
    thresholds = None
    if trim == "global" and density < 1:
        thresholds = []  # per expert: the k-th largest |tau| over every float tensor
        for sd in experts:
            flat = torch.cat([(sd[k].float() - base[k].float()).abs().reshape(-1) for k in keys])
            k_keep = max(1, int(density * flat.numel()))
            thresholds.append(float(torch.topk(flat, k_keep).values[-1]))
    merged = {}
    for k in keys:
        d = _deltas(base, experts, k)  # (K, *shape)
        if thresholds is None:
            keep = torch.stack([_topk_mask(d[i], density) for i in range(len(experts))])
        else:
            keep = d.abs() >= torch.tensor(thresholds).reshape(-1, *([1] * (d.ndim - 1)))
        wv = _weight_view(w, d)
        d = d * keep * wv
        agree = _sign_consensus(d)
        mixed = (d * agree).sum(0)
        if normalize:
            div = (wv * agree).sum(0)
            mixed = mixed / torch.where(div == 0, torch.ones_like(div), div)
        merged[k] = lam * mixed
    return _finish(base, merged)


def dare(base: StateDict, experts: Sequence[StateDict], *, weights: Sequence[float] | None = None,
         scale: float = 1.0, density: float = 0.5, consensus: bool = False,
         generator: torch.Generator | int = 0, check_base: bool | float = True) -> dict[str, torch.Tensor]:
    """DARE (drop and rescale): keep each task-vector entry with probability `density`, rescale the kept
    ones by 1 / density, then combine by task arithmetic (or with TIES sign election when `consensus`).

    theta = theta_base + scale * sum_i w_i (m_i * tau_i / density), m_i ~ Bernoulli(density) i.i.d.
    The masks come from `generator` only (never the global RNG), drawn on the CPU in base-key order and expert
    order, so a seed gives the same merge on every run. The rescale is the DARE paper's 1 / density (mergekit
    instead rescales to the original L1 norm, so its masks and scales are not comparable).

    Parameters
    ----------
    base, experts : see `average`
    weights : sequence of float, optional
        K weights >= 0; default all 1.
    scale : float, default=1.0
        lambda (> 0).
    density : float, default=0.5
        Keep probability 1 - p, in (0, 1]; the paper drops up to p = 0.9 on large models.
    consensus : bool, default=False
        Apply TIES sign election to the rescaled deltas (DARE-TIES; summed, not normalised, as mergekit).
    generator : torch.Generator or int, default=0
        The RNG for the masks, or a seed for a fresh CPU generator. A passed generator is advanced.
    check_base : bool or float, default=True

    Returns
    -------
    dict of str to torch.Tensor
    """
    _prepare(base, experts, check_base)
    w, lam = _check_weights(weights, len(experts)), _check_scale(scale)
    density = _check_unit_interval("density", density)
    if isinstance(generator, bool) or not isinstance(generator, (int, torch.Generator)):
        raise UserError(f"Invalid generator: {generator!r}; expected a torch.Generator or an int seed")
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    merged = {}
    for k in base:
        if not _mergeable(base[k]):
            continue
        d = _deltas(base, experts, k)
        if density < 1:
            keep = torch.rand(d.shape, generator=generator, device=torch.device("cpu")) < density
            d = d * keep / density
        d = d * _weight_view(w, d)
        if consensus:
            d = d * _sign_consensus(d)
        merged[k] = lam * d.sum(0)
    return _finish(base, merged)


# ------------------------------------------------------------------------------------------------ WUDI
def wudi_objective(tau: torch.Tensor, task_vectors: torch.Tensor) -> torch.Tensor:
    """The WUDI interference loss of a merged task vector for one 2-D weight.

    L(tau) = sum_i ||(tau - tau_i) tau_i^T||_F^2 / ||tau_i||_F^2 (task vectors with zero norm are skipped).

    Parameters
    ----------
    tau : torch.Tensor of shape (m, n)
    task_vectors : torch.Tensor of shape (K, m, n)

    Returns
    -------
    torch.Tensor, scalar, in `tau`'s dtype (differentiable)
    """
    task_vectors = task_vectors.to(tau.dtype)
    norms = task_vectors.reshape(len(task_vectors), -1).pow(2).sum(-1)  # (K,)
    live = norms > 0
    tv, nrm = task_vectors[live], norms[live]
    prod = (tau.unsqueeze(0) - tv) @ tv.transpose(1, 2)  # (K', m, m)
    return (prod.pow(2).sum((1, 2)) / nrm).sum()


def wudi_closed_form(task_vectors: torch.Tensor, *, rtol: float | None = None,
                     noise: float | None = None) -> torch.Tensor:
    """The exact minimiser of `wudi_objective` for one 2-D weight (our derivation; float64 internally).

    With c_i = 1 / ||tau_i||^2, grad L = 2 sum_i c_i (tau - tau_i) tau_i^T tau_i = 0 gives tau A = B with
    A = sum_i c_i tau_i^T tau_i (n, n) and B = sum_i c_i tau_i tau_i^T tau_i (m, n), so tau* = B A^+. L is a
    convex quadratic; when A is singular (fewer stacked task-vector rows than n) the minimisers differ by rows
    in null(A), and the pseudo-inverse picks the one whose rows lie in the span of the task vectors' rows
    (the span the Adam solution also starts from, tau_0 = sum_i tau_i).

    Parameters
    ----------
    task_vectors : torch.Tensor of shape (K, m, n)
    rtol : float, optional
        Relative cut-off of small eigenvalues of A for the pseudo-inverse (torch's default when None).
    noise : float, optional
        Size (Frobenius norm) of the rounding noise in each task vector, e.g. float32's eps x ||theta_base|| when
        the task vectors are differences of float32 weights (what `wudi` passes). Eigen-directions of A at or
        below that noise level, c_i (10 noise)^2 summed, are left out of the pseudo-inverse (ours): low-rank task
        vectors (merged LoRAs) are made full-rank by that rounding, and inverting its tiny eigenvalues blew a
        merged weight up 500x in the SSR reproduction (seed 1, found from the run's checkpoints; tested).

    Returns
    -------
    torch.Tensor of shape (m, n), float64
    """
    ab = _wudi_system(task_vectors)
    if ab is None:
        return torch.zeros(task_vectors.shape[1:], dtype=torch.float64)
    a, b, c = ab
    atol = float((c * (10.0 * noise) ** 2).sum()) if noise else None
    return b @ torch.linalg.pinv(a, rtol=rtol, atol=atol, hermitian=True)


def _wudi_system(task_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """WUDI's normal equations tau A = B in float64: A = sum_i c_i tau_i^T tau_i (n, n), B = sum_i c_i tau_i
    tau_i^T tau_i (m, n), c_i = 1 / ||tau_i||^2 over the non-zero task vectors (returned too); None if all are 0."""
    tv = task_vectors.double()
    norms = tv.reshape(len(tv), -1).pow(2).sum(-1)
    live = norms > 0
    if not bool(live.any()):
        return None
    tv, c = tv[live], 1.0 / norms[live]
    gram = tv.transpose(1, 2) @ tv  # (K, n, n): tau_i^T tau_i
    w = c.reshape(-1, 1, 1)
    return (w * gram).sum(0), (w * (tv @ gram)).sum(0), c


def wudi_adam(task_vectors: torch.Tensor, *, iters: int = 300, lr: float = 1e-5) -> torch.Tensor:
    """Minimise `wudi_objective` with Adam from tau_0 = sum_i tau_i, as FusionBench's `wudi_merging` does.

    Parameters
    ----------
    task_vectors : torch.Tensor of shape (K, m, n)
    iters : int, default=300
        Adam steps (FusionBench's default).
    lr : float, default=1e-5
        Adam learning rate (FusionBench's value, tuned for ViT/LLM-scale task vectors; each step moves an
        entry by about lr, so 300 steps move it by at most ~3e-3: tiny models need a larger lr to converge).

    Returns
    -------
    torch.Tensor of shape (m, n), float32
    """
    tv = task_vectors.float()
    tau = torch.nn.Parameter(tv.sum(0).clone())
    opt = torch.optim.Adam([tau], lr=lr, weight_decay=0.0)
    grad = _wudi_gradient(task_vectors)
    for _ in range(iters):
        tau.grad = grad(tau.detach())
        opt.step()
    return tau.detach()


def _wudi_gradient(task_vectors: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The gradient of `wudi_objective` as a function of tau: 2 (tau A - B) with A, B as in `wudi_closed_form`.

    The same gradient autograd gives (tested), at a fraction of the cost: A (n, n) and B (m, n) are formed once
    in float64, and when A has low rank k (low-rank task vectors, e.g. LoRA deltas: k <= the sum of their ranks)
    tau A is computed as ((tau Q) diag(lambda)) Q^T from A's eigen-decomposition (eigenvalues below 1e-12 of
    the largest dropped), so an Adam step costs O(m n k) instead of autograd's O(K m^2 n).
    """
    ab = _wudi_system(task_vectors)
    if ab is None:
        return lambda tau: torch.zeros_like(tau)
    a, b, _ = ab
    b2 = (2.0 * b).float()  # 2 B, (m, n)
    lam, q = torch.linalg.eigh(a)
    keep = lam > 1e-12 * float(lam.max().clamp_min(0.0))
    if int(keep.sum()) * 2 < a.shape[0]:  # low rank: factorised product
        qk = q[:, keep].float()  # (n, k)
        lam2 = (2.0 * lam[keep]).float()  # (k,)
        return lambda tau: ((tau @ qk) * lam2) @ qk.T - b2
    a2 = (2.0 * a).float()
    return lambda tau: tau @ a2 - b2


def wudi(base: StateDict, experts: Sequence[StateDict], *, solver: str = "closed_form", iters: int = 300,
         lr: float = 1e-5, exclude_keys: Sequence[str] = (), rtol: float | None = None,
         check_base: bool | float = True) -> dict[str, torch.Tensor]:
    """WUDI merging: per 2-D weight, the task vector that minimises the interference loss `wudi_objective`
    (task vectors as a data-free proxy of each task's input subspace); every other float tensor (biases,
    norms, embeddings listed in `exclude_keys`) gets the plain average of the task vectors, as FusionBench does.

    Parameters
    ----------
    base, experts : see `average`
    solver : {"closed_form", "adam"}, default="closed_form"
        "adam": FusionBench's iterative optimisation (`wudi_adam`); "closed_form": `wudi_closed_form`.
    iters : int, default=300
        Adam steps (solver="adam").
    lr : float, default=1e-5
        Adam learning rate (solver="adam").
    exclude_keys : sequence of str, default=()
        2-D keys merged by averaging instead (e.g. embeddings, as FusionBench allows).
    rtol : float, optional
        Pseudo-inverse cut-off (solver="closed_form").
    check_base : bool or float, default=True

    Returns
    -------
    dict of str to torch.Tensor

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> b = {"w": torch.randn(4, 3, generator=g)}
    >>> e = [{"w": b["w"] + 0.1 * torch.randn(4, 3, generator=g)} for _ in range(2)]
    >>> wudi(b, e)["w"].shape
    torch.Size([4, 3])
    """
    _prepare(base, experts, check_base)
    check_choice("solver", solver, SOLVERS)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise UserError(f"Invalid iters: {iters!r}; expected an integer >= 1")
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise UserError(f"Invalid lr: {lr!r}; expected a finite number > 0")
    excluded = set(exclude_keys)
    unknown = sorted(excluded - set(base))
    if unknown:
        raise UserError(f"Invalid exclude_keys: {unknown[:5]} not in the state dicts")
    merged = {}
    for k in base:
        if not _mergeable(base[k]):
            continue
        d = _deltas(base, experts, k)
        if base[k].ndim == 2 and k not in excluded:
            # rounding noise of theta_i - theta_base: the weights' own precision, at least float32's (the maths)
            eps = max(torch.finfo(base[k].dtype).eps, torch.finfo(torch.float32).eps)
            noise = eps * float(base[k].double().norm())
            merged[k] = (wudi_closed_form(d, rtol=rtol, noise=noise) if solver == "closed_form"
                         else wudi_adam(d, iters=iters, lr=lr)).float()
        else:
            merged[k] = d.mean(0)
    return _finish(base, merged)


# ------------------------------------------------------------------------------------------------ TSVM
def tsvm_matrix(task_vectors: torch.Tensor, *, rank_rtol: float = DEFAULT_RANK_RTOL) -> torch.Tensor:
    """TSV-Merge of one 2-D weight: keep each task's top singular components, decorrelate them, rebuild.

    With T task vectors tau_i = U_i S_i V_i^T of shape (m, n) and r = min(m, n), each task keeps its top
    k = floor(r / T) components; the kept singular vectors are concatenated, U = [U_1k .. U_Tk] (m, T k),
    V^T = [V_1k^T; ..; V_Tk^T] (T k, n), S = diag(S_1k, .., S_Tk); U and V^T are replaced by their nearest
    orthogonal matrices (the polar factor P Q^T of their own SVD, P Sigma Q^T), and tau = U_perp S V_perp^T.
    T = 1 keeps every component and returns tau_1 itself; r < T keeps none and returns zeros (as the reference).

    Ours: a kept component whose singular value is <= `rank_rtol` times its task's largest is left out. The
    reference keeps it; its singular vectors then span part of a null space, are whatever LAPACK returns, and still
    change the polar factor of every other column, so a task vector of rank below k (a merged LoRA, or an expert
    equal to the base in this weight) gives a result that depends on that arbitrary basis. Leaving them out is
    basis-free, and changes nothing for task vectors of rank >= k. ``rank_rtol=0`` keeps them, as the reference.
    When the kept singular vectors of different tasks are themselves linearly dependent (two identical experts, or
    LoRA stages that share a parent: S, S + D, S + A), the reference's polar factor is not unique either; here the
    polar factor is taken over the non-zero singular values only (`_polar`), which is unique, and equal to the
    reference's when they are independent.

    Parameters
    ----------
    task_vectors : torch.Tensor of shape (T, m, n)
        Already weighted; float32 or float64 (the maths runs in that dtype).
    rank_rtol : float, default=1e-5
        Relative singular-value cut-off (>= 0) for leaving a kept component out; about 100x float32's rounding.

    Returns
    -------
    torch.Tensor of shape (m, n), the input's dtype
    """
    t, m, n = task_vectors.shape
    k = min(m, n) // t  # the reference writes int(r * (1 / T)): one lower only for exact multiples at odd T (49, ...)
    if k == 0:
        return torch.zeros(m, n, dtype=task_vectors.dtype)
    u, s, vh = torch.linalg.svd(task_vectors, full_matrices=False)  # (T, m, r), (T, r), (T, r, n)
    u, s, vh = u[:, :, :k], s[:, :k], vh[:, :k, :]
    keep = s > rank_rtol * s[:, :1] if rank_rtol > 0 else torch.ones_like(s, dtype=torch.bool)  # (T, k); zero tau: none
    if not bool(keep.any()):
        return torch.zeros(m, n, dtype=task_vectors.dtype)
    u_cat = u.permute(1, 0, 2)[:, keep]  # (m, K'): task i's kept columns, tasks in order
    s_cat = s[keep]  # (K',)
    vh_cat = vh[keep]  # (K', n)
    u_perp, vh_perp = _polar(u_cat, rank_rtol), _polar(vh_cat, rank_rtol)  # (m, K'), (K', n)
    return (u_perp * s_cat) @ vh_perp


def _polar(x: torch.Tensor, rtol: float) -> torch.Tensor:
    """The polar factor P Q^T of x = P Sigma Q^T, over the singular values above rtol x the largest (rtol > 0).

    When x has full rank this is the reference's P Q^T. When the kept singular vectors of different tasks are
    linearly dependent (LoRA stages that share a parent: S, S + D, S + A), x is rank-deficient, the reference's
    P Q^T depends on the basis LAPACK picks for the null directions, and the partial isometry over the non-zero
    singular values is the unique part of it (ours; tested invariant to a rotation of the inputs).
    """
    p, sv, q = torch.linalg.svd(x, full_matrices=False)
    if rtol > 0 and sv.numel():
        live = sv > rtol * sv[0]
        p, q = p[:, live], q[live]
    return p @ q


def tsvm(base: StateDict, experts: Sequence[StateDict], *, weights: Sequence[float] | None = None,
         scale: float = 1.0, exclude_keys: Sequence[str] = (), rank_rtol: float = DEFAULT_RANK_RTOL,
         check_base: bool | float = True) -> dict[str, torch.Tensor]:
    """TSV-Merge (Task Singular Vectors): per 2-D weight, `tsvm_matrix` of the (weighted) task vectors; every
    other float tensor (biases, norms, keys in `exclude_keys`) gets the mean of the task vectors.

    theta = theta_base + scale * tau_TSVM. Sources, element by element: the per-layer SVD of each task matrix, the
    truncation of each task to a 1/T share of the rank and the decorrelation of the concatenated singular vectors by
    their nearest orthogonal matrices are the paper's (TSV-M); k = floor(min(m, n) / T), orthogonalising U and V^T
    each by its own SVD (U_perp = P Q^T), the mean for non-2-D tensors, per-task weights applied to the task vectors
    before the SVDs and the global alpha applied after are the reference code's (AntoAndGar/task_singular_vectors
    src/utils/TSVM_utils.py `compute_and_sum_svd_mem_reduction`; FusionBench method/task_singular_vector/TSVM.py,
    whose config default is alpha = 1). The reference's CLIP-specific exclusion of "text_projection" is
    `exclude_keys` here (empty by default). Ours: the kept components are concatenated without the reference's zero
    padding to min(m, n) columns, which gives the same polar factor when the kept vectors are linearly independent;
    components with a (numerically) zero singular value are left out (`rank_rtol`, see `tsvm_matrix`).

    Parameters
    ----------
    base, experts : see `average`
    weights : sequence of float, optional
        T per-task weights >= 0 that scale each task vector before the SVDs (FusionBench's list-valued
        alpha); default all 1.
    scale : float, default=1.0
        The global alpha (> 0) applied to the merged task vector (FusionBench's config default: 1).
    exclude_keys : sequence of str, default=()
        2-D keys merged by the mean of the task vectors instead.
    rank_rtol : float, default=1e-5
        Kept components with a singular value <= rank_rtol x their task's largest are left out (>= 0; 0 keeps them,
        as the reference does).
    check_base : bool or float, default=True

    Returns
    -------
    dict of str to torch.Tensor

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> b = {"w": torch.randn(6, 4, generator=g)}
    >>> e = [{"w": b["w"] + 0.1 * torch.randn(6, 4, generator=g)} for _ in range(2)]
    >>> torch.allclose(tsvm(b, e[:1])["w"], e[0]["w"], atol=1e-6)  # one task keeps every component
    True
    """
    _prepare(base, experts, check_base)
    w, lam = _check_weights(weights, len(experts)), _check_scale(scale)
    if not isinstance(rank_rtol, (int, float)) or not (0 <= rank_rtol < 1):
        raise UserError(f"Invalid rank_rtol: {rank_rtol!r}; expected a number in [0, 1)")
    excluded = set(exclude_keys)
    unknown = sorted(excluded - set(base))
    if unknown:
        raise UserError(f"Invalid exclude_keys: {unknown[:5]} not in the state dicts")
    merged = {}
    for k in base:
        if not _mergeable(base[k]):
            continue
        d = _deltas(base, experts, k)
        d = d * _weight_view(w, d)
        merged[k] = lam * (tsvm_matrix(d, rank_rtol=rank_rtol) if base[k].ndim == 2 and k not in excluded
                           else d.mean(0))
    return _finish(base, merged)


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class MergeInfo:
    """A registered merge: the function, a label for tables, its source, and its tunable defaults.

    `hyper` maps a keyword of `fn` to its default, so experiments can expose them as config fields.
    `stochastic` marks merges that take a `generator`.
    """

    name: str
    label: str
    fn: Callable[..., dict[str, torch.Tensor]]
    reference: str
    hyper: dict[str, Any] = field(default_factory=dict)
    stochastic: bool = False


MERGES: Registry[MergeInfo] = Registry("merge method")
for _info in (
    MergeInfo("average", "Average", average, "Wortsman et al. 2022 (model soups), arXiv 2203.05482"),
    MergeInfo("task_arithmetic", "Task arithmetic", task_arithmetic, "Ilharco et al. 2023, arXiv 2212.04089",
              {"scale": 1.0}),
    MergeInfo("ties", "TIES", ties, "Yadav et al. 2023, arXiv 2306.01708",
              {"scale": 1.0, "density": 0.2, "trim": "tensor"}),
    MergeInfo("dare", "DARE", dare, "Yu et al. 2024, arXiv 2311.03099",
              {"scale": 1.0, "density": 0.5, "consensus": False}, stochastic=True),
    MergeInfo("wudi", "WUDI", wudi, "Cheng et al. 2025, arXiv 2503.08099", {"solver": "closed_form"}),
    MergeInfo("tsvm", "TSVM", tsvm, "Gargiulo et al. 2025 (CVPR), arXiv 2412.00081", {"scale": 1.0}),
):
    MERGES.register(_info.name, _info)


def merge(method: str, base: StateDict, experts: Sequence[StateDict], **kwargs: Any) -> dict[str, torch.Tensor]:
    """Merge `experts` into `base` with the registered `method` (average, task_arithmetic, ties, dare, wudi, tsvm).

    Examples
    --------
    >>> b = {"w": torch.zeros(2)}
    >>> merge("average", b, [{"w": torch.ones(2)}], check_base=False)["w"]
    tensor([1., 1.])
    """
    return MERGES.get(method).fn(base, experts, **kwargs)
