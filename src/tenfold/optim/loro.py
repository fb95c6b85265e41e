"""LORO: Riemannian optimisation of low-rank factors W = B·A, with lazy steps between exact ones.

Paper: Mo, Huang, Wu et al., *LORO: Parameter and Memory Efficient Pretraining via Low-rank Riemannian
Optimization*, ICLR 2025; used by ELAS (arXiv 2605.03667) for its low-rank LLaMA arms. Reference code:
github.com/mzf666/LORO-main (`loro_torch/loro_optim.py` for the optimizer `LOROAdamW`,
`loro_torch/lowrank_module.py` for the factor layout and param groups, `run_c4.py` for the training loop
that picks exact steps and refreshes, `peft_pretraining/training_utils.py` for the "cosine_restart"
schedule, `scripts/loro_c4/llama_*.sh` for the hyperparameters). This file is written from those
formulas; no code is copied.

Implemented: `LORO`, a torch optimizer over a model that holds `tenfold.sparse.elas.LowRankLinear`
layers (M = B.weight, N = A.weight.T): Adam moments on each factor, the lazy factor step with the
r/hidden_size learning-rate scaler, the exact Riemannian step every `exact_every` steps (tangent-space
projection of the Adam-normalised gradient and an SVD retraction, `loro_exact_update`), HF-style AdamW
for every other parameter, scheduled resets of the Adam moments ("refresh"), the official "eucl" variant
(plain factor AdamW), and the "cosine_restart" LR multiplier (`loro_lr_lambda`).
Not implemented: foreach/fused kernels, `correct_bias=False`, the adapter layer `LowRankAdapterLinear`,
the schedule options `lr_jag_after_warmup` and "cosine_restart_zero", CoLA layers (refused: with a
nonlinearity between the factors there is no W = B·A to keep on the rank-r manifold).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from tenfold.common.errors import UserError, check_choice
from tenfold.sparse.elas import LowRankLinear

REFRESH_MODES = ("all", "lrk", "reg", None)
UPDATES = ("loro", "eucl")
GLOBAL_KEYS = ("exact_every", "refresh", "refresh_every", "lr_scaler", "update")  # one value for the whole optimizer
_REFRESH_KINDS = {"all": ("lowrank", "regular"), "lrk": ("lowrank",), "reg": ("regular",), None: ()}


# ---- the exact step ------------------------------------------------------------------------------------
def loro_exact_update(M: Tensor, N: Tensor, dM: Tensor, dN: Tensor, lr: float) -> tuple[Tensor, Tensor]:
    r"""One exact LORO step: W = M Nᵀ moves along the tangent projection of G and is retracted to rank r.

    The full gradient G (out x in) is never formed: with dM = G N and dN = Gᵀ M (what autograd gives
    the factors), QR factorisations M = U Rm, N = V Rn give G V = dM Rn⁻¹ and Uᵀ G = Rm⁻ᵀ dNᵀ.
    Writing K0 = UᵀGV, (UᵀG(I - VVᵀ))ᵀ = Q1 K1 and (I - UUᵀ)GV = Q2 K2 (thin QRs),

    .. math::
        W - \eta P_T(G) = [U\ Q_2]
        \begin{bmatrix} R_m R_n^\top - \eta K_0 & -\eta K_1^\top \\ -\eta K_2 & 0 \end{bmatrix}
        [V\ Q_1]^\top,

    so the best rank-r approximation of the left side comes from the SVD of the 2r x 2r core
    (U_s S V_sᵀ): M' = [U Q2] U_s[:, :r] S[:r]^½ and N' = [V Q1] V_s[:, :r] S[:r]^½.

    Parameters
    ----------
    M : Tensor of shape (out, r)
    N : Tensor of shape (in, r)
    dM : Tensor of shape (out, r)
        Gradient (or Adam-normalised gradient) of M.
    dN : Tensor of shape (in, r)
    lr : float
        Step size η (the optimizer passes the bias-corrected Adam step size, without the lazy scaler).

    Returns
    -------
    (M_new, N_new) : Tensors of the input shapes and dtype. The maths runs in float32 (float64 inputs
    stay float64), as in the official code.
    """
    r = M.shape[1]
    dtype = M.dtype
    work = torch.promote_types(dtype, torch.float32)
    M, N, dM, dN = (t.to(work) for t in (M, N, dM, dN))
    U, Rm = torch.linalg.qr(M)  # (out, r), (r, r)
    V, Rn = torch.linalg.qr(N)  # (in, r), (r, r)
    GV = torch.linalg.solve_triangular(Rn, dM, upper=True, left=False)  # (out, r) = dM Rn⁻¹
    UtG = torch.linalg.solve_triangular(Rm.T, dN.T, upper=False)  # (r, in) = Rm⁻ᵀ dNᵀ
    K0 = UtG @ V  # (r, r)
    Q1, K1 = torch.linalg.qr((UtG - K0 @ V.T).T)  # (in, r), (r, r)
    Q2, K2 = torch.linalg.qr(GV - U @ (U.T @ GV))  # (out, r), (r, r)
    core = torch.zeros(2 * r, 2 * r, dtype=work, device=M.device)
    core[:r, :r] = Rm @ Rn.T - lr * K0
    core[:r, r:] = -lr * K1.T
    core[r:, :r] = -lr * K2
    Us, S, Vh = torch.linalg.svd(core)
    root = S[:r].sqrt()
    M_new = torch.cat([U, Q2], dim=1) @ (Us[:, :r] * root)
    N_new = torch.cat([V, Q1], dim=1) @ (Vh[:r].T * root)
    return M_new.to(dtype), N_new.to(dtype)


# ---- the Adam pieces -----------------------------------------------------------------------------------
def _single_tensor_moments(grads: list[Tensor], states: list[dict], *, beta1: float, beta2: float,
                           eps: float, lr: float) -> tuple[list[Tensor], list[float]]:
    """Adam EMAs in place; returns the normalised gradients m/(√v + eps) and bias-corrected step sizes."""
    normed, step_sizes = [], []
    for g, st in zip(grads, states):
        st["step"] += 1
        st["exp_avg"].mul_(beta1).add_(g, alpha=1.0 - beta1)
        st["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        normed.append(st["exp_avg"] / st["exp_avg_sq"].sqrt().add_(eps))  # eps outside the bias correction (HF)
        t = st["step"]
        step_sizes.append(lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t))
    return normed, step_sizes


def _single_tensor_adamw(params: list[Tensor], normed: list[Tensor], step_sizes: list[float], *, lr: float,
                         weight_decay: float) -> None:
    """HF-style AdamW on regular tensors: p -= step_size·u, then p -= lr·wd·p (decay after the step)."""
    for p, u, s in zip(params, normed, step_sizes):
        p.add_(u, alpha=-s)
        if weight_decay > 0.0:
            p.add_(p, alpha=-lr * weight_decay)


def _single_tensor_lazy(factors: list[Tensor], normed: list[Tensor], step_sizes: list[float], *,
                        scaler: float, weight_decay: float) -> None:
    """Lazy LORO (or "eucl" with scaler 1) on factors: X -= step·scaler·u, then X -= step·wd·X."""
    for x, u, s in zip(factors, normed, step_sizes):
        x.add_(u, alpha=-s * scaler)
        if weight_decay > 0.0:
            x.add_(x, alpha=-s * weight_decay)


def _init_state(state: dict, p: Tensor) -> dict:
    if "exp_avg" not in state:
        state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
    return state


# ---- validation ----------------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_group(g: dict, where: str = "") -> None:
    """Raise UserError("Invalid <name>: ...") for the first bad per-group hyperparameter."""
    lr, betas, eps, wd = g["lr"], g["betas"], g["eps"], g["weight_decay"]
    if isinstance(lr, (Tensor, bool)) or not isinstance(lr, (int, float)) or not lr >= 0.0:
        raise UserError(f"Invalid lr: {lr!r}{where}; expected a float >= 0")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise UserError(f"Invalid betas: {betas!r}{where}; expected two floats in [0, 1)")
    if not isinstance(eps, (int, float)) or not eps >= 0.0:
        raise UserError(f"Invalid eps: {eps!r}{where}; expected a float >= 0")
    if not isinstance(wd, (int, float)) or not wd >= 0.0:
        raise UserError(f"Invalid weight_decay: {wd!r}{where}; expected a float >= 0")


def _check_globals(exact_every, refresh, refresh_every, lr_scaler, update) -> None:
    if not _is_int(exact_every) or exact_every < 1:
        raise UserError(f"Invalid exact_every: {exact_every!r}; expected an int >= 1")
    check_choice("refresh", refresh, REFRESH_MODES)
    if not _is_int(refresh_every) or refresh_every < 1:
        raise UserError(f"Invalid refresh_every: {refresh_every!r}; expected an int >= 1 or None (= exact_every)")
    if lr_scaler != "auto" and (isinstance(lr_scaler, (bool, str)) or not isinstance(lr_scaler, (int, float))
                                or not lr_scaler > 0):
        raise UserError(f"Invalid lr_scaler: {lr_scaler!r}; expected 'auto' (rank / hidden_size) or a float > 0")
    check_choice("update", update, UPDATES)


def _find_pairs(model: nn.Module) -> list[tuple[str, LowRankLinear]]:
    """The trainable `LowRankLinear`s of `model` by name; CoLA layers and half-frozen pairs are refused."""
    pairs = []
    for name, mod in model.named_modules():
        if not isinstance(mod, LowRankLinear):
            continue
        if mod.inner_act:
            raise UserError(f"Invalid model: {name or type(model).__name__!r} is a LowRankLinear with "
                            f"inner_act={mod.inner_act!r} (CoLA); LORO needs W = B·A with no activation between "
                            "the factors")
        trainable = (mod.A.weight.requires_grad, mod.B.weight.requires_grad)
        if trainable == (False, False):
            continue
        if trainable != (True, True):
            raise UserError(f"Invalid model: {name!r} has one frozen factor (A trainable: {trainable[0]}, B "
                            f"trainable: {trainable[1]}); LORO moves both factors or neither")
        pairs.append((name, mod))
    return pairs


# ---- the optimizer -------------------------------------------------------------------------------------
class LORO(Optimizer):
    r"""LORO (Mo et al., ICLR 2025): AdamW moments, lazy factor steps and periodic exact Riemannian steps.

    Every `LowRankLinear` in `model` (W = M Nᵀ with M = B.weight, N = A.weight.T) is a pair of factors.
    Each step, per factor, the Adam moments are updated and the gradient is replaced by
    :math:`\tilde d = m/(\sqrt{v}+\epsilon)`, with step size :math:`\eta_t = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)`.
    Then, with k the optimizer's own step counter (from 0):

    * lazy step (most k): :math:`X \leftarrow X - \eta_t s \tilde d_X`, then
      :math:`X \leftarrow X - \eta_t \lambda X`, for X in {M, N}; s is `lr_scaler`;
    * exact step when (k + 1) % exact_every == 0: `loro_exact_update` (M, N, d̃M, d̃N, η_t) — no scaler,
      no weight decay (as the official code);
    * every other trainable parameter gets HF-style AdamW (decay :math:`p \leftarrow p - \eta\lambda p`
      after the step, eps outside the bias correction), as the official `LOROAdamW`;
    * after the step, when `refresh` is set and (k + 1) % refresh_every == 0, the Adam states of the
      named kinds restart (step 0, zero moments). Pair this with `loro_lr_lambda`, whose short LR
      re-warm-up after each restart is what the official scripts use.

    Parameters
    ----------
    model : nn.Module
        Holds at least one trainable `tenfold.sparse.elas.LowRankLinear` (else UserError: LORO without
        factors is AdamW). CoLA layers (inner_act="silu") are refused, naming the module. Pairs with
        both factors frozen are skipped; a half-frozen pair is refused.
    lr : float, default=1e-3
        Peak learning rate η (`LOROAdamW` default; the official 60M–1B scripts use 0.01 with
        `loro_lr_lambda`).
    betas : (float, float), default=(0.9, 0.999)
        Adam β1, β2 (`LOROAdamW` default, unchanged by the scripts).
    eps : float, default=1e-6
        Added to √v before dividing (`LOROAdamW` default; note it is 1e-8 in torch's AdamW).
    weight_decay : float, default=0.0
        Decoupled decay λ (`LOROAdamW` default and the scripts' value). On factors it uses the
        bias-corrected η_t and only in lazy steps; on regular parameters it uses η, as the official code.
    exact_every : int, default=500
        Exact step every this many steps (scripts: `--loro_freq 500`; the CLI default is 1).
    refresh : {"all", "lrk", "reg", None}, default="all"
        Which Adam states restart: factors ("lrk"), regular parameters ("reg"), both, or none
        (scripts: `--loro_refresh all`; CLI default None).
    refresh_every : int, optional
        Steps between refreshes; None means `exact_every` (scripts: `--loro_refresh_freq` = `--loro_freq`).
    lr_scaler : "auto" or float, default="auto"
        s in the lazy step. "auto" is rank / model.config.hidden_size per layer, the official `-1`
        that the scripts pass (the CLI default is 1.0); a float > 0 is used as is. "auto" without
        `model.config.hidden_size` is refused.
    update : {"loro", "eucl"}, default="loro"
        "eucl" is the official `loro_type="eucl"`: every step is a plain AdamW factor step (no scaler,
        no exact step), the baseline the paper calls Euclidean.
    param_groups : list of dict, optional
        Torch-style groups ({"params": [...], "lr": ..., ...}) for the regular parameters, overriding
        lr/betas/eps/weight_decay per group; regular parameters left out are not optimised, as in
        torch. Listing a factor here is refused (factors always form the first group, built from the
        model). `exact_every`, `refresh`, `refresh_every`, `lr_scaler` and `update` are global and
        refused as group keys.

    Attributes
    ----------
    pairs : list of (str, LowRankLinear)
        The factorised layers, by module name.
    last_exact : bool or None
        Whether the last `step` was an exact one (None before the first step).

    Notes
    -----
    Param group 0 (kind "lowrank") holds the factors [A.weight, B.weight, ...] and the step counter
    "loro_step"; groups after it (kind "regular") hold the rest. All hyperparameters live in the groups,
    so `torch.optim.lr_scheduler.LambdaLR` scales every group and `state_dict()` carries the counter:
    resuming gives a bit-identical next step. The exact step is computed in float32 and cast back to
    the factors' dtype; the moments have the parameters' dtype (bfloat16 models keep bfloat16 moments,
    as the official code run with `--dtype bfloat16`).

    References
    ----------
    Mo et al., "LORO: Parameter and Memory Efficient Pretraining via Low-rank Riemannian Optimization",
    ICLR 2025; code github.com/mzf666/LORO-main.

    Examples
    --------
    >>> import torch
    >>> from tenfold.sparse.elas import LowRankLinear
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(LowRankLinear(16, 16, rank=4, bias=True), torch.nn.Tanh(),
    ...                           LowRankLinear(16, 4, rank=2))
    >>> opt = LORO(net, lr=1e-2, exact_every=2, lr_scaler=1.0)
    >>> for _ in range(4):
    ...     opt.zero_grad()
    ...     net(torch.randn(8, 16)).square().mean().backward()
    ...     opt.step()
    >>> opt.last_exact, opt.param_groups[0]["loro_step"], [n for n, _ in opt.pairs]
    (True, 4, ['0', '2'])
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, exact_every: int = 500, refresh: str | None = "all",
                 refresh_every: int | None = None, lr_scaler: float | str = "auto", update: str = "loro", *,
                 param_groups: list[dict] | None = None):
        if not isinstance(model, nn.Module):
            raise UserError(f"Invalid model: {type(model).__name__}; expected an nn.Module holding LowRankLinear "
                            "layers (LORO pairs factors by module, so it takes the model, not its parameters)")
        refresh_every = exact_every if refresh_every is None else refresh_every
        _check_group(dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        _check_globals(exact_every, refresh, refresh_every, lr_scaler, update)
        self.pairs = _find_pairs(model)
        if not self.pairs:
            raise UserError(f"Invalid model: {type(model).__name__} has no trainable LowRankLinear; LORO without "
                            "factors is plain AdamW (use torch.optim.AdamW), or convert the model first "
                            "(e.g. tenfold.sparse.elas.elasify)")
        hidden_size = None
        if lr_scaler == "auto":
            hidden_size = getattr(getattr(model, "config", None), "hidden_size", None)
            if not _is_int(hidden_size) or hidden_size < 1:
                raise UserError(f"Invalid lr_scaler: 'auto' needs model.config.hidden_size (rank / hidden_size), "
                                f"and {type(model).__name__} has none; pass a float, e.g. lr_scaler=rank/d")
        factors = [t for _, m in self.pairs for t in (m.A.weight, m.B.weight)]
        self._factor_names = {id(t): f"{n}.{k}.weight" for n, m in self.pairs
                              for k, t in (("A", m.A.weight), ("B", m.B.weight))}
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, exact_every=exact_every,
                        refresh=refresh, refresh_every=refresh_every, lr_scaler=lr_scaler, update=update)
        groups = [dict(params=factors, kind="lowrank", loro_step=0, hidden_size=hidden_size,
                       ranks=[m.rank for _, m in self.pairs])]
        if param_groups is None:
            regular = [p for p in model.parameters() if p.requires_grad and id(p) not in self._factor_names]
            groups += [dict(params=regular)] if regular else []
        else:
            groups += list(param_groups)
        self.last_exact: bool | None = None
        super().__init__(groups, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of regular parameters (kind "regular"), checked like the constructor's."""
        g = dict(param_group)
        if g.get("kind") != "lowrank" or self.param_groups:  # only the constructor's first group holds factors
            where = f" (param group {len(self.param_groups)})"
            if not isinstance(param_group, dict) or "params" not in g:
                raise UserError(f"Invalid param_groups{where}: expected a dict with 'params'")
            for k in (*GLOBAL_KEYS, "kind", "loro_step", "hidden_size", "ranks"):
                if k in g:
                    raise UserError(f"Invalid param_groups{where}: key {k!r} is set once for the optimizer, not "
                                    "per group")
            params = [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])
            for p in params:
                if id(p) in self._factor_names:
                    raise UserError(f"Invalid param_groups{where}: {self._factor_names[id(p)]} is a LORO factor; "
                                    "factors are grouped by the optimizer, list only regular parameters")
            g.update(params=params, kind="regular")
        super().add_param_group(g)
        _check_group(self.param_groups[-1], f" (param group {len(self.param_groups) - 1})")

    # ---- stepping --------------------------------------------------------------------------------------
    def _regular_step(self, group: dict) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                raise RuntimeError("LORO does not support sparse gradients")
        states = [_init_state(self.state[p], p) for p in params]
        beta1, beta2 = group["betas"]
        normed, sizes = _single_tensor_moments([p.grad for p in params], states, beta1=beta1, beta2=beta2,
                                               eps=group["eps"], lr=group["lr"])
        _single_tensor_adamw(params, normed, sizes, lr=group["lr"], weight_decay=group["weight_decay"])

    def _lowrank_step(self, group: dict, exact: bool) -> None:
        beta1, beta2 = group["betas"]
        for (name, mod), rank in zip(self.pairs, group["ranks"]):
            a, b = mod.A.weight, mod.B.weight
            if a.grad is None and b.grad is None:
                continue  # layer unused this step
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in (a, b)]
            if any(g.is_sparse for g in grads):
                raise RuntimeError(f"LORO does not support sparse gradients ({name})")
            states = [_init_state(self.state[p], p) for p in (a, b)]
            (da, db), (sa, sb) = _single_tensor_moments(grads, states, beta1=beta1, beta2=beta2,
                                                        eps=group["eps"], lr=group["lr"])
            if group["update"] == "eucl":
                _single_tensor_lazy([a, b], [da, db], [sa, sb], scaler=1.0, weight_decay=group["weight_decay"])
            elif not exact:
                scaler = rank / group["hidden_size"] if group["lr_scaler"] == "auto" else float(group["lr_scaler"])
                _single_tensor_lazy([a, b], [da, db], [sa, sb], scaler=scaler, weight_decay=group["weight_decay"])
            else:
                # M = B.weight (out, r), N = A.weight.T (in, r); η_t of M, as the official code (equal to N's)
                M_new, N_new = loro_exact_update(b, a.T, db, da.T, sb)
                b.copy_(M_new)
                a.copy_(N_new.T)

    def refresh_states(self, mode: str | None) -> None:
        """Restart the Adam states (step 0, zero moments) of "lrk" (factors), "reg" (regular) or "all"."""
        check_choice("refresh", mode, REFRESH_MODES)
        for group in self.param_groups:
            if group["kind"] in _REFRESH_KINDS[mode]:
                for p in group["params"]:
                    if p in self.state:
                        self.state[p] = dict(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, *, exact: bool | None = None):
        """One LORO step; exact when (loro_step + 1) % exact_every == 0 unless `exact` forces it.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (run with gradients enabled).
        exact : bool, optional
            Force an exact (True) or lazy (False) factor step; the counter advances either way.

        Returns
        -------
        The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lrk = self.param_groups[0]
        k = lrk["loro_step"]
        if exact is None:
            exact = (k + 1) % lrk["exact_every"] == 0
        exact = bool(exact) and lrk["update"] == "loro"
        for group in self.param_groups:
            if group["kind"] == "lowrank":
                self._lowrank_step(group, exact)
            else:
                self._regular_step(group)
        if lrk["refresh"] is not None and (k + 1) % lrk["refresh_every"] == 0:
            self.refresh_states(lrk["refresh"])
        lrk["loro_step"] = k + 1
        self.last_exact = exact
        return loss


# ---- the learning-rate schedule ------------------------------------------------------------------------
def _cosine_restart(step: int, *, total_steps: int, warmup_steps: int, restart_every: int, restart_warmup: int,
                    min_lr_ratio: float, lr_adjust_steps: int, eps: float = 1e-6) -> float:
    """The official `_get_cosine_schedule_with_multiple_warmups_lambda` (lr_jag_after_warmup=False)."""
    if step < warmup_steps:
        peak = 0.5 * (1.0 + math.cos(math.pi * (-lr_adjust_steps) / max(1, total_steps - warmup_steps)))
        in_cycle, cycle = step % restart_every, step // restart_every
        if in_cycle < restart_warmup and cycle != 0:
            target = cycle * restart_every / max(1, warmup_steps) * (peak - min_lr_ratio) + min_lr_ratio
            return in_cycle / max(1, restart_warmup) * (target - eps) + eps
        return step / max(1, warmup_steps) * (peak - min_lr_ratio) + min_lr_ratio
    shifted = step + lr_adjust_steps
    in_cycle, cycle = shifted % restart_every, shifted // restart_every
    if in_cycle < restart_warmup and cycle > 0:
        progress = (cycle * restart_every - warmup_steps) / max(1, total_steps - warmup_steps)
        target = min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return in_cycle / max(1, restart_warmup) * (target - eps) + eps
    progress = (shifted - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def loro_lr_lambda(total_steps: int, warmup_steps: int, restart_every: int, restart_warmup: int = 5,
                   min_lr_ratio: float = 0.1, lr_adjust_steps: int | None = None) -> Callable[[int], float]:
    """The official "cosine_restart" LR multiplier (step -> factor of the peak lr) for `LambdaLR`.

    A linear warm-up from `min_lr_ratio` over `warmup_steps`, then cosine decay to `min_lr_ratio`; every
    `restart_every` steps (set it to the optimizer's `refresh_every`) the multiplier drops to ~0 and
    climbs back linearly over `restart_warmup` steps, so the first steps after an Adam-state refresh
    are small. `lr_adjust_steps` shifts the post-warm-up part: with the official scripts' -warmup_steps
    (W) the restarts stay at multiples of `restart_every` after the warm-up, and the cosine's progress
    is (step - 2W) / (total - W), so the multiplier peaks at 1 at step 2W (the warm-up climbs to the
    cosine's value there) and ends above `min_lr_ratio` (at progress (total - 2W) / (total - W)).

    Parameters
    ----------
    total_steps : int
        Training steps (official `--num_training_steps`, 10000 for 60M).
    warmup_steps : int
        First warm-up (official `--warmup_steps`, 1000).
    restart_every : int
        Steps per cycle (official `--cosine_restart_freq` = the refresh frequency, 500).
    restart_warmup : int, default=5
        Re-warm-up length after each restart (official `--cosine_restart_warmup` default).
    min_lr_ratio : float, default=0.1
        Floor of the cosine and start of the warm-up (official default), in (0, 1].
    lr_adjust_steps : int, optional
        Shift of the post-warm-up schedule; None means -warmup_steps (the official scripts' value;
        the CLI default is 0).

    Returns
    -------
    callable
        A picklable `functools.partial` of step -> multiplier.

    Examples
    --------
    >>> f = loro_lr_lambda(10000, warmup_steps=1000, restart_every=500)
    >>> round(f(0), 3), f(500), round(f(505), 4), f(1500) < 1e-5 < f(1501)
    (0.1, 1e-06, 0.5393, True)
    """
    lr_adjust_steps = -warmup_steps if lr_adjust_steps is None else lr_adjust_steps
    for name, v, lo in (("total_steps", total_steps, 1), ("warmup_steps", warmup_steps, 0),
                        ("restart_every", restart_every, 1), ("restart_warmup", restart_warmup, 0)):
        if not _is_int(v) or v < lo:
            raise UserError(f"Invalid {name}: {v!r}; expected an int >= {lo}")
    if not _is_int(lr_adjust_steps):
        raise UserError(f"Invalid lr_adjust_steps: {lr_adjust_steps!r}; expected an int or None")
    if not 0.0 < min_lr_ratio <= 1.0:
        raise UserError(f"Invalid min_lr_ratio: {min_lr_ratio!r}; expected a float in (0, 1]")
    if not lr_adjust_steps + warmup_steps < total_steps:
        raise UserError(f"Invalid lr_adjust_steps: {lr_adjust_steps}; expected lr_adjust_steps + warmup_steps "
                        f"({lr_adjust_steps + warmup_steps}) < total_steps ({total_steps})")
    return functools.partial(_cosine_restart, total_steps=total_steps, warmup_steps=warmup_steps,
                             restart_every=restart_every, restart_warmup=restart_warmup,
                             min_lr_ratio=float(min_lr_ratio), lr_adjust_steps=lr_adjust_steps)


__all__ = ["LORO", "loro_exact_update", "loro_lr_lambda"]
