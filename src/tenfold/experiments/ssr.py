"""Reproduction of ACE-Brain-0's scaffold-specialise-reconcile paradigm (Gong et al., arXiv 2603.03198).

The paper's model is an 8B vision-language model (Qwen3-VL base) trained on 24 spatial / driving / UAV /
embodied benchmarks. Here the *paradigm* runs on a 135M text model, SmolLM2-135M-Instruct (offline), with four
generated text domains with exact answers (`tenfold.merging.domains`), in the paper's order (issue 31; sources:
the abstract, two full-text digests, FusionBench; ../shared/research/fidelity/tapgpt-ssr.md section 2):
scaffold = base -> spatial; driving and aerial experts branched from it; the scaffold and both experts merged
against the pre-trained model (WUDI with the paper's Adam settings, 1,000 steps at lr 1e-5; average and TSVM
as the paper's comparators; task arithmetic, TIES, DARE and WUDI's closed form as ours); embodied SFT on the
WUDI merge (`ssr`); GRPO without KL on it (`ssr_grpo`). Baselines: joint and sequential SFT from the base with
the pipeline's SFT steps, experts branched from the base. Claims: the scaffold helps its experts; WUDI beats
average and TSVM and comes close to the experts; SSR beats joint and sequential training; GRPO helps. Regime
check `experts_learn` (declared before any run): every expert beats the base on its own domain by >= 10 points.

Per seed, one pipeline (`tenfold.merging.ssr.SSRPipeline`, stage checkpoints in the shared
``work/_ssr/seed<k>-d2-<key>/`` folder) trains every stage once; each arm's unit reads what it needs from it.
Only the top `adapt_layers` decoder layers are adapted (LoRA r=8 on every linear module); the frozen bottom
layers' outputs are cached once for all seeds and arms.

Command: ``tenfold reproduce ssr --mode quick`` (32 / 16 prompts per domain, 1 adapted layer, 8-step experts,
50 WUDI steps, 1 GRPO step; 3 seeds; about 126 s of units, budget 150 s) or ``--mode full`` (400 / 64 prompts,
4 layers, scaffold 100 and experts 50 steps, 1,000 WUDI steps, 16 GRPO steps; 3 seeds; about 23 min).
Numbers and verdicts: docs/ssr.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.common.config import config_key, field
from tenfold.common.errors import UserError, check_choice
from tenfold.harness import Arm, Claim, Experiment, Metric, Regime, UnitResult

SCAFFOLD = "spatial"
EXPERTS = ("driving", "aerial")  # branched from the scaffold and merged with it (the paper's AD and UAV experts)
LAST = "embodied"  # SFT on the merged model (the paper's embodied stage)
SPECIALISED = EXPERTS + (LAST,)
DOMAINS = (SCAFFOLD,) + SPECIALISED
MERGED = (SCAFFOLD,) + EXPERTS  # the domains of the reconciled models
# each merge arm: (merge method, its settings); the paper's comparators are average and TSVM, the others are ours
MERGE_ARMS = {
    "average": ("average", {}),
    "task_arithmetic": ("task_arithmetic", {}),
    "ties": ("ties", {}),
    "dare": ("dare", {}),
    "tsvm": ("tsvm", {}),
    "wudi": ("wudi", {"solver": "adam"}),  # the paper: FusionBench's Adam (iters, lr: the config's wudi_* fields)
    "wudi_cf": ("wudi", {"solver": "closed_form"}),  # ours: the exact minimiser of the same objective
}
PAPER_COMPARATORS = ("average", "tsvm")
CLOSE_MARGIN = 5.0  # claim "close to the specialists": within 5 points of exact match, fixed before any run
DATA_VERSION = 2  # 2: driving asks one number (issue 31)
LEARN_MARGIN = 10.0  # regime: every expert beats the base on its own domain by >= 10 points (issue 31)


@dataclass
class SSRExperimentConfig:
    n_train: int = field(400, help="training prompts per domain (a fixed pool; batches are drawn from it)")
    n_test: int = field(64, help="test prompts per domain (fixed subset, greedy exact match)")
    data_seed: int = field(0, help="seed of the generated splits (the same data for every run seed)")
    adapt_layers: int = field(4, help="top decoder layers adapted in every stage (of 30); the rest frozen, cached")
    finetune: str = field("lora", help="lora or full (fine-tuning of the adapted layers)")
    lora_rank: int = field(8, help="LoRA rank of the SFT stages")
    lr: float = field(2e-3, help="AdamW learning rate of the SFT stages")
    batch_size: int = field(8, help="examples per SFT step")
    scaffold_steps: int = field(60, help="SFT steps of the spatial scaffold")
    expert_steps: int = field(40, help="SFT steps of each expert and of the embodied SFT after the merge")
    wudi_iters: int = field(1000, help="Adam steps of the WUDI merge (the paper's Table 1, via the digests: 1,000)")
    wudi_lr: float = field(1e-5, help="Adam learning rate of the WUDI merge (the paper's Table 1: 1e-5)")
    grpo_steps: int = field(20, help="GRPO optimizer steps (TRL GRPOTrainer) after the embodied SFT")
    grpo_generations: int = field(4, help="GRPO group size G")
    grpo_prompts: int = field(2, help="distinct prompts per GRPO step")
    grpo_beta: float = field(0.0, help="GRPO KL coefficient (0 = the paper's no-KL choice)")
    grpo_lr: float = field(5e-4, help="GRPO learning rate (LoRA adapters)")


def _check(cfg: SSRExperimentConfig) -> None:
    check_choice("finetune", cfg.finetune, ("lora", "full"))
    if cfg.wudi_iters < 1:
        raise UserError(f"Invalid wudi_iters: {cfg.wudi_iters}; expected an integer >= 1")
    if not cfg.wudi_lr > 0:
        raise UserError(f"Invalid wudi_lr: {cfg.wudi_lr}; expected a number > 0")


def _arms(cfg):
    _check(cfg)
    arms = [Arm("base", "reference", "SmolLM2-135M (no training)"),
            Arm("scaffold", "reference", "spatial scaffold only"),
            Arm("specialists", "reference", "each expert on its own domain (spatial: the scaffold; the others "
                "branched from it)"),
            Arm("specialists_base", "ablation", "each expert on its own domain (branched from the base)"),
            Arm("joint", "baseline", "joint SFT on the four domains from the base (the SSR pipeline's steps)"),
            Arm("sequential", "baseline", "sequential SFT from the base: spatial, driving, aerial, embodied")]
    for name, (method, _) in MERGE_ARMS.items():
        role = "method" if name == "wudi" else "ablation" if name == "wudi_cf" else "baseline"
        label = {"wudi": "merge: WUDI (Adam, the paper's)", "wudi_cf": "merge: WUDI (closed form, ours)",
                 "tsvm": "merge: TSVM"}.get(name, f"merge: {method.replace('_', ' ')}")
        arms.append(Arm(f"merge_{name}", role, label, {"merge": name}))
    arms.append(Arm("ssr", "method", "SSR: WUDI merge + embodied SFT", {"merge": "wudi"}))
    arms.append(Arm("ssr_grpo", "method", "SSR + GRPO (no KL)", {"merge": "wudi"}))
    return arms


_PIPES: dict = {}


def _pipeline(cfg, seed, ctx):
    """The seed's shared pipeline (kept in memory across the seed's units; stages checkpointed on disk)."""
    from tenfold.merging.domains import make_split
    from tenfold.merging.ssr import SSRConfig, SSRPipeline
    from tenfold.models.pretrained import smollm2

    key = config_key(cfg)
    root = Path(ctx.work_dir).parent / "_ssr"
    wd = root / f"seed{seed}-d{DATA_VERSION}-{key}"  # stage checkpoints do not hash the data: version it
    if (str(wd)) in _PIPES:
        return _PIPES[str(wd)]
    _PIPES.clear()  # one pipeline (one model) in memory at a time
    doms = {d: make_split(d, cfg.n_train, cfg.n_test, seed=cfg.data_seed) for d in DOMAINS}
    scfg = SSRConfig(adapt_layers=cfg.adapt_layers, finetune=cfg.finetune, lora_rank=cfg.lora_rank,
                     lora_alpha=2.0 * cfg.lora_rank, lr=cfg.lr, batch_size=cfg.batch_size,
                     scaffold_steps=cfg.scaffold_steps, expert_steps=cfg.expert_steps, seed=seed)
    pipe = SSRPipeline(scfg, doms, wd, smollm2, cache_path=root / "trunk.pt", progress=ctx.progress)
    _PIPES[str(wd)] = pipe
    return pipe


def _evals(pipe, name, state, domains=DOMAINS):
    """Exact match per domain of one pipeline model, cached in the pipeline's folder (shared by arms) under its name
    and a hash of its weights, so a score is never reused for other weights."""
    import json

    from tenfold.common.atomic import atomic_write_json
    from tenfold.merging.ssr import stage_fingerprint

    path = pipe.work_dir / f"eval_{name}_{stage_fingerprint(state, [], 0, pipe.cfg)[:10]}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for d in domains:
        if d not in done:
            done[d] = pipe.evaluate(state, d)
            atomic_write_json(path, done)
    return {d: done[d] for d in domains}


def _metrics(acc):
    out = {f"acc_{d}": v for d, v in acc.items()}
    out["acc_avg"] = float(np.mean([acc[d] for d in DOMAINS]))
    out["acc_merged"] = float(np.mean([acc[d] for d in MERGED]))
    out["acc_spec"] = float(np.mean([acc[d] for d in SPECIALISED]))
    return out


def _stages(pipe):
    """The models the paper merges: the scaffold and the experts branched from it."""
    return {SCAFFOLD: pipe.scaffold(SCAFFOLD), **{d: pipe.specialise(d, "scaffold", SCAFFOLD) for d in EXPERTS}}


def _merge(pipe, name, cfg):
    method, kw = MERGE_ARMS[name]
    if kw.get("solver") == "adam":
        kw = {**kw, "iters": cfg.wudi_iters, "lr": cfg.wudi_lr}
    return pipe.reconcile(method, _stages(pipe), name=name, **kw)  # against the pre-trained model (the paper's)


def _ssr(pipe, cfg):
    """The paper's pipeline after the merge: embodied SFT on the WUDI merge."""
    return pipe.train(_merge(pipe, "wudi", cfg), [LAST], cfg.expert_steps, "ssr_embodied_after_wudi")


def _wudi_ratio(pipe, state):
    """WUDI's objective of a merge over the merged 2-D weights, relative to the sum of the task vectors (task
    arithmetic, where FusionBench's Adam starts): 1 = no closer to WUDI's optimum than the sum; the closed form
    gives the smallest value there is. Shows how far the paper's Adam settings get. (float32: a diagnostic.)"""
    import torch

    from tenfold.merging.merges import wudi_objective

    base, stages = pipe.base_state, list(_stages(pipe).values())
    keys = [k for k, b in base.items() if b.ndim == 2 and b.is_floating_point()]
    tvs = {k: torch.stack([s[k].float() - base[k].float() for s in stages]) for k in keys}
    if getattr(pipe, "_wudi_den", None) is None:  # the sum's objective: the same for every merge of the pipeline
        pipe._wudi_den = sum(float(wudi_objective(tvs[k].sum(0), tvs[k])) for k in keys)
    num = sum(float(wudi_objective(state[k].float() - base[k].float(), tvs[k])) for k in keys)
    return num / pipe._wudi_den if pipe._wudi_den > 0 else float("nan")


def _run(arm, seed, cfg, ctx):
    import time

    pipe = _pipeline(cfg, seed, ctx)
    extra, curves = {}, {}
    name = arm.name
    if name == "base":
        acc = _evals(pipe, "base", pipe.base_state)
    elif name == "scaffold":
        acc = _evals(pipe, "scaffold", pipe.scaffold(SCAFFOLD))
    elif name in ("specialists", "specialists_base"):
        branch = "scaffold" if name == "specialists" else "base"
        # the spatial skill of the system: the scaffold's when the experts branch from it, else the base model's
        spatial = ("scaffold", pipe.scaffold(SCAFFOLD)) if branch == "scaffold" else ("base", pipe.base_state)
        acc = {SCAFFOLD: _evals(pipe, *spatial)[SCAFFOLD]}
        matrix = {}
        for d in SPECIALISED:
            state = pipe.specialise(d, branch, SCAFFOLD)
            doms = DOMAINS if branch == "scaffold" else (d,)  # the interference matrix: scaffold branch only
            row = _evals(pipe, f"expert_{d}_{branch}", state, doms)
            acc[d] = row[d]
            matrix[d] = row
        m = _metrics(acc)
        if branch == "scaffold":
            base = _evals(pipe, "base", pipe.base_state)
            matrix = {"base": base, SCAFFOLD: _evals(pipe, "scaffold", pipe.scaffold(SCAFFOLD)), **matrix}
            extra["interference"] = matrix
            # the regime check: the worst expert's gain over the base on its own domain (spatial: the scaffold)
            m["expert_gain"] = float(min(acc[d] - base[d] for d in DOMAINS))
        return UnitResult(metrics=m, curves=curves, extra=extra)
    elif name == "joint":
        steps = cfg.scaffold_steps + cfg.expert_steps * len(SPECIALISED)  # the SSR pipeline's SFT steps
        acc = _evals(pipe, f"joint_base_{steps}", pipe.joint(DOMAINS, SCAFFOLD, start="base", steps=steps))
    elif name == "sequential":
        states = [pipe.scaffold(SCAFFOLD)] + pipe.sequential(SPECIALISED, SCAFFOLD)
        after = [_evals(pipe, "scaffold" if i == 0 else f"seq{i - 1}", s, DOMAINS) for i, s in enumerate(states)]
        acc = after[-1]
        forget = [after[i][d] - acc[d] for i, d in enumerate(DOMAINS[:-1])]
        extra["after_stage"] = after
        for d in DOMAINS:
            curves[f"seq_{d}"] = {"x": list(range(1, len(DOMAINS) + 1)), "y": [a[d] for a in after],
                                  "xlabel": "sequential stage", "ylabel": f"{d} exact match (%)"}
        m = _metrics(acc)
        m["forgetting"] = float(np.mean(forget))
        return UnitResult(metrics=m, curves=curves, extra=extra)
    elif name.startswith("merge_"):
        _stages(pipe)  # train the stages first, so merge_seconds times the merge alone
        t0 = time.perf_counter()
        state = _merge(pipe, arm.params["merge"], cfg)
        seconds = time.perf_counter() - t0
        acc = _evals(pipe, name, state)
        m = _metrics(acc)
        m["merge_seconds"] = seconds  # 0 when the merge came from its checkpoint (an earlier unit made it)
        if MERGE_ARMS[arm.params["merge"]][0] == "wudi":
            m["wudi_ratio"] = _wudi_ratio(pipe, state)
        return UnitResult(metrics=m, curves=curves, extra=extra)
    elif name == "ssr":
        acc = _evals(pipe, "ssr", _ssr(pipe, cfg))
    elif name == "ssr_grpo":
        from tenfold.merging.grpo import GRPOSettings

        # GRPO prompts: the four domains' training pools, interleaved (the same data the SFT stages saw)
        pools = [pipe.domains[d][0] for d in DOMAINS]
        examples = [p[i] for i in range(max(len(p) for p in pools)) for p in pools if i < len(p)]
        settings = GRPOSettings(steps=cfg.grpo_steps, prompts_per_step=cfg.grpo_prompts,
                                num_generations=cfg.grpo_generations, beta=cfg.grpo_beta, lr=cfg.grpo_lr,
                                lora_rank=cfg.lora_rank, lora_alpha=2.0 * cfg.lora_rank, seed=seed)
        start = _ssr(pipe, cfg)
        from tenfold.merging.ssr import stage_fingerprint

        tag = f"grpo_ssr_{config_key(settings)}_{stage_fingerprint(start, [], 0, pipe.cfg)[:10]}"  # start weights too
        state, log = pipe.grpo(start, examples, settings, tag)
        curves["grpo_reward"] = {"x": log["step"], "y": log["reward"], "xlabel": "GRPO step",
                                 "ylabel": "mean exact-match reward"}
        extra["grpo"] = log
        acc = _evals(pipe, "ssr_grpo", state)
        m = _metrics(acc)
        m["grpo_gen_per_s"] = log["gen_per_s"]
        return UnitResult(metrics=m, curves=curves, extra=extra)
    else:
        raise UserError(f"unknown arm {name!r}")
    return UnitResult(metrics=_metrics(acc), curves=curves, extra=extra)


def _plot(results, out: Path):
    from tenfold.harness.plots import _plt, save

    rows = [a for a in results["arms"] if a["name"] == "specialists" and a["extra"]]
    if not rows:
        return []
    per_seed = list(rows[0]["extra"].values())
    names = list(per_seed[0]["interference"])
    mat = np.array([[np.mean([e["interference"][r][d] for e in per_seed]) for d in DOMAINS] for r in names])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(DOMAINS)), DOMAINS)
    ax.set_yticks(range(len(names)), [f"{n} expert" if n in SPECIALISED else "scaffold (spatial)" if n == SCAFFOLD
                                       else "base model" for n in names])
    for i in range(len(names)):
        for j in range(len(DOMAINS)):
            ax.text(j, i, f"{mat[i, j]:.0f}", ha="center", va="center", color="w" if mat[i, j] < 60 else "k")
    ax.set_xlabel("evaluated on")
    ax.set_title(f"Interference matrix: exact match (%), mean of {len(per_seed)} seeds")
    fig.colorbar(im, ax=ax)
    return [save(fig, out / "interference_matrix.png")]


_LEARN_WHY = ("the paper's experts are strong on their own domains (the scaffold ablation: 72.6 / 54.3 / 58.1 on "
              "AD / UAV / embodied); with an expert that has not learned its domain there is nothing to merge, "
              "scaffold or reinforce")
EXPERTS_LEARN = Regime("experts_learn", "expert_gain", ("specialists",), ">=", LEARN_MARGIN, _LEARN_WHY)


def _claims():
    reg = (EXPERTS_LEARN,)
    c = [Claim("scaffold_helps", "A shared spatial scaffold helps the domain experts branched from it (abstract: "
               "spatial intelligence as a universal scaffold; the digests' scaffold ablation): experts branched "
               "from the scaffold beat experts branched from the base on their own domains.", "acc_spec",
               "specialists", "specialists_base", "higher", regime=reg)]
    for name in MERGE_ARMS:
        if name in ("wudi", "wudi_cf"):
            continue
        src = ("the digests' merge ablation: AVG < TSVM < WUDI on every domain" if name in PAPER_COMPARATORS
               else "ours: the paper compares WUDI with averaging and TSVM only")
        c.append(Claim(f"wudi_vs_{name}", "WUDI merging of the scaffold and the experts against the pre-trained "
                       f"model beats {MERGE_ARMS[name][0].replace('_', ' ')} on the merged domains ({src}).",
                       "acc_merged", "merge_wudi", f"merge_{name}", "higher", regime=reg))
    c.append(Claim("wudi_close", "The WUDI merge comes close to the single experts on their own domains (the "
                   "digests: super-additive, spatial 76.7 vs the best single expert's 72.5; 'close' fixed in advance "
                   "as within CLOSE_MARGIN = 5 points of the specialists' mean over the merged domains).",
                   "acc_merged", "merge_wudi", "specialists", "higher", margin=CLOSE_MARGIN, regime=reg))
    for base in ("joint", "sequential"):
        c.append(Claim(f"ssr_vs_{base}", f"Scaffold-specialise-reconcile beats {base} training with the same SFT "
                       "steps (the digests' paradigm ablation: SSR +6.0 / -0.6 / -3.2 / +1.6 vs joint -4.5 / -7.3 / "
                       "-8.6 / -1.3 and sequential -4.9 / -2.5 / -3.5 / +0.9 on spatial / AD / UAV / embodied).",
                       "acc_avg", "ssr", base, "higher", regime=reg))
    c.append(Claim("grpo_helps", "GRPO without a KL term strengthens the SSR model (abstract; the digests' paradigm "
                   "ablation: SSR+GRPO above SSR in all four domains).", "acc_avg", "ssr_grpo", "ssr", "higher",
                   regime=reg))
    return c


_METRICS = [Metric(f"acc_{d}", "%", True, f"greedy exact match on the {d} test subset") for d in DOMAINS] + [
    Metric("acc_avg", "%", True, "mean exact match over the four domains"),
    Metric("acc_merged", "%", True, "mean exact match over the merged domains (spatial, driving, aerial)"),
    Metric("acc_spec", "%", True, "mean exact match over driving, aerial, embodied"),
    Metric("expert_gain", "points", True, "specialists: the smallest gain of an expert over the base on its own "
           "domain (spatial: the scaffold)"),
    Metric("forgetting", "points", False, "sequential SFT: accuracy right after a domain's stage minus at the end, "
           "mean over the first three domains"),
    Metric("wudi_ratio", "ratio", False, "WUDI's objective of the merge over that of the task vectors' sum (task "
           "arithmetic, Adam's start): 1 = no progress; the closed form is the minimum"),
    Metric("merge_seconds", "s", False, "wall time of the merge (the run's --threads; 0 when read from its checkpoint)"),
    Metric("grpo_gen_per_s", "gen/s", True, "GRPO completions per second (TRL, CPU)"),
]

EXPERIMENT = Experiment(
    name="ssr",
    config_cls=SSRExperimentConfig,
    modes={
        "smoke": {"n_train": 8, "n_test": 4, "adapt_layers": 1, "scaffold_steps": 2, "expert_steps": 1,
                  "batch_size": 2, "grpo_steps": 1, "grpo_generations": 2, "grpo_prompts": 1, "wudi_iters": 5},
        "quick": {"n_train": 32, "n_test": 16, "adapt_layers": 1, "batch_size": 4, "scaffold_steps": 16,
                  "expert_steps": 8, "grpo_steps": 1, "grpo_prompts": 1, "wudi_iters": 50},
        "full": {"n_train": 400, "n_test": 64, "adapt_layers": 4, "scaffold_steps": 100, "expert_steps": 50,
                 "grpo_steps": 16},
    },
    seeds={"smoke": 1, "quick": 3, "full": 3},
    budget_s={"quick": 150},
    arms=_arms,
    metrics=_METRICS,
    claims=_claims(),
    run_unit=_run,
    plot=_plot,
    summary=("Paradigm reproduction on a 135M text model, not the paper's 8B VLM: SmolLM2-135M-Instruct (offline "
             "GGUF copy), four generated text domains with exact answers (spatial scaffold; driving, aerial, "
             "embodied), LoRA (r=8, all linear modules) on the top decoder layers only, frozen bottom layers "
             "cached. Per seed, the paper's order: scaffold on spatial; driving and aerial experts branched from "
             "it; the scaffold and both experts merged against the pre-trained model (WUDI with the paper's Adam "
             "settings; average and TSVM as the paper's comparators; task arithmetic, TIES, DARE and WUDI's closed "
             "form as ours); embodied SFT on the WUDI merge (SSR); TRL GRPO without KL on it. Baselines: joint and "
             "sequential SFT from the base with the same SFT steps; experts from the base. Exact match is greedy, "
             "on fixed test subsets; a regime check (every expert >= 10 points over the base) gates every claim."),
)
