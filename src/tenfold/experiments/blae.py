"""Reproduction of BLAE (paper 7, arXiv 2604.06701): does the bi-Lipschitz autoencoder preserve manifold
structure better than other autoencoders, also under sparse sampling and distribution shift?

Claims (abstract; notes section 4): (a) BLAE preserves manifold structure better than existing (regularised)
autoencoders, measured as in the reference code by k-NN recall (higher) and density KL at sigma=0.1 (lower);
(b) it stays better under sampling sparsity and distribution shift.

Data (all real or standard): swiss roll with a hole and S-curve (sklearn generators), a COIL-like image
manifold built from rotations of real Fashion-MNIST items (COIL-like: several objects x many rotation angles),
MNIST-5k digits; the robustness cases are the swiss roll with few training points ("sparse") and a swiss roll
trained on a non-uniform density along the roll and tested on uniform samples ("shift").

Arms: BLAE; its ablations without the injectivity and without the bi-Lipschitz term; the plain AE, a
distance-preserving AE (GeoAE) and an isometry-regularised AE (IsoAE), all in the same estimator shell with
the same sizes, epochs, batch size and optimiser; PCA, Isomap, t-SNE and UMAP as classical references.
Every metric is computed on held-out test points against their input coordinates (as the reference code's
MeasureAll does); t-SNE and UMAP have no out-of-sample map and embed the test points directly.

Command: `tenfold reproduce blae --mode quick` (30 units: every arm, case and claim at 200 training / 200 test
points, 40 epochs, hidden 128; about 107 s of unit time as one-thread CPU time, measured on a loaded machine;
declared budget 135 s). Full mode (`--mode full`: 1,000 training points, 300 epochs, hidden 256): 48.7 min of
unit time with one thread on a shared machine. Measured numbers: docs/blae.md (quick numbers there are from the
earlier quick config, 300 points and 60 epochs, until rerun).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.common.atomic import atomic_write_json
from tenfold.common.config import field
from tenfold.harness import Arm, Claim, Experiment, Metric, UnitResult

CASES = ("swiss", "scurve", "coil", "mnist", "sparse", "shift")
CASE_LABEL = {"swiss": "swiss roll (hole)", "scurve": "S-curve", "coil": "COIL-like (rotated Fashion-MNIST)",
              "mnist": "MNIST-5k", "sparse": "swiss roll, sparse", "shift": "swiss roll, density shift"}
AE_ARMS = ("blae", "blae_noinj", "blae_nobilip", "ae", "geoae", "isoae")
EMBED_SEED = 0  # the seed whose test embeddings are kept for the 2-D plots


@dataclass
class BLAEConfig:
    cases: tuple[str, ...] = field(CASES, help="data cases to run (subset of swiss,scurve,coil,mnist,sparse,shift)")
    n_train: int = field(1500, help="training points per synthetic case (the reference notebook uses 1,500)")
    n_test: int = field(1000, help="held-out points on which every metric is computed")
    n_sparse: int = field(200, help="training points of the sparse-sampling swiss roll")
    shift_strength: float = field(3.0, help="train density ~ exp(-s * t01) along the roll (t01 in [0,1]); test uniform")
    coil_items: int = field(20, help="Fashion-MNIST items in the COIL-like set (COIL-20 has 20 objects)")
    coil_angles: int = field(72, help="rotations per item, evenly spaced over 360 degrees (COIL: 72)")
    mnist_train: int = field(1500, help="MNIST-5k digits used for training")
    epochs: int = field(600, help="epochs for every autoencoder arm (reference notebook: 3000)")
    hidden: int = field(256, help="hidden width of every autoencoder (reference: 256)")
    batch_size: int = field(512, help="minibatch size of every autoencoder (reference: N_train / 3)")
    patience: int = field(100, help="early-stopping patience in epochs (validation split 10%)")
    n_neighbors: int = field(5, help="k of the k-NN graph for geodesic distances (reference: 5)")
    injective: str = field("paper", help="BLAE injectivity loss form: paper or code")
    bilipschitz: str = field("paper", help="BLAE bi-Lipschitz loss form: paper or code")
    use_umap: bool = field(True, help="add a UMAP reference arm when umap-learn is installed")


def _check_config(cfg) -> None:
    """Refuse bad settings before any unit runs (the runner builds the arms first)."""
    from tenfold.common.errors import UserError, check_choice

    if not cfg.cases:
        raise UserError(f"Invalid cases: empty; expected a subset of {', '.join(CASES)}")
    for c in cfg.cases:
        check_choice("cases", c, CASES)
    check_choice("injective", cfg.injective, ("paper", "code"))
    check_choice("bilipschitz", cfg.bilipschitz, ("paper", "code"))
    for name in ("n_train", "n_test", "n_sparse", "coil_items", "coil_angles", "mnist_train", "epochs", "hidden",
                 "batch_size", "patience", "n_neighbors"):
        if getattr(cfg, name) < 1:
            raise UserError(f"Invalid {name}: {getattr(cfg, name)}; expected an integer >= 1")
    if cfg.n_test < 40:
        raise UserError(f"Invalid n_test: {cfg.n_test}; expected >= 40 (k-NN recall uses k up to 45 where possible)")
    if cfg.mnist_train + cfg.n_test > 5000:
        raise UserError(f"Invalid mnist_train: {cfg.mnist_train}; mnist_train + n_test must be <= 5000 (MNIST-5k)")


def _arms(cfg):
    _check_config(cfg)
    arms = [Arm("blae", "method", "BLAE", {"cls": "BLAE"}),
            Arm("blae_noinj", "ablation", "BLAE w/o injectivity", {"cls": "BLAE", "lam_inj": 0.0}),
            Arm("blae_nobilip", "ablation", "BLAE w/o bi-Lipschitz", {"cls": "BLAE", "lam_bilip": 0.0}),
            Arm("ae", "baseline", "AE", {"cls": "AE"}),
            Arm("geoae", "baseline", "GeoAE (distance MSE)", {"cls": "GeoAE"}),
            Arm("isoae", "baseline", "IsoAE (isometry)", {"cls": "IsoAE"}),
            Arm("pca", "reference", "PCA", {"cls": "PCA"}),
            Arm("isomap", "reference", "Isomap", {"cls": "Isomap"}),
            Arm("tsne", "reference", "t-SNE", {"cls": "TSNE"})]
    if cfg.use_umap and _has_umap():
        arms.append(Arm("umap", "reference", "UMAP", {"cls": "UMAP"}))
    return arms


def _has_umap() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------- data

def _split(rng, X, c, n_train, n_test):
    idx = rng.permutation(len(X))
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    return X[tr], X[te], c[te]


@functools.lru_cache(maxsize=2)
def coil_like(n_items: int, n_angles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COIL-like image manifold: the first test item of each Fashion-MNIST class (cycling), rotated.

    Returns images (n_items * n_angles, 784) in [0, 1], rotation angles in degrees and item ids.
    """
    from scipy.ndimage import rotate

    from tenfold.data import fashion_mnist

    x, y = fashion_mnist("test")
    picks, seen = [], {}
    for i, label in enumerate(y):  # item j is the (j // 10)-th test image of class j % 10
        c = len(picks) % 10
        if label == c and seen.get(c, 0) == len(picks) // 10:
            picks.append(i)
            seen[c] = seen.get(c, 0) + 1
        if len(picks) == n_items:
            break
    angles = np.arange(n_angles) * 360.0 / n_angles
    imgs = [rotate(x[i].astype(np.float32) / 255.0, a, reshape=False, order=1) for i in picks for a in angles]
    X = np.clip(np.stack(imgs), 0, 1).reshape(len(imgs), -1).astype(np.float32)
    return X, np.tile(angles, len(picks)).astype(np.float32), np.repeat(np.arange(len(picks)), n_angles)


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    from tenfold.data import mnist5k

    x, y = mnist5k()
    return x.reshape(len(x), -1).astype(np.float32) / 255.0, y


def load_case(case: str, cfg: BLAEConfig, seed: int):
    """(X_train, X_test, colour of the test points, colour name) for one data case."""
    from tenfold.data import s_curve, swiss_roll

    rng = np.random.default_rng(1000 + seed)
    if case in ("swiss", "sparse"):
        n_tr = cfg.n_train if case == "swiss" else cfg.n_sparse
        X, t = swiss_roll(n_tr + cfg.n_test, hole=True, seed=seed)
        return (*_split(rng, X, t[:, 0], n_tr, cfg.n_test), "angle t")
    if case == "scurve":
        X, t = s_curve(cfg.n_train + cfg.n_test, seed=seed)
        return (*_split(rng, X, t[:, 0], cfg.n_train, cfg.n_test), "t")
    if case == "shift":
        X, t = swiss_roll(4 * (cfg.n_train + cfg.n_test), hole=True, seed=seed)
        t01 = (t[:, 0] - t[:, 0].min()) / np.ptp(t[:, 0])
        w = np.exp(-cfg.shift_strength * t01)
        tr = rng.choice(len(X), cfg.n_train, replace=False, p=w / w.sum())
        rest = np.setdiff1d(np.arange(len(X)), tr)
        te = rng.choice(rest, cfg.n_test, replace=False)
        return X[tr], X[te], t[te, 0], "angle t"
    if case == "coil":
        X, ang, _ = coil_like(cfg.coil_items, cfg.coil_angles)
        n_tr = int(round(len(X) * 2 / 3))
        return (*_split(rng, X, ang, n_tr, len(X) - n_tr), "rotation angle")
    if case == "mnist":
        X, y = _mnist()
        return (*_split(rng, X, y.astype(np.float32), cfg.mnist_train, cfg.n_test), "digit")
    raise ValueError(f"Invalid case: {case!r}; expected one of {', '.join(CASES)}")


# --------------------------------------------------------------------------------------------- one unit

def _estimator(arm: Arm, cfg: BLAEConfig, seed: int, n_embed: int):
    from tenfold import manifold

    p = dict(arm.params)
    cls = p.pop("cls")
    if cls == "PCA":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed)
    if cls == "Isomap":
        from sklearn.manifold import Isomap

        return Isomap(n_neighbors=cfg.n_neighbors, n_components=2)
    if cls == "TSNE":
        from sklearn.manifold import TSNE

        return TSNE(2, random_state=seed, init="pca", perplexity=min(30.0, (n_embed - 1) / 3))
    if cls == "UMAP":
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
    common = dict(epochs=cfg.epochs, hidden=cfg.hidden, batch_size=cfg.batch_size, patience=cfg.patience,
                  n_neighbors=cfg.n_neighbors, random_state=seed,
                  # separate objects/digits and sparse samples can split the k-NN graph; link its pieces by
                  # their shortest edges (a no-op on a connected graph), as sklearn's Isomap does
                  connect_components=True)
    if cls == "BLAE":
        common.update(injective=cfg.injective, bilipschitz=cfg.bilipschitz)
    return getattr(manifold, cls)(2, **common, **p)


def _run_case(arm: Arm, case: str, cfg: BLAEConfig, seed: int) -> tuple[dict, dict]:
    from scipy.spatial.distance import cdist

    from tenfold.manifold import bilipschitz_constants, evaluate_embedding, geodesic_distances

    Xtr, Xte, colour, cname = load_case(case, cfg, seed)
    est = _estimator(arm, cfg, seed, len(Xte))
    t0 = time.perf_counter()
    if arm.params["cls"] in ("TSNE", "UMAP"):  # no out-of-sample map: embed the test points themselves
        Z = est.fit_transform(Xte)
    else:
        Z = est.fit(Xtr).transform(Xte)
    fit_s = time.perf_counter() - t0
    X_hat = est.inverse_transform(Z) if arm.params["cls"] not in ("Isomap", "TSNE", "UMAP") else None
    m = evaluate_embedding(Xte, Z, X_hat=X_hat)
    G = geodesic_distances(Xte, cfg.n_neighbors, connect_components=True)
    m["lip_lo"], m["lip_hi"], m["distortion"] = bilipschitz_constants(G, cdist(Z, Z), quantile=0.01)
    m["fit_s"] = fit_s
    if hasattr(est, "loss_curve_"):  # autoencoders: epochs run before early stopping
        m["epochs_run"] = float(est.n_iter_)
    emb = {}
    if seed == EMBED_SEED:
        emb = {"z": np.round(Z, 4).tolist(), "c": np.round(colour, 3).tolist(), "cname": cname}
    return m, emb


def _run(arm, seed, cfg, ctx):
    _check_config(cfg)
    metrics, per_case, embeddings = {}, {}, {}
    for case in ctx.progress(cfg.cases, desc=f"{arm.name} cases"):
        done = ctx.work_dir / f"{case}.json"  # a finished case is a mid-unit checkpoint
        if done.exists():
            rec = json.loads(done.read_text())
        else:
            m, emb = _run_case(arm, case, cfg, seed)
            rec = {"metrics": m, "embedding": emb}
            atomic_write_json(done, rec)
        m = rec["metrics"]
        per_case[case] = m
        if rec["embedding"]:
            embeddings[case] = rec["embedding"]
        metrics[f"{case}_knn"] = m["knn"]
        metrics[f"{case}_kl01"] = m["kl0.1"]
        if "mse" in m:
            metrics[f"{case}_mse"] = m["mse"]
    return UnitResult(metrics=metrics, extra={"per_case": per_case, "embeddings": embeddings})


# --------------------------------------------------------------------------------------------- plots

def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    arms = results["arms"]
    cases = [c for c in CASES if any(c in e.get("embeddings", {}) for a in arms for e in a["extra"].values())]
    paths = []
    if cases:
        fig, axes = plt.subplots(len(cases), len(arms), figsize=(1.9 * len(arms), 1.9 * len(cases)), squeeze=False)
        for i, case in enumerate(cases):
            for j, a in enumerate(arms):
                ax = axes[i, j]
                ax.set_xticks([]); ax.set_yticks([])
                emb = a["extra"].get(str(EMBED_SEED), {}).get("embeddings", {}).get(case)
                if emb:
                    z = np.asarray(emb["z"])
                    ax.scatter(z[:, 0], z[:, 1], c=emb["c"], s=2, cmap="Spectral" if case != "mnist" else "tab10")
                if i == 0:
                    ax.set_title(a["label"], fontsize=7)
                if j == 0:
                    ax.set_ylabel(f"{case}\n({emb['cname'] if emb else ''})", fontsize=7)
        fig.suptitle(f"blae: test embeddings (seed {EMBED_SEED}), coloured by the ground-truth coordinate", fontsize=9)
        paths.append(save(fig, out / "embeddings.png"))
    keys = ["knn", "trust", "cont", "mrre_zx", "spear", "kl0.01", "kl0.1", "kl1", "mse", "distortion", "fit_s"]
    for case in [c for c in CASES if any(c in e.get("per_case", {}) for a in arms for e in a["extra"].values())]:
        rows = []
        for a in arms:
            vals = [e["per_case"][case] for e in a["extra"].values() if case in e.get("per_case", {})]
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
        ax.set_title(f"{CASE_LABEL[case]}: test metrics, mean±std over seeds (knn/trust/cont/spear higher better; "
                     "mrre/kl/mse/distortion lower better)", fontsize=8)
        paths.append(save(fig, out / f"table_{case}.png"))
    return paths


# --------------------------------------------------------------------------------------------- declaration

def _metrics():
    out = []
    for c in CASES:
        out += [Metric(f"{c}_knn", "recall", True, f"{CASE_LABEL[c]}: k-NN recall, k=5..45, test points"),
                Metric(f"{c}_kl01", "nats", False, f"{CASE_LABEL[c]}: density KL at sigma=0.1, test points"),
                Metric(f"{c}_mse", "sq. units", False, f"{CASE_LABEL[c]}: reconstruction MSE, test points")]
    return out


def _claims():
    out = []
    for c in CASES:
        kind = ("(b) robustness" if c in ("sparse", "shift") else "(a) structure")
        for b in ("ae", "geoae", "isoae"):
            src = "abstract; notes s4 (kNN recall and KL are the reference code's headline metrics)"
            out.append(Claim(f"{c}_knn_vs_{b}", f"{kind}: BLAE preserves manifold structure better than other "
                             f"autoencoders ({b}) on {CASE_LABEL[c]}: higher k-NN recall [{src}]",
                             f"{c}_knn", "blae", b, "higher"))
            out.append(Claim(f"{c}_kl_vs_{b}", f"{kind}: BLAE preserves manifold structure better than other "
                             f"autoencoders ({b}) on {CASE_LABEL[c]}: lower density KL(0.1) [{src}]",
                             f"{c}_kl01", "blae", b, "lower"))
    return out


_SMOKE = {"cases": ("swiss", "coil"), "n_train": 150, "n_test": 100, "n_sparse": 60, "coil_items": 4,
          "coil_angles": 36, "mnist_train": 150, "epochs": 3, "hidden": 32, "batch_size": 128, "use_umap": False}
# Quick mode: a small end-to-end demonstration of the whole comparison (every arm, case and claim), sized to the
# 2.5-minute budget of issue 20; the evidence is the full run. An autoencoder's fit costs about the same per
# optimizer step at these sizes, so the budget is set by epochs x batches per epoch (200 points at batch 100:
# 2 batches, plus the validation pass).
_QUICK = {"n_train": 200, "n_test": 200, "n_sparse": 60, "coil_items": 8, "coil_angles": 36, "mnist_train": 200,
          "epochs": 40, "hidden": 128, "batch_size": 100, "patience": 20}

# Full mode: the config defaults (the reference's 1,500 training points, 600 epochs) were estimated at ~100 min on
# 2 cores; 1,000 training points and 300 epochs (reference notebook: 1,500 and 3,000) are estimated at 35-60 min
# idle on one thread; not yet measured. Same for every autoencoder arm.
_FULL = {"n_train": 1000, "mnist_train": 1000, "epochs": 300}

EXPERIMENT = Experiment(
    parallel_units=True,  # units share no work files and start no engine of their own (`--jobs N` runs N at once)
    name="blae",
    config_cls=BLAEConfig,
    modes={"smoke": _SMOKE, "quick": _QUICK, "full": _FULL},
    seeds={"smoke": 1, "quick": 3, "full": 3},
    # issue 20: quick units measured at about 107 s of one-thread CPU time (116 s for the whole process, on a
    # loaded machine), UMAP's numba compilation (~10 s, every run) included
    budget_s={"quick": 135},
    arms=_arms,
    metrics=_metrics(),
    claims=_claims(),
    run_unit=_run,
    plot=_plot,
    summary=("BLAE vs its two ablations and three autoencoders in the same scikit-learn shell (same MLP, epochs, "
             "batch, Adam lr 2e-3 with the reference step schedule, 10% validation early stopping), plus PCA, "
             "Isomap, t-SNE and UMAP, on six cases: swiss roll with a hole, S-curve, a COIL-like set of rotated "
             "real Fashion-MNIST items, MNIST-5k, a sparsely sampled swiss roll and a swiss roll trained on a "
             "non-uniform density and tested on uniform points. Metrics on held-out points vs their input "
             "coordinates (reference-code protocol). Far fewer epochs than the reference (3000) in quick mode."),
)
