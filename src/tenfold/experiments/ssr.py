"""Reproduction of ACE-Brain-0's scaffold-specialise-reconcile paradigm (Gong et al., arXiv 2603.03198).

The paper's model is an 8B vision-language model (Qwen3-VL base) trained on 24 spatial / driving / UAV /
embodied benchmarks. Here the *paradigm* runs on a 135M text model, SmolLM2-135M-Instruct (offline), with four
generated text domains with exact answers (`tenfold.merging.domains`): spatial (the scaffold), driving,
aerial, embodied. Claims (abstract; notes ../shared/research/elas-moe-merge.md section 3):
(a) a spatial scaffold helps the domain specialists branched from it; (b) data-free WUDI merging reconciles
the experts better than simple merges and comes close to each specialist on its own domain; (c) GRPO without
KL raises the merged model's accuracy.

Per seed, one pipeline (`tenfold.merging.ssr.SSRPipeline`, stage checkpoints in the shared
``work/_ssr/seed<k>-<key>/`` folder) trains the scaffold, the experts from the scaffold and from the base, the
joint and sequential baselines, the five merges and GRPO once; each arm's unit reads what it needs from it,
so nothing is trained twice. Only the top `adapt_layers` decoder layers are adapted (LoRA r=8 on every linear
module); the frozen bottom layers' outputs are cached once for all seeds and arms.

Command: ``tenfold reproduce ssr --mode quick``. Quick mode is a small end-to-end demonstration of the whole
comparison (every arm and claim; the evidence is the full-mode run): 48 training and 16 test prompts per domain,
the top 1 decoder layer adapted, batch 4, scaffold 16 steps, each expert 8 (joint 24, sequential 8 per domain),
GRPO 2 steps of 1 prompt x G = 4; 3 seeds. Run time: about 115 s of CPU with one thread (declared budget
135 s), trunk cache included; a cold cache adds about 20 s (SmolLM2's GGUF -> HF conversion). Full mode
(400 / 64 prompts, 4 layers, batch 8, 100 / 50 steps, GRPO 16 x 2): about 26 min. Numbers: docs/ssr.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.common.config import config_key, field
from tenfold.common.errors import UserError, check_choice
from tenfold.harness import Arm, Claim, Experiment, Metric, UnitResult

SCAFFOLD = "spatial"
SPECIALISED = ("driving", "aerial", "embodied")
DOMAINS = (SCAFFOLD,) + SPECIALISED
MERGE_NAMES = ("average", "task_arithmetic", "ties", "dare", "wudi")
CLOSE_MARGIN = 5.0  # claim (b) "close to the specialists": within 5 points of exact match, fixed before any run


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
    expert_steps: int = field(40, help="SFT steps of each specialist (joint: 3x; sequential: this per domain)")
    grpo_merge: str = field("wudi", help="the merge that GRPO refines (the paper's choice: WUDI)")
    grpo_steps: int = field(20, help="GRPO optimizer steps (TRL GRPOTrainer)")
    grpo_generations: int = field(4, help="GRPO group size G")
    grpo_prompts: int = field(2, help="distinct prompts per GRPO step")
    grpo_beta: float = field(0.0, help="GRPO KL coefficient (0 = the paper's no-KL choice)")
    grpo_lr: float = field(5e-4, help="GRPO learning rate (LoRA adapters)")


def _check(cfg: SSRExperimentConfig) -> None:
    check_choice("grpo_merge", cfg.grpo_merge, MERGE_NAMES)
    check_choice("finetune", cfg.finetune, ("lora", "full"))


def _arms(cfg):
    _check(cfg)
    arms = [Arm("base", "reference", "SmolLM2-135M (no training)"),
            Arm("scaffold", "reference", "spatial scaffold only"),
            Arm("specialists", "reference", "each expert on its own domain (from scaffold)"),
            Arm("specialists_base", "ablation", "each expert on its own domain (from base)"),
            Arm("joint", "baseline", "joint multi-task SFT"),
            Arm("sequential", "baseline", "sequential SFT (driving, aerial, embodied)")]
    for m in MERGE_NAMES:
        arms.append(Arm(f"merge_{m}", "method" if m == "wudi" else "baseline", f"merge: {m}", {"merge": m}))
    arms.append(Arm("merge_grpo", "method", f"merge ({cfg.grpo_merge}) + GRPO", {"merge": cfg.grpo_merge}))
    return arms


_PIPES: dict = {}


def _pipeline(cfg, seed, ctx):
    """The seed's shared pipeline (kept in memory across the seed's units; stages checkpointed on disk)."""
    from tenfold.merging.domains import make_split
    from tenfold.merging.ssr import SSRConfig, SSRPipeline
    from tenfold.models.pretrained import smollm2

    key = config_key(cfg, drop=("grpo_merge",))
    root = Path(ctx.work_dir).parent / "_ssr"
    wd = root / f"seed{seed}-{key}"
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
    """Exact match per domain of one pipeline model, cached in the pipeline's folder (shared by arms)."""
    import json

    from tenfold.common.atomic import atomic_write_json

    path = pipe.work_dir / f"eval_{name}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for d in domains:
        if d not in done:
            done[d] = pipe.evaluate(state, d)
            atomic_write_json(path, done)
    return {d: done[d] for d in domains}


def _metrics(acc):
    out = {f"acc_{d}": v for d, v in acc.items()}
    out["acc_avg"] = float(np.mean([acc[d] for d in DOMAINS]))
    out["acc_spec"] = float(np.mean([acc[d] for d in SPECIALISED]))
    return out


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
        if branch == "scaffold":
            matrix = {"base": _evals(pipe, "base", pipe.base_state), SCAFFOLD: _evals(pipe, "scaffold",
                      pipe.scaffold(SCAFFOLD)), **matrix}
            extra["interference"] = matrix
    elif name == "joint":
        acc = _evals(pipe, "joint", pipe.joint(SPECIALISED, SCAFFOLD))
    elif name == "sequential":
        states = pipe.sequential(SPECIALISED, SCAFFOLD)
        after = [_evals(pipe, f"seq{i}", s, DOMAINS) for i, s in enumerate(states)]
        acc = after[-1]
        forget = [after[i][d] - acc[d] for i, d in enumerate(SPECIALISED[:-1])]
        extra["after_stage"] = after
        for d in SPECIALISED:
            curves[f"seq_{d}"] = {"x": [1, 2, 3], "y": [a[d] for a in after], "xlabel": "sequential stage",
                                  "ylabel": f"{d} exact match (%)"}
        m = _metrics(acc)
        m["forgetting"] = float(np.mean(forget))
        return UnitResult(metrics=m, curves=curves, extra=extra)
    elif name.startswith("merge_"):
        method = arm.params["merge"]
        t0 = time.perf_counter()
        state = pipe.reconcile(method, SPECIALISED, scaffold_domain=SCAFFOLD)
        if name == "merge_grpo":
            from tenfold.merging.grpo import GRPOSettings

            # GRPO prompts: the four domains' training pools, interleaved (the same data the SFT stages saw)
            pools = [pipe.domains[d][0] for d in DOMAINS]
            examples = [p[i] for i in range(max(len(p) for p in pools)) for p in pools if i < len(p)]
            settings = GRPOSettings(steps=cfg.grpo_steps, prompts_per_step=cfg.grpo_prompts,
                                    num_generations=cfg.grpo_generations, beta=cfg.grpo_beta, lr=cfg.grpo_lr,
                                    lora_rank=cfg.lora_rank, lora_alpha=2.0 * cfg.lora_rank, seed=seed)
            state, log = pipe.grpo(state, examples, settings, f"grpo_{method}_{config_key(settings)}")
            curves["grpo_reward"] = {"x": log["step"], "y": log["reward"], "xlabel": "GRPO step",
                                     "ylabel": "mean exact-match reward"}
            extra["grpo"] = log
            acc = _evals(pipe, f"grpo_{method}", state)
            m = _metrics(acc)
            m["grpo_gen_per_s"] = log["gen_per_s"]
            return UnitResult(metrics=m, curves=curves, extra=extra)
        seconds = time.perf_counter() - t0
        acc = _evals(pipe, f"merge_{method}", state)
        m = _metrics(acc)
        m["merge_seconds"] = seconds  # includes training the experts on the seed's first merge arm
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


def _claims():
    c = [Claim("scaffold_helps", "A shared spatial scaffold helps the domain experts branched from it (abstract: "
               "spatial intelligence as a universal scaffold; notes section 3, stage 2): experts branched from the "
               "scaffold beat experts branched from the base on their own domains.", "acc_spec", "specialists",
               "specialists_base", "higher")]
    for m in MERGE_NAMES[:-1]:
        c.append(Claim(f"wudi_vs_{m}", f"Data-free WUDI merging reconciles the experts better than {m} "
                       "(abstract: 'harmonizes them through data-free model merging'; notes section 3: WUDI, "
                       "averaging reported ~7% worse).", "acc_avg", "merge_wudi", f"merge_{m}", "higher"))
    c.append(Claim("wudi_close", "The WUDI merge comes close to the specialists on their own domains (notes "
                   "section 3; 'close' fixed in advance as within CLOSE_MARGIN = 5 points).", "acc_spec",
                   "merge_wudi", "specialists", "higher", margin=CLOSE_MARGIN))
    c.append(Claim("grpo_helps", "GRPO without a KL term strengthens the merged model (abstract; notes section 3, "
                   "stage 5).", "acc_avg", "merge_grpo", "merge_wudi", "higher"))
    return c


_METRICS = [Metric(f"acc_{d}", "%", True, f"greedy exact match on the {d} test subset") for d in DOMAINS] + [
    Metric("acc_avg", "%", True, "mean exact match over the four domains"),
    Metric("acc_spec", "%", True, "mean exact match over driving, aerial, embodied"),
    Metric("forgetting", "points", False, "sequential SFT: accuracy right after a domain's stage minus at the end, "
           "mean over the first two domains"),
    Metric("merge_seconds", "s", False, "wall time of the merge arm's reconcile call (1 thread; includes expert "
           "training when this arm ran first)"),
    Metric("grpo_gen_per_s", "gen/s", True, "GRPO completions per second (TRL, CPU)"),
]

EXPERIMENT = Experiment(
    name="ssr",
    config_cls=SSRExperimentConfig,
    modes={
        "smoke": {"n_train": 8, "n_test": 4, "adapt_layers": 1, "scaffold_steps": 2, "expert_steps": 1,
                  "batch_size": 2, "grpo_steps": 1, "grpo_generations": 2, "grpo_prompts": 1},
        "quick": {"n_train": 48, "n_test": 16, "adapt_layers": 1, "batch_size": 4, "scaffold_steps": 16,
                  "expert_steps": 8, "grpo_steps": 2, "grpo_prompts": 1},
        "full": {"n_train": 400, "n_test": 64, "adapt_layers": 4, "scaffold_steps": 100, "expert_steps": 50,
                 "grpo_steps": 16},
    },
    seeds={"smoke": 1, "quick": 3, "full": 3},
    budget_s={"quick": 135},
    arms=_arms,
    metrics=_METRICS,
    claims=_claims(),
    run_unit=_run,
    plot=_plot,
    summary=("Paradigm reproduction on a 135M text model, not the paper's 8B VLM: SmolLM2-135M-Instruct (offline "
             "GGUF copy), four generated text domains with exact answers (spatial scaffold; driving, aerial, "
             "embodied), LoRA (r=8, all linear modules) on the top decoder layers only, frozen bottom layers "
             "cached. Per seed: scaffold on spatial, experts from scaffold and from base, joint and sequential "
             "SFT baselines, five data-free merges of the three experts' LoRA deltas into the scaffold, and TRL "
             "GRPO (beta=0) on the WUDI merge. Exact match is greedy, on fixed test subsets."),
)
