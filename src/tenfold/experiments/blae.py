"""Reproduction of BLAE (paper 7, arXiv 2604.06701) in the shape of the paper's protocol, scaled to 2 CPU cores.

Claims (abstract, Table 1): BLAE preserves manifold structure better than existing autoencoders, measured (as the
reference code's `utils/measures.py` does) by k-NN recall and Gaussian-kernel density KL on k-NN-graph geodesic
distances (k = 10) in both spaces; and its embedding of a rotated-'3' ring stays the same under uniform and
non-uniform sampling (the paper's robustness figure).

Data: the reference repository's swiss roll (arc-length-uniform log spiral with a removed band; 1,500 training
points as in its notebook), the S-curve (sklearn), and a ring of one MNIST '3' rotated through 360 degrees, trained
once on uniformly and once on non-uniformly sampled angles (convolutional AEs of the reference's MNIST shape).
Every metric is computed on held-out test points; the two ring models embed the same uniform test images, and
their Procrustes disparity measures how much the sampling density changed the embedding.

Arms: BLAE with the paper's losses (default), the reference notebook's runnable recipe (one-sided bi-Lipschitz
form, L = 1), this project's former default (no non-expansion penalty, two-sided kappa = 1); the paper's baselines
SPAE, TopoAE, GRAE, IRAE, GGAE and a plain AE; GeoAE (ours, not in the paper); PCA, Isomap and UMAP as
non-autoencoder references. Every autoencoder: same networks, epochs, batch (a third of the data), Adam 2e-3 with
the reference step schedule, no early stopping; every regularised one gets the same grid (its published weights
x {1/3, 1, 3}), chosen on a validation split of a separate tuning draw of the swiss roll by geodesic k-NN recall.

Scale-downs (declared): 1,000 epochs for the point clouds (reference 3,000; the regime check asks every
autoencoder's loss to have flattened), the grid tuned once on the swiss roll (the paper tunes per data set), 180
ring training images, 3 seeds. Commands: `tenfold reproduce blae` (quick), `--mode full`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.common.atomic import atomic_write_json
from tenfold.common.config import config_key, field
from tenfold.harness import Arm, Claim, Experiment, Metric, Regime, UnitResult
from tenfold.harness.cells import locked_cells

CASES = ("swiss", "scurve", "ring")
CASE_LABEL = {"swiss": "swiss roll (reference generator, band removed)", "scurve": "S-curve",
              "ring_u": "rotated-'3' ring, uniform sampling", "ring_n": "rotated-'3' ring, non-uniform sampling"}
# evaluated data sets: the ring case trains twice (uniform and non-uniform angles), both scored on uniform test images
SETS = ("swiss", "scurve", "ring_u", "ring_n")
EMBED_SEED = 0  # the seed whose test embeddings are kept for the 2-D plots
TUNE_SEED = 10_000  # the tuning draw: its own data and initialisation, never one of the evaluation seeds

# arm -> (estimator class, fixed parameters, the regulariser weights the grid multiplies, source of the weights)
AE_SPECS = {
    "blae": ("BLAE", {}, ("lam_inj", "lam_bilip"),
             "paper's losses; weights 1 / 0.3 from the reference notebook; kappa 2 our guess"),
    "blae_notebook": ("BLAE", {"bilipschitz": "code", "kappa": 1.0}, ("lam_inj", "lam_bilip"),
                      "reference swiss_roll.ipynb: one-sided pull-back-metric penalty, L = 1"),
    "blae_former": ("BLAE", {"injective": "separation", "kappa": 1.0}, ("lam_inj", "lam_bilip"),
                    "this project's former default: no non-expansion penalty, two-sided kappa = 1 (ours)"),
    "ae": ("AE", {}, (), "reconstruction only"),
    "spae": ("SPAE", {}, ("lam_spae",), "reference notebook weight"),
    "topoae": ("TopoAE", {"form": "code"}, ("lam_topo",),
               "reference notebook weight; the reference TopoLoss computation, which produced the paper's numbers"),
    "grae": ("GRAE", {}, ("lam_grae",), "reference notebook weight"),
    "irae": ("IRAE", {}, ("lam_irae",), "reference notebook weight"),
    "ggae": ("GGAE", {}, ("lam_ggae",), "reference notebook weight"),
    "geoae": ("GeoAE", {}, ("lam_geo",), "ours: relative geodesic-distance MSE, not a paper baseline"),
}
AE_LABEL = {"blae": "BLAE", "blae_notebook": "BLAE, notebook recipe (L=1)",
            "blae_former": "BLAE, former default (ours)",
            "ae": "AE", "spae": "SPAE", "topoae": "TopoAE (reference loss)", "grae": "GRAE", "irae": "IRAE", "ggae": "GGAE",
            "geoae": "GeoAE (ours)"}
PAPER_BASELINES = ("ae", "spae", "topoae", "grae", "irae", "ggae")
REFERENCES = {"pca": "PCA", "isomap": "Isomap", "umap": "UMAP"}
RANKED = ("blae", *PAPER_BASELINES)  # the arms of the rank table (the paper's Table 1 ranks BLAE and its baselines)
RANK_METRICS = ("geo_knn", "geo_kl0.01", "geo_kl0.1", "geo_kl1", "mse")
RING_KS = (2, 4, 6, 8, 10)  # k-NN recall's k on the rings (reference MetricsEvaluator, rotating MNIST); else 5..45


@dataclass
class BLAEConfig:
    cases: tuple[str, ...] = field(CASES, help="data cases to run (subset of swiss,scurve,ring)")
    n_train: int = field(1500, help="training points of the swiss roll and S-curve (reference notebook: 1,500)")
    n_test: int = field(1000, help="held-out points on which every metric is computed (reference: 8,500)")
    epochs: int = field(1000, help="epochs of every point-cloud autoencoder (reference notebook: 3000)")
    ring_train: int = field(180, help="training images of each rotated-'3' ring (uniform / non-uniform angles)")
    ring_test: int = field(360, help="uniform test images of the ring")
    ring_epochs: int = field(300, help="epochs of every ring autoencoder (convolutional)")
    hidden: int = field(256, help="hidden width of the MLP autoencoders (reference: 256)")
    batches_per_epoch: int = field(3, help="batches per epoch: batch = a third of the data (reference: N/3)")
    n_neighbors: int = field(5, help="k of the k-NN graph for the training losses' geodesics (reference: 5)")
    metric_neighbors: int = field(10, help="k of the k-NN graph for the metrics' geodesics (reference measures: 10)")
    lam_grid: tuple[float, ...] = field((1 / 3, 1.0, 3.0), help="multipliers of each arm's published weights tried "
                                        "on the tuning draw")
    n_val: int = field(500, help="validation points of the tuning draw (geodesic k-NN recall picks the weight)")
    use_umap: bool = field(True, help="add a UMAP reference arm when umap-learn is installed")


def _check_config(cfg) -> None:
    """Refuse bad settings before any unit runs (the runner builds the arms first)."""
    from tenfold.common.errors import UserError, check_choice

    if not cfg.cases:
        raise UserError(f"Invalid cases: empty; expected a subset of {', '.join(CASES)}")
    for c in cfg.cases:
        check_choice("cases", c, CASES)
    for name in ("n_train", "n_test", "epochs", "ring_train", "ring_test", "ring_epochs", "hidden",
                 "batches_per_epoch", "n_neighbors", "metric_neighbors", "n_val"):
        if getattr(cfg, name) < 1:
            raise UserError(f"Invalid {name}: {getattr(cfg, name)}; expected an integer >= 1")
    if min(cfg.n_test, cfg.ring_test, cfg.n_val) < 50:
        raise UserError(f"Invalid n_test/ring_test/n_val: {cfg.n_test}/{cfg.ring_test}/{cfg.n_val}; expected >= 50 "
                        "each (k-NN recall uses k up to 45)")
    if not cfg.lam_grid or min(cfg.lam_grid) <= 0:
        raise UserError(f"Invalid lam_grid: {cfg.lam_grid}; expected one or more positive multipliers")


def _arms(cfg):
    _check_config(cfg)
    role = {"blae": "method", "blae_notebook": "ablation", "blae_former": "ablation", "geoae": "reference"}
    arms = [Arm(a, role.get(a, "baseline"), AE_LABEL[a], {"cls": AE_SPECS[a][0]}) for a in AE_SPECS]
    arms += [Arm(n, "reference", lab, {"cls": lab}) for n, lab in REFERENCES.items()
             if n != "umap" or (cfg.use_umap and _has_umap())]
    return arms


def _has_umap() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------- data

def load_set(name: str, cfg: BLAEConfig, seed: int, *, n_test: int | None = None):
    """(X_train, X_test, colour of the test points, colour name) for one evaluated set; `n_test` overrides the
    test size (the tuning draw's validation points)."""
    from tenfold.data.manifolds import digit_image, reference_swiss_roll, rotated_digit_ring, s_curve

    rng = np.random.default_rng(1000 + seed)
    if name in ("swiss", "scurve"):
        n_te = cfg.n_test if n_test is None else n_test
        n = cfg.n_train + n_te
        X, t = reference_swiss_roll(n, seed=seed) if name == "swiss" else s_curve(n, seed=seed)
        idx = rng.permutation(n)
        tr, te = idx[:cfg.n_train], idx[cfg.n_train:]
        return X[tr], X[te], t[te, 0], "arc length" if name == "swiss" else "t"
    if name in ("ring_u", "ring_n"):
        img = digit_image(3, 0)
        Xtr, _ = rotated_digit_ring(img, cfg.ring_train, sampling="uniform" if name == "ring_u" else "nonuniform",
                                    seed=seed)
        Xte, ang = rotated_digit_ring(img, cfg.ring_test, sampling="uniform", seed=50_000 + seed)
        return Xtr, Xte, ang, "angle"
    raise ValueError(f"Invalid set: {name!r}; expected one of {', '.join(SETS)}")


def _sets(cfg) -> list[str]:
    return [s for s in SETS if (s if s in CASES else "ring") in cfg.cases]


# --------------------------------------------------------------------------------------------- estimators

def _estimator(arm: str, cfg: BLAEConfig, seed: int, n_train: int, *, ring: bool, mult: float = 1.0):
    from tenfold import manifold

    if arm in REFERENCES:
        if arm == "pca":
            from sklearn.decomposition import PCA

            return PCA(2, random_state=seed)
        if arm == "isomap":
            from sklearn.manifold import Isomap

            return Isomap(n_neighbors=cfg.n_neighbors, n_components=2)
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
    cls_name, fixed, weights, _ = AE_SPECS[arm]
    cls = getattr(manifold, cls_name)
    est = cls(2, **fixed, epochs=cfg.ring_epochs if ring else cfg.epochs, hidden=cfg.hidden,
              architecture="conv28" if ring else "mlp", batch_size=math.ceil(n_train / cfg.batches_per_epoch),
              n_neighbors=cfg.n_neighbors, random_state=seed, connect_components=True)
    if weights and mult != 1.0:
        est.set_params(**{w: getattr(est, w) * mult for w in weights})
    return est


def _loss_rel_change(curve: list[float]) -> float:
    """|mean of the last tenth of the epochs - mean of the tenth before| / mean of the tenth before; 1e9 when the
    curve is not finite (a diverged run counts as not converged)."""
    n = max(1, len(curve) // 10)
    if len(curve) < 2 * n:
        return float("nan")
    if not np.isfinite(curve).all():
        return 1e9
    last, before = np.mean(curve[-n:]), np.mean(curve[-2 * n:-n])
    return float(abs(last - before) / max(abs(before), 1e-12))


def _peak_phase(curve: list[float], epochs: int) -> list[float]:
    """The epochs at the peak learning rate: the first third under the reference step schedule."""
    return list(curve[:max(1, epochs // 3)])


def _fit_score(arm: str, name: str, cfg, seed: int, *, mult: float = 1.0, n_test: int | None = None):
    """Fit one arm on one set; (metrics dict, test embedding, fitted estimator, colour, colour name)."""
    from tenfold.manifold import evaluate_embedding

    Xtr, Xte, colour, cname = load_set(name, cfg, seed, n_test=n_test)
    est = _estimator(arm, cfg, seed, len(Xtr), ring=name.startswith("ring"), mult=mult)
    t0 = time.perf_counter()
    Z = est.fit(Xtr).transform(Xte)
    fit_s = time.perf_counter() - t0
    X_hat = est.inverse_transform(Z) if hasattr(est, "inverse_transform") and arm != "isomap" and arm != "umap" \
        else None
    ks = RING_KS if name.startswith("ring") else tuple(range(5, 50, 5))
    m = evaluate_embedding(Xte, Z, X_hat=X_hat, ks=ks, geodesic=True, n_graph_neighbors=cfg.metric_neighbors)
    m["fit_s"] = fit_s
    if hasattr(est, "loss_curve_"):
        m["loss_curve"] = [float(f"{v:.6g}") for v in est.loss_curve_]
        m["loss_rel_change"] = _loss_rel_change(est.loss_curve_)
        m["peak_rel_change"] = _loss_rel_change(_peak_phase(est.loss_curve_, est.epochs))
        m["final_loss"] = float(est.loss_curve_[-1])
    return m, Z, colour, cname


# --------------------------------------------------------------------------------------------- tuning

def _tuning_key(cfg) -> str:
    return config_key(cfg, drop=("cases", "n_test", "ring_train", "ring_test", "ring_epochs", "use_umap"))


def _tuned_mult(arm: str, cfg, ctx) -> tuple[float, dict]:
    """The grid multiplier with the best validation geodesic k-NN recall on the tuning draw of the swiss roll
    (ties: the published weight); each grid cell is computed once per run folder, under a lock, so parallel units
    share it."""
    if not AE_SPECS.get(arm, (None, None, ()))[2] or len(cfg.lam_grid) == 1:
        return 1.0, {}

    def cell(mult):
        m, *_ = _fit_score(arm, "swiss", cfg, TUNE_SEED, mult=mult, n_test=cfg.n_val)
        return {"geo_knn": m["geo_knn"], "metrics": m}

    recs = locked_cells(ctx.work_dir.parent / f"tuning-{_tuning_key(cfg)}",
                        {f"{arm}-{mult:.6g}": (lambda m=mult: cell(m)) for mult in cfg.lam_grid})
    scores = {mult: recs[f"{arm}-{mult:.6g}"]["geo_knn"] for mult in cfg.lam_grid}
    best = max(cfg.lam_grid, key=lambda m: (round(scores[m], 6), m == 1.0))
    return best, {f"{m:.6g}": scores[m] for m in cfg.lam_grid}


# --------------------------------------------------------------------------------------------- one unit

def _run(arm, seed, cfg, ctx):
    _check_config(cfg)
    mult, tuning = _tuned_mult(arm.name, cfg, ctx)
    metrics, per_set, embeddings, curves = {}, {}, {}, {}
    for name in ctx.progress(_sets(cfg), desc=f"{arm.name} sets"):
        done = ctx.work_dir / f"{name}.json"  # a finished set is a mid-unit checkpoint
        if done.exists():
            rec = json.loads(done.read_text())
        else:
            m, Z, colour, cname = _fit_score(arm.name, name, cfg, seed, mult=mult)
            rec = {"metrics": m, "z": np.round(Z, 5).tolist(), "c": np.round(colour, 3).tolist(), "cname": cname}
            atomic_write_json(done, rec)
        m = dict(rec["metrics"])
        loss = m.pop("loss_curve", None)
        if loss:  # the training objective per epoch: what the convergence checks read
            curves[f"train_loss_{name}"] = {"x": list(range(1, len(loss) + 1)), "y": loss, "xlabel": "epoch",
                                            "ylabel": f"training objective, {name}", "logy": True}
        per_set[name] = m
        if seed == EMBED_SEED:
            embeddings[name] = {"z": np.round(np.asarray(rec["z"]), 4).tolist(), "c": rec["c"], "cname": rec["cname"]}
        for k in ("geo_knn", "geo_kl0.01", "geo_kl0.1", "geo_kl1", "knn", "kl0.1", "mse"):
            if m.get(k) is not None:
                metrics[f"{name}_{k}"] = m[k]
        for k in ("loss_rel_change", "peak_rel_change"):  # the worst set (NaN, too short a curve, propagates)
            if k in m:
                metrics[k] = float(np.fmax(metrics.get(k, -np.inf), m[k])) if not np.isnan(m[k]) else float("nan")
        if name == "ring_n" and "ring_u" in per_set:  # the same uniform test images, embedded by both ring models
            from scipy.spatial import procrustes

            zu = np.asarray(json.loads((ctx.work_dir / "ring_u.json").read_text())["z"])
            _, _, disparity = procrustes(zu, np.asarray(rec["z"]))
            metrics["ring_shift_procrustes"] = float(disparity)
    metrics["lam_mult"] = mult
    return UnitResult(metrics=metrics, curves=curves,
                      extra={"per_set": per_set, "embeddings": embeddings, "tuning": tuning})


def _derive(units: dict, cfg) -> dict:
    """Per seed: each ranked arm's rank among BLAE and the paper's baselines on every set and metric (1 = best,
    ties share the mean rank), averaged over the sets, as the paper's Table 1 averages ranks over data sets."""
    out: dict = {}
    seeds = {s for (_, s) in units}
    for seed in seeds:
        present = [a for a in RANKED if (a, seed) in units]
        if len(present) < 2:
            continue
        for metric in RANK_METRICS:
            higher = metric == "geo_knn"
            sums = {a: [] for a in present}
            for name in _sets(cfg):
                vals = {a: units[(a, seed)]["metrics"].get(f"{name}_{metric}") for a in present}
                if any(v is None or not math.isfinite(v) for v in vals.values()):
                    continue
                for a, r in _ranks(vals, higher).items():
                    sums[a].append(r)
            for a in present:
                if sums[a]:
                    out.setdefault((a, seed), {})[f"rank_{metric}"] = float(np.mean(sums[a]))
    return out


def _ranks(vals: dict, higher: bool) -> dict:
    items = sorted(vals.items(), key=lambda kv: -kv[1] if higher else kv[1])
    out, i = {}, 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1][1] == items[i][1]:
            j += 1
        for k in range(i, j + 1):
            out[items[k][0]] = (i + j) / 2 + 1
        i = j + 1
    return out


# --------------------------------------------------------------------------------------------- plots

def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    arms = results["arms"]
    paths = []
    sets = [s for s in SETS if any(s in e.get("embeddings", {}) for a in arms for e in a["extra"].values())]
    if sets:
        fig, axes = plt.subplots(len(sets), len(arms), figsize=(1.7 * len(arms), 1.8 * len(sets)), squeeze=False)
        for i, name in enumerate(sets):
            for j, a in enumerate(arms):
                ax = axes[i, j]
                ax.set_xticks([]); ax.set_yticks([])
                emb = a["extra"].get(str(EMBED_SEED), {}).get("embeddings", {}).get(name)
                if emb:
                    z = np.asarray(emb["z"])
                    ax.scatter(z[:, 0], z[:, 1], c=emb["c"], s=2, cmap="twilight" if name.startswith("ring")
                               else "Spectral")
                if i == 0:
                    ax.set_title(a["label"], fontsize=6)
                if j == 0:
                    ax.set_ylabel(f"{name}\n({emb['cname'] if emb else ''})", fontsize=7)
        fig.suptitle(f"blae: test embeddings (seed {EMBED_SEED}), coloured by the ground-truth coordinate", fontsize=9)
        paths.append(save(fig, out / "embeddings.png"))
    # the paper's Table 1 beside ours: average ranks (lower is better) over the sets
    rows = []
    for a in arms:
        if a["name"] not in RANKED:
            continue
        row = [a["label"]]
        for metric in RANK_METRICS:
            v = a["mean"].get(f"rank_{metric}")
            row.append("-" if v is None else f"{v:.2f}")
        rows.append(row)
    if rows:
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.0))
        ax.axis("off")
        tab = ax.table(cellText=rows, colLabels=["arm", "k-NN", "KL0.01", "KL0.1", "KL1", "MSE"], loc="center",
                       cellLoc="center")
        tab.auto_set_font_size(False); tab.set_fontsize(8); tab.scale(1, 1.2)
        ax.set_title("average rank among BLAE and the paper's baselines (1 = best), mean over seeds; "
                     "geodesic k=10 metrics on test points", fontsize=8)
        paths.append(save(fig, out / "rank_table.png"))
    keys = ["geo_knn", "geo_kl0.01", "geo_kl0.1", "geo_kl1", "knn", "kl0.1", "mse", "loss_rel_change", "fit_s"]
    for name in [s for s in SETS if any(s in e.get("per_set", {}) for a in arms for e in a["extra"].values())]:
        rows = []
        for a in arms:
            vals = [e["per_set"][name] for e in a["extra"].values() if name in e.get("per_set", {})]
            row = [a["label"]]
            for k in keys:
                xs = [v[k] for v in vals if v.get(k) is not None]
                row.append(f"{np.mean(xs):.3g}±{np.std(xs, ddof=1) if len(xs) > 1 else 0:.2g}" if xs else "-")
            rows.append(row)
        fig, ax = plt.subplots(figsize=(13, 0.35 * len(rows) + 0.9))
        ax.axis("off")
        tab = ax.table(cellText=rows, colLabels=["arm"] + keys, loc="center", cellLoc="center",
                       colWidths=[0.16] + [0.84 / len(keys)] * len(keys))
        tab.auto_set_font_size(False); tab.set_fontsize(7); tab.scale(1, 1.2)
        ax.set_title(f"{CASE_LABEL[name]}: test metrics, mean±std over seeds (geo_* on k=10 graph geodesics; "
                     "knn higher better, kl/mse lower better)", fontsize=8)
        paths.append(save(fig, out / f"table_{name}.png"))
    return paths


# --------------------------------------------------------------------------------------------- declaration

def _metrics():
    out = []
    for s in SETS:
        lab = CASE_LABEL[s]
        out += [Metric(f"{s}_geo_knn", "recall", True, f"{lab}: k-NN recall, k=5..45, geodesic (k=10 graph) "
                       "distances in X and Z, test points (the paper's metric)"),
                Metric(f"{s}_geo_kl0.01", "nats", False, f"{lab}: density KL at sigma=0.01, geodesic distances"),
                Metric(f"{s}_geo_kl0.1", "nats", False, f"{lab}: density KL at sigma=0.1, geodesic distances"),
                Metric(f"{s}_geo_kl1", "nats", False, f"{lab}: density KL at sigma=1, geodesic distances"),
                Metric(f"{s}_knn", "recall", True, f"{lab}: k-NN recall on Euclidean distances (our earlier metric)"),
                Metric(f"{s}_kl0.1", "nats", False, f"{lab}: density KL(0.1) on Euclidean distances (earlier metric)"),
                Metric(f"{s}_mse", "sq. units", False, f"{lab}: reconstruction MSE, test points")]
    out += [Metric("ring_shift_procrustes", "", False, "Procrustes disparity between the test embeddings of the ring "
                   "models trained on uniform and on non-uniform angles (0 = the same embedding up to rotation, "
                   "scale and reflection)"),
            Metric("loss_rel_change", "", False, "largest relative change of an autoencoder's training loss over the "
                   "last tenth of its epochs, over the sets (convergence; 1e9 when the loss was not finite)"),
            Metric("peak_rel_change", "", False, "largest relative change of the training loss over the last tenth of "
                   "the peak-learning-rate phase (the first third of the epochs), over the sets"),
            Metric("lam_mult", "x", True, "grid multiplier of the arm's published weights chosen on the tuning draw")]
    out += [Metric(f"rank_{m}", "rank", False, f"average rank on {m} among BLAE and the paper's baselines over the "
                   "sets (1 = best; derived per seed)") for m in RANK_METRICS]
    return out


# Declared before any full run (issue 28). Each claim is gated on the arms it compares (every seed and set; the worst
# counts): (1) the check, the training loss moved by less than 1% over the last tenth of the epochs; (2) since
# the reference step schedule makes the last third nearly flat whatever happened before, also the last tenth of the
# peak-learning-rate phase (the first third), where the 1,000-epoch scale-down (333 epochs at the peak rate, the
# reference 1,000) would show, with 2% for minibatch noise; (3) for the ring-robustness claims, both ring models
# learned the ring (geodesic k-NN recall >= 0.5 on uniform test images), since two collapsed embeddings agree too.
_WHY_CONV = ("the paper trains every autoencoder to the end of 3000 epochs without early stopping; comparing arms "
             "still moving measures convergence speed, not the learned geometry (issue 28)")


def _converged(arms: tuple[str, ...]) -> tuple[Regime, Regime]:
    return (Regime("converged", "loss_rel_change", arms, "<", 0.01, _WHY_CONV, stat="max"),
            Regime("peak_phase_flat", "peak_rel_change", arms, "<", 0.02, "the peak-rate phase is where our 1,000 "
                   "epochs cut the reference's training (333 vs 1,000 epochs at lr 2e-3); a loss still falling there "
                   "means the scale-down changed what was learned", stat="max"))


def _ring_learned(arms: tuple[str, ...]) -> Regime:
    return Regime("ring_learned", "ring_u_geo_knn", arms, ">=", 0.5, "embedding stability under non-uniform "
                  "sampling only means something for embeddings of the ring; two collapsed ones agree as well",
                  stat="min")


_SRC = "abstract and Table 1 of arXiv 2604.06701 (average ranks; per-set numbers not retrieved)"


def _claims():
    out = []
    for s in SETS:
        for b in PAPER_BASELINES:
            out.append(Claim(f"{s}_knn_vs_{b}", f"BLAE preserves manifold structure better than {AE_LABEL[b]} on "
                             f"{CASE_LABEL[s]}: higher geodesic k-NN recall ({_SRC})", f"{s}_geo_knn", "blae", b,
                             "higher", regime=_converged(("blae", b))))
            out.append(Claim(f"{s}_kl_vs_{b}", f"BLAE preserves manifold structure better than {AE_LABEL[b]} on "
                             f"{CASE_LABEL[s]}: lower geodesic density KL(0.1) ({_SRC})", f"{s}_geo_kl0.1", "blae", b,
                             "lower", regime=_converged(("blae", b))))
    for b in PAPER_BASELINES:
        out.append(Claim(f"rank_knn_vs_{b}", f"Table 1: BLAE's average k-NN rank beats {AE_LABEL[b]}'s (paper: BLAE "
                         "1.8, best of ten)", "rank_geo_knn", "blae", b, "lower", regime=_converged(RANKED)))
        out.append(Claim(f"rank_kl_vs_{b}", f"Table 1: BLAE's average KL0.1 rank beats {AE_LABEL[b]}'s (paper: BLAE "
                         "1.0)", "rank_geo_kl0.1", "blae", b, "lower", regime=_converged(RANKED)))
        out.append(Claim(f"ring_shift_vs_{b}", f"Robustness: BLAE's ring embedding changes less than "
                         f"{AE_LABEL[b]}'s between uniform and non-uniform sampling (paper's figure: only BLAE keeps "
                         "the same ring)", "ring_shift_procrustes", "blae", b, "lower",
                         regime=(*_converged(("blae", b)), _ring_learned(("blae", b)))))
    out.append(Claim("paper_vs_notebook", "Ours: the paper's BLAE losses beat the reference notebook's recipe on the "
                     "swiss roll (geodesic k-NN recall); says whether the form matters here", "swiss_geo_knn", "blae",
                     "blae_notebook", "higher", regime=_converged(("blae", "blae_notebook"))))
    out.append(Claim("paper_vs_former", "Ours: the paper's BLAE losses beat this project's former default on the "
                     "swiss roll (geodesic k-NN recall)", "swiss_geo_knn", "blae", "blae_former", "higher",
                     regime=_converged(("blae", "blae_former"))))
    out.append(Claim("vs_geoae", "Ours: BLAE beats a geodesic-distance-MSE autoencoder (not a paper baseline) on the "
                     "swiss roll (geodesic k-NN recall)", "swiss_geo_knn", "blae", "geoae", "higher",
                     regime=_converged(("blae", "geoae"))))
    return out


_SMOKE = {"cases": ("swiss", "ring"), "n_train": 120, "n_test": 60, "epochs": 3, "ring_train": 24, "ring_test": 50,
          "ring_epochs": 2, "hidden": 16, "lam_grid": (1.0,), "n_val": 50, "use_umap": False}
# Quick mode: a demonstration of every arm, set and claim within the 2.5-minute budget; the evidence is the full
# run (no tuning, few epochs: the convergence check is expected to fail, so the claims are untestable).
_QUICK = {"n_train": 300, "n_test": 200, "epochs": 60, "ring_train": 36, "ring_test": 72, "ring_epochs": 20,
          "hidden": 64, "lam_grid": (1.0,)}
_FULL = {}

EXPERIMENT = Experiment(
    parallel_units=True,  # units share only the tuning cells, which are computed once under a lock
    name="blae",
    config_cls=BLAEConfig,
    modes={"smoke": _SMOKE, "quick": _QUICK, "full": _FULL},
    seeds={"smoke": 1, "quick": 3, "full": 3},
    budget_s={"quick": 150},
    arms=_arms,
    metrics=_metrics(),
    claims=_claims(),
    run_unit=_run,
    derive=_derive,
    plot=_plot,
    summary=("The paper's protocol in shape: BLAE (the paper's losses) vs the paper's autoencoder baselines SPAE, "
             "TopoAE, GRAE, IRAE, GGAE and a plain AE, plus two earlier BLAE forms, GeoAE (ours) and PCA/Isomap/UMAP, "
             "on the reference swiss roll (1,500 training points), the S-curve and a rotated-'3' MNIST ring trained "
             "under uniform and non-uniform sampling (convolutional AEs). Metrics as the reference code computes "
             "them: k-NN recall and density KL on k=10 graph geodesics in both spaces, on held-out points; the "
             "paper's average-rank table is derived per seed. Every autoencoder: same networks, epochs, batch "
             "(N/3), Adam 2e-3 with the reference step schedule, no early stopping; every regularised arm's "
             "published weights x {1/3, 1, 3} tuned on a separate swiss-roll draw. Scaled: 1,000 epochs (reference "
             "3,000), gated on a declared convergence check."),
)
