"""Reproduction of AdaLeZO (paper 4, arXiv 2604.18264) in MeZO's prompt-based regime, scaled to 2 CPU cores.

Protocol (MeZO's, `princeton-nlp/MeZO` large_models, and the official AdaLeZO launch script
`WangFei-2019/UnifiedZO` large_models/scripts/adalezo.sh): a pretrained causal LM fine-tuned by zeroth-order SPSA on
sentence polarity, scored by the label words' logits after MeZO's SST-2 template ("<sentence> It was" ->
" terrible" / " great", `train_as_classification`), 1000 train / 500 dev / 1000 test examples drawn with a fixed data
seed, batch 16, constant LR, eps 1e-3, the model in eval mode. Data: the Rotten Tomatoes snippets of Pang & Lee
(the sentences SST-2 was built from) with human ratings, shipped in the `vaderSentiment` sdist; neutral ones dropped
as SST-2 does (`tenfold.data.text.movie_review_snippets`).

Scale levers, applied to every arm alike (issue 25): SmolLM2-135M-Instruct (offline) instead of OPT-1.3B..30B;
prompts of at most 24 tokens; only the top `top_blocks` of the 30 decoder blocks and the final norm are adapted (the
frozen lower blocks run once per example and their hidden states are cached on disk, the label words' tied output
rows stay frozen); a few hundred steps instead of 20,000. With top_blocks=4 the arms are block0..block3 and "rest"
(the final norm) by the official grouping: L = 5, official k = max(1, floor(0.2 L)) = 1.

Arms (`_arms`): MeZO on our engine; MeZO as the reference code runs it (timed on `ref_steps` steps only: it is the
same algorithm, so its quality is MeZO's; see docs/adalezo.md); LeZO with its own unweighted update and AdaLeZO's k;
AdaLeZO official (the default); AdaLeZO with this project's former rule (ours, k = ceil(L/4)); ZO-Adam and
AdaLeZO + ZO-Adam (the form of the official AdaZOAdaMU update, Adam on the IPW-weighted estimate of the drawn
layers, with torch's per-parameter bias correction and AdaLeZO's own tau/clip: docs/adalezo.md). Every ZO
arm gets the same LR grid, tuned on a separate seed by final dev loss with `tune_steps`-step runs (MeZO-ref inherits
MeZO's LR).

Regime check (declared before any run): MeZO's final dev accuracy exceeds its zero-shot dev accuracy by >= 3 points
(mean over seeds); otherwise the quality and time-to-target claims are untestable. Time-to-target: optimizer step
time until the dev accuracy first reaches zero-shot + `target_gain` points (3, fixed before running).

Command: `tenfold reproduce adalezo --mode quick` (a demonstration on 2 adapted blocks and 20 steps: every claim
untestable by design) or `--mode full` (docs/results/adalezo/full). Results and verdicts: docs/adalezo.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.common.atomic import atomic_write, atomic_write_json
from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.config import config_key, field, to_dict
from tenfold.common.errors import UserError
from tenfold.harness import Arm, Claim, Experiment, Metric, Regime, UnitResult
from tenfold.harness.memory import PeakMemory

TUNE_SEED = 10_000
# post hoc (added after the first full run, where the ZO-SGD arms reached the declared target, zero-shot + 3 points,
# within their first two evaluations, so that time-to-target mostly compared step times): a target at 90% of MeZO's
# final dev-accuracy gain in the same seed
POSTHOC_FRACTION = 0.9
_CACHE: dict = {}


@dataclass
class AdaLeZOConfig:
    model_path: str = field("", help="a Llama-layout HF causal-LM folder (e.g. for the GPU preset); empty = the offline SmolLM2-135M-Instruct")
    top_blocks: int = field(4, help="adapted top decoder blocks of SmolLM2's 30 (plus the final norm); lower ones frozen")
    max_tokens: int = field(24, help="prompts longer than this many tokens are left out of the pool")
    n_train: int = field(1000, help="training prompts (MeZO protocol: 1000)")
    n_dev: int = field(500, help="dev prompts: LR tuning, curves, time-to-target (MeZO protocol: 500)")
    n_test: int = field(1000, help="test prompts for the reported accuracy (MeZO protocol: 1000)")
    batch_size: int = field(16, help="prompts per step (MeZO and the official script: 16)")
    steps: int = field(600, help="optimizer steps per run, equal for every arm")
    ref_steps: int = field(40, help="steps of the reference-style MeZO arm (timing only)")
    tune_steps: int = field(100, help="steps of each LR-tuning run, the same for every method")
    eval_every: int = field(50, help="steps between dev evaluations")
    eps: float = field(1e-3, help="SPSA perturbation scale (MeZO and official full fine-tuning: 1e-3)")
    lr_grid: tuple[float, ...] = field((1e-6, 1e-5, 1e-4), help="step sizes tried by every ZO arm (tuning seed, dev loss)")
    clip: float = field(4.0, help="AdaLeZO IPW clip (official: 4 for hard tasks, 16 for easy ones)")
    adam_betas: tuple[float, float] = field((0.9, 0.999), help="ZO-Adam betas (torch defaults; the official AdaZOAdaMU reads zo_adamu_beta1/2)")
    target_gain: float = field(3.0, help="time-to-target: dev accuracy points above zero-shot, fixed before running")
    time_fraction: float = field(0.5, help="equal wall-clock point: this fraction of MeZO's total step time")
    floor_steps: int = field(10, help="pairs of plain forwards timed for the two-forward floor")
    skip_steps: int = field(3, help="first steps left out of the median step time")
    checkpoint_every: int = field(100, help="steps between mid-unit checkpoints")


# ---- the polarity task and SmolLM2's top blocks (the default set-up, issue 25) --------------------------------------
PROMPT = "{} It was"  # MeZO's SST-2 template (princeton-nlp/MeZO large_models/templates.py, SST2Template)
LABEL_WORDS = (" terrible", " great")  # MeZO's SST-2 verbalizer: 0 -> terrible, 1 -> great


def _polarity_splits(cfg) -> dict:
    """Balanced train/dev/test prompts of at most cfg.max_tokens SmolLM2 tokens, {split: (prompts, labels)}."""
    from tenfold.data.text import movie_review_snippets
    from tenfold.models.pretrained import smollm2_tokenizer

    key = ("polarity", cfg.max_tokens, cfg.n_train, cfg.n_dev, cfg.n_test)
    if key not in _CACHE:
        tok = smollm2_tokenizer()
        pool = [(PROMPT.format(t), y) for t, y in movie_review_snippets()]
        lens = [len(ids) for ids in tok([p for p, _ in pool])["input_ids"]]
        pool = [p for p, n in zip(pool, lens) if n <= cfg.max_tokens]
        rng = np.random.default_rng(1234)
        by = [[p for p in pool if p[1] == c] for c in (0, 1)]
        need = [cfg.n_train, cfg.n_dev, cfg.n_test]
        per = [math.ceil(n / 2) for n in need]
        if min(len(b) for b in by) < sum(per):
            raise UserError(f"Invalid sizes: n_train/n_dev/n_test {need} need {sum(per)} prompts per class of at most "
                            f"max_tokens={cfg.max_tokens} tokens; only {min(map(len, by))} exist")
        picks = [[b[i] for i in rng.permutation(len(b))[:sum(per)]] for b in by]
        out, off = {}, 0
        for name, n, m in zip(("train", "dev", "test"), need, per):
            items = [x for b in picks for x in b[off:off + m]]
            items = [items[i] for i in rng.permutation(len(items))][:n]
            out[name] = ([t for t, _ in items], torch.tensor([y for _, y in items]))
            off += m
        _CACHE[key] = out
    return _CACHE[key]


class TopBlocksLM(torch.nn.Module):
    """The top `len(layers)` decoder blocks, the final norm and the label words' (frozen, tied) output rows of a
    Llama-layout causal LM, run on cached hidden states of the frozen lower blocks.

    Input: (h, lengths) with h (B, T, D) right-padded hidden states entering the first adapted block and lengths (B,)
    the real token counts; output (B, classes): the label words' logits at each prompt's last token (MeZO's
    prompt-based classification). Right padding under the causal mask leaves every real position exact.
    Parameter names "layers.<i>.", "norm." give the arms block0..block<n-1> and "rest" (`model_arms`).
    """

    def __init__(self, lm, top: int, label_ids):
        super().__init__()
        n = len(lm.model.layers)
        if not 1 <= top <= n:
            raise UserError(f"Invalid top_blocks: {top}; expected an integer in [1, {n}]")
        self.layers = torch.nn.ModuleList(lm.model.layers[n - top:])
        self.norm = lm.model.norm
        self.rotary = lm.model.rotary_emb
        self.register_buffer("label_w", lm.lm_head.weight[list(label_ids)].detach().clone(), persistent=False)

    def forward(self, batch):
        h, lengths = batch
        T = int(lengths.max())
        h = h[:, :T]
        B = h.shape[0]
        pos = torch.arange(T, device=h.device).unsqueeze(0).expand(B, -1)
        pe = self.rotary(h, pos)
        for layer in self.layers:
            out = layer(h, position_embeddings=pe, attention_mask=None, position_ids=pos)
            h = out[0] if isinstance(out, tuple) else out
        last = self.norm(h[torch.arange(B, device=h.device), lengths - 1])
        return last @ self.label_w.T


def _lower_states(lm, tok, prompts, cut: int, bs: int = 32) -> list:
    """Hidden states entering block `cut` for each prompt (a (len, D) tensor each), through the frozen lower blocks."""
    model = lm.model
    ids = tok(prompts)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list = [None] * len(ids)
    with torch.no_grad():
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            T = max(len(ids[i]) for i in idx)
            x = torch.full((len(idx), T), tok.pad_token_id or 0, dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, :len(ids[i])] = torch.tensor(ids[i])
            h = model.embed_tokens(x.to(model.embed_tokens.weight.device))
            pos = torch.arange(T, device=h.device).unsqueeze(0).expand(len(idx), -1)
            pe = model.rotary_emb(h, pos)
            for layer in model.layers[:cut]:
                o = layer(h, position_embeddings=pe, attention_mask=None, position_ids=pos)
                h = o[0] if isinstance(o, tuple) else o
            for r, i in enumerate(idx):
                out[i] = h[r, :len(ids[i])].clone()
    return out


def _pad_states(states: list) -> tuple:
    """(h (N, T, D) right-padded with zeros, lengths (N,))."""
    lengths = torch.tensor([s.shape[0] for s in states])
    h = torch.zeros(len(states), int(lengths.max()), states[0].shape[1], dtype=states[0].dtype)
    for i, s in enumerate(states):
        h[i, :s.shape[0]] = s
    return h, lengths


def _lm(model_path: str = "", device: str = "cpu"):
    """(model, tokenizer): the offline SmolLM2-135M-Instruct, or a Llama-layout HF folder, on `device`, eval mode."""
    key = ("lm", model_path, device)
    if key not in _CACHE:
        if model_path:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if not Path(model_path).is_dir():
                raise UserError(f"Invalid model_path {model_path!r}: no such folder (an HF causal-LM folder, or empty)")
            lm, tok = AutoModelForCausalLM.from_pretrained(model_path), AutoTokenizer.from_pretrained(model_path)
            inner = getattr(lm, "model", None)
            if not all(hasattr(inner, a) for a in ("layers", "norm", "rotary_emb", "embed_tokens")):
                raise UserError(f"Invalid model_path {model_path!r}: {type(lm).__name__} has not the Llama layout "
                                "(model.embed_tokens, model.layers, model.norm, model.rotary_emb) that the cached "
                                "lower blocks need (Llama, Qwen2, Mistral and SmolLM2 have it; OPT and GPT-2 do not)")
        else:
            from tenfold.models.pretrained import smollm2

            lm, tok = smollm2()
        lm.to(device).eval()
        _CACHE[key] = (lm, tok)
    return _CACHE[key]


def _states(cfg, cache_dir, device="cpu") -> dict:
    """{split: ((h, lengths), labels)}: the frozen lower blocks' hidden states of every prompt (cached on disk, in
    the model's dtype on the CPU), moved to `device`."""
    splits = _polarity_splits(cfg)
    lm, tok = _lm(cfg.model_path, device)
    cut = len(lm.model.layers) - cfg.top_blocks
    blob = json.dumps([splits[s][0] for s in ("train", "dev", "test")] +
                      [cut, cfg.model_path or "smollm2-135m-instruct"])
    path = Path(cache_dir) / "adalezo" / f"lower-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pt"
    if path.exists():
        states = torch.load(path)
    else:
        states = {s: [h.cpu() for h in _lower_states(lm, tok, splits[s][0], cut)] for s in ("train", "dev", "test")}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: torch.save(states, fh), mode="wb")  # other units read it: never torn
    return {s: (tuple(t.to(device) for t in _pad_states(states[s])), splits[s][1].to(device))
            for s in ("train", "dev", "test")}


def _setup(cfg, cache_dir, device="cpu"):
    """(model, data): a fresh copy of the adapted top blocks (every unit starts from the pretrained weights)."""
    import copy

    if cfg.top_blocks < 1:
        raise UserError(f"Invalid top_blocks: {cfg.top_blocks}; expected an integer >= 1")
    data = _states(cfg, cache_dir, device)
    lm, tok = _lm(cfg.model_path, device)
    label_ids = []
    for w in LABEL_WORDS:
        ids = tok(w)["input_ids"]
        if len(ids) != 1:
            raise UserError(f"label word {w!r} is {len(ids)} tokens under this tokenizer; one token is needed")
        label_ids.append(ids[0])
    model = copy.deepcopy(TopBlocksLM(lm, cfg.top_blocks, label_ids)).eval()
    return model, data


def _index(x, idx):
    return tuple(t[idx] for t in x)


def _size(x):
    return len(x[0])


@torch.no_grad()
def _evaluate(model, x, y, bs=64):
    logits = torch.cat([model(_index(x, slice(i, i + bs))) for i in range(0, _size(x), bs)])
    return float(torch.nn.functional.cross_entropy(logits, y)), 100 * float((logits.argmax(-1) == y).float().mean())


# ---- optimizers ---------------------------------------------------------------------------------------
def _make_opt(spec, model, cfg, seed):
    from tenfold.zo import AdaLeZO, LeZO, MeZO, MeZOReference, default_k, model_arms

    kind, lr = spec["kind"], spec["lr"]
    arms = model_arms(model)
    L = len(arms)
    base = None
    if spec.get("adam"):
        base = lambda groups: torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.adam_betas))  # noqa: E731
    if kind == "mezo_ref":
        return MeZOReference([p for g in arms for p in g["params"]], lr=lr, eps=cfg.eps)
    if kind == "mezo":
        return MeZO(arms, lr=lr, eps=cfg.eps, seed=seed, base_optimizer=base, model=model)
    if kind == "lezo":  # LeZO's own update (no reweighting), as many layers per step as official AdaLeZO draws
        return LeZO(arms, lr=lr, eps=cfg.eps, k=default_k(L), seed=seed, model=model)
    if kind == "adalezo":
        return AdaLeZO(arms, lr=lr, eps=cfg.eps, clip=cfg.clip, seed=seed, base_optimizer=base, model=model)
    if kind == "adalezo_former":
        return AdaLeZO(arms, lr=lr, eps=cfg.eps, variant="former", warmup=min(50, cfg.steps // 6), seed=seed,
                       model=model)
    raise UserError(f"Invalid optimizer kind: {kind!r}")


# ---- training ----------------------------------------------------------------------------------------------
def _train(spec, cfg, seed, split, cache_dir, ctx=None, ckpt: Path | None = None, steps: int | None = None,
           device: str | None = None) -> dict:
    """Train one arm for `steps` (default cfg.steps); dev curves against steps and step time, final numbers, timings."""
    n_steps = cfg.steps if steps is None else steps
    device = device or (ctx.device if ctx is not None else "cpu")
    model, data = _setup(cfg, cache_dir, device)
    xtr, ytr = data["train"]
    xev, yev = data["dev"]
    opt = _make_opt(spec, model, cfg, seed)
    gen = torch.Generator().manual_seed(seed)
    loss0, acc0 = _evaluate(model, xev, yev)
    st = {"step": 0, "xs": [0], "ts": [0.0], "ys": [loss0], "accs": [acc0], "clock": 0.0, "step_s": [],
          "zo_s": [], "touched": [], "diverged": False}
    ck = load_checkpoint(ckpt) if ckpt is not None else None
    if ck is not None:
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["optimizer"]); gen.set_state(ck["gen"])
        st = ck["st"]
    todo = range(st["step"], n_steps)
    for step in (ctx.progress(todo, desc=spec["kind"]) if ctx is not None else todo):
        idx = torch.randint(0, _size(xtr), (cfg.batch_size,), generator=gen).to(ytr.device)
        xb, yb = _index(xtr, idx), ytr[idx]
        t0 = time.perf_counter()
        loss = opt.step(lambda: torch.nn.functional.cross_entropy(model(xb), yb))
        dt = time.perf_counter() - t0
        if hasattr(opt, "timing"):
            st["zo_s"].append(opt.timing["perturb"] + opt.timing["update"])
            st["touched"].append(opt.last["touched"])
        st["step_s"].append(dt)
        st["clock"] += dt
        st["step"] = step + 1
        if not math.isfinite(loss) or not math.isfinite(getattr(opt, "last", {}).get("g", 0.0)):
            st["diverged"] = True  # a non-finite probe: the optimizer restored θ and skipped the update
            break
        if (step + 1) % cfg.eval_every == 0 or step + 1 == n_steps:
            l, a = _evaluate(model, xev, yev)
            st["xs"].append(step + 1); st["ts"].append(st["clock"]); st["ys"].append(l); st["accs"].append(a)
        if ckpt is not None and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < n_steps:
            save_checkpoint(ckpt, model=model.state_dict(), optimizer=opt.state_dict(), gen=gen.get_state(), st=st,
                            config=to_dict(cfg))
    xs, ys = data[split]
    test_loss, test_acc = _evaluate(model, xs, ys)
    if st["diverged"]:  # no numbers from a diverged model (NaN logits would score as the first class)
        test_loss = test_acc = float("nan")
    floor = []  # two plain forwards per step on the unperturbed model, same batch size, same process
    with torch.no_grad():
        for _ in range(cfg.floor_steps):
            idx = torch.randint(0, _size(xtr), (cfg.batch_size,), generator=gen).to(ytr.device)
            xb, yb = _index(xtr, idx), ytr[idx]
            t0 = time.perf_counter()
            float(torch.nn.functional.cross_entropy(model(xb), yb))
            float(torch.nn.functional.cross_entropy(model(xb), yb))
            floor.append(time.perf_counter() - t0)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    skip = min(cfg.skip_steps, max(len(st["step_s"]) - 1, 0))
    return {**st, "test_loss": test_loss if math.isfinite(test_loss) else float("nan"), "test_acc": test_acc,
            "step_med": statistics.median(st["step_s"][skip:]), "floor_med": statistics.median(floor) if floor else float("nan"),
            "zo_frac": (statistics.median([z / s for z, s in zip(st["zo_s"][skip:], st["step_s"][skip:])])
                        if st["zo_s"][skip:] else float("nan")),
            "q": (float(np.mean(st["touched"])) / n_params) if st["touched"] else 1.0, "n_params": n_params,
            "opt": opt}


# ---- LR tuning (cached in the method's work folder) -----------------------------------------------------
def _key(cfg) -> str:
    return config_key(cfg, drop=("checkpoint_every", "floor_steps", "target_gain", "time_fraction", "skip_steps",
                                 "ref_steps"))


def _tune_kind(spec) -> str:
    return spec["kind"] + ("+adam" if spec.get("adam") else "")


def _best_lr(spec, cfg, ctx) -> tuple[float, dict]:
    """The grid LR with the lowest final dev loss on the tuning seed (diverged runs count as 1e9), and the scores."""
    if spec["kind"] == "mezo_ref":  # the same algorithm as MeZO: it inherits MeZO's LR
        spec = {"kind": "mezo"}
    path = ctx.work_dir.parent / f"tuning-{_key(cfg)}.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    scores = {}
    for lr in cfg.lr_grid:
        k = f"{_tune_kind(spec)}/{lr}"
        if k not in cache:
            out = _train({**spec, "lr": lr}, cfg, TUNE_SEED, "dev", ctx.cache_dir, steps=cfg.tune_steps,
                         device=ctx.device)
            cache = json.loads(path.read_text()) if path.exists() else {}
            cache[k] = out["ys"][-1] if not out["diverged"] and math.isfinite(out["ys"][-1]) else 1e9
            atomic_write_json(path, cache)
        scores[lr] = cache[k]
    return min(cfg.lr_grid, key=lambda lr: scores[lr]), scores


# ---- arms and units -------------------------------------------------------------------------------------
def _arms(cfg):
    return [Arm("mezo_fast", "baseline", "MeZO (our engine)", {"kind": "mezo"}),
            Arm("mezo_ref", "baseline", "MeZO (reference-style, timed only)", {"kind": "mezo_ref"}),
            Arm("lezo", "baseline", "LeZO (published update, same k)", {"kind": "lezo"}),
            Arm("adalezo", "method", "AdaLeZO (official)", {"kind": "adalezo"}),
            Arm("adalezo_former", "ablation", "AdaLeZO, former rule (ours)", {"kind": "adalezo_former"}),
            Arm("zo_adam", "baseline", "ZO-Adam", {"kind": "mezo", "adam": True}),
            Arm("adalezo_adam", "method", "AdaLeZO + ZO-Adam", {"kind": "adalezo", "adam": True})]


def _check(cfg):
    if cfg.target_gain <= 0 or not 0 < cfg.time_fraction <= 1:
        raise UserError("Invalid target_gain/time_fraction: expected target_gain > 0 and time_fraction in (0, 1]")
    for name in ("tune_steps", "ref_steps", "steps", "eval_every", "floor_steps"):
        if getattr(cfg, name) < 1:
            raise UserError(f"Invalid {name}: {getattr(cfg, name)}; expected a positive integer")
    if not cfg.lr_grid or min(cfg.lr_grid) <= 0:
        raise UserError(f"Invalid lr_grid: {cfg.lr_grid}; expected one or more positive step sizes")
    if cfg.clip <= 0:
        raise UserError(f"Invalid clip: {cfg.clip}; expected > 0")


def _run(arm, seed, cfg, ctx) -> UnitResult:
    _check(cfg)
    lr, scores = _best_lr(arm.params, cfg, ctx)
    spec = {**arm.params, "lr": lr}
    timed_only = arm.params["kind"] == "mezo_ref"
    with PeakMemory() as mem:
        out = _train(spec, cfg, seed, "test", ctx.cache_dir, ctx, ctx.checkpoint_path,
                     steps=cfg.ref_steps if timed_only else None)
    nan = float("nan")
    zero_shot = out["accs"][0]
    target = zero_shot + cfg.target_gain
    hit = [t for t, a in zip(out["ts"], out["accs"]) if a >= target]
    metrics = {
        "test_acc": nan if timed_only else out["test_acc"], "test_loss": nan if timed_only else out["test_loss"],
        "dev_acc": nan if timed_only or out["diverged"] else out["accs"][-1], "zero_shot_dev_acc": zero_shot,
        "dev_acc_gain": nan if timed_only or out["diverged"] else out["accs"][-1] - zero_shot,
        "time_to_target_s": nan if timed_only or not hit else hit[0],
        "step_ms": 1000 * out["step_med"], "floor_ms": 1000 * out["floor_med"],
        "step_over_floor": out["step_med"] / out["floor_med"], "zo_fraction": out["zo_frac"],
        "touched_fraction": out["q"], "train_rss_mib": mem.peak_mib, "diverged": float(out["diverged"]),
    }
    extra = {"lr": lr, "lr_scores": {str(k): v for k, v in scores.items()}, "steps_run": out["step"]}
    opt = out["opt"]
    if hasattr(opt, "probs"):
        extra.update(probs=list(opt.probs), counts=list(opt.counts_total),
                     arm_names=[g["name"] for g in opt.param_groups], arm_sizes=list(opt.arm_sizes))
    if hasattr(opt, "timing_total"):
        extra["timing_total"] = dict(opt.timing_total)
    ctx.notes.append(f"{arm.name}: lr={lr:g}")
    if timed_only:
        ctx.notes.append(f"{arm.name}: {out['step']} steps timed only (same algorithm as MeZO; quality not measured)")
    elif not hit:
        ctx.notes.append(f"{arm.name} seed {seed}: dev accuracy never reached zero-shot + {cfg.target_gain:g} "
                         f"= {target:.1f}% within {cfg.steps} steps")
    curves = {"dev_acc": {"x": out["xs"], "y": out["accs"], "xlabel": "step", "ylabel": "dev accuracy (%)"},
              "dev_acc_vs_time": {"x": out["ts"], "y": out["accs"], "xlabel": "optimizer step time (s)",
                                  "ylabel": "dev accuracy (%)"},
              "dev_loss": {"x": out["xs"], "y": out["ys"], "xlabel": "step", "ylabel": "dev loss (nats)"}}
    return UnitResult(metrics=metrics, curves=curves, extra=extra)


def _derive(units: dict, cfg) -> dict:
    """Per (arm, seed): wall-clock speed-ups to the accuracy target over MeZO and LeZO in the same seed, the dev
    accuracy at an equal wall-clock point, and the Amdahl ceiling with MeZO's perturb+update share.

    speed-up = baseline's time to target / this arm's; 0 when this arm never reached the target, NaN (not measured)
    when the baseline never did. Equal wall-clock: the last dev accuracy at or before time_fraction x MeZO's total
    optimizer step time."""
    out: dict = {}
    t90 = {}  # post hoc: time to 90% of MeZO's final dev-accuracy gain in the same seed
    for (arm, seed), rec in units.items():
        mezo = units.get(("mezo_fast", seed))
        if arm == "mezo_ref" or mezo is None:
            continue
        ref = mezo["curves"]["dev_acc_vs_time"]["y"]
        c = rec["curves"]["dev_acc_vs_time"]
        if ref[-1] - ref[0] <= 0:
            continue
        goal = c["y"][0] + POSTHOC_FRACTION * (ref[-1] - ref[0])
        hit = [x for x, y in zip(c["x"], c["y"]) if y >= goal]
        t90[(arm, seed)] = hit[0] if hit else float("nan")
        out.setdefault((arm, seed), {})["time_to_90_s"] = t90[(arm, seed)]
    for (arm, seed), rec in units.items():
        m = out.setdefault((arm, seed), {})
        for base, name in (("mezo_fast", "speedup90_vs_mezo"), ("lezo", "speedup90_vs_lezo")):
            mine, theirs = t90.get((arm, seed)), t90.get((base, seed))
            if mine is None or theirs is None or not math.isfinite(theirs):
                continue
            m[name] = 0.0 if not math.isfinite(mine) else theirs / max(mine, 1e-9)
        mine = rec["metrics"].get("time_to_target_s")
        for base, name in (("mezo_fast", "speedup_vs_mezo"), ("lezo", "speedup_vs_lezo")):
            ref = units.get((base, seed))
            theirs = ref and ref["metrics"].get("time_to_target_s")
            if arm == "mezo_ref" or theirs is None or not math.isfinite(theirs):
                continue
            m[name] = 0.0 if mine is None or not math.isfinite(mine) else theirs / max(mine, 1e-9)
        mezo = units.get(("mezo_fast", seed))
        if mezo is None or arm == "mezo_ref":
            continue
        total = mezo["curves"]["dev_acc_vs_time"]["x"][-1]
        c = rec["curves"]["dev_acc_vs_time"]
        vals = [y for x, y in zip(c["x"], c["y"]) if x <= cfg.time_fraction * total]
        m["dev_acc_at_time"] = vals[-1] if vals else c["y"][0]
        f, q = mezo["metrics"].get("zo_fraction"), rec["metrics"].get("touched_fraction")
        if f is not None and q is not None and math.isfinite(f):
            m["amdahl_ceiling"] = 1.0 / ((1 - f) + f * q)
    return out


# ---- plots --------------------------------------------------------------------------------------------
def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    paths = []
    for a in results["arms"]:
        e = a.get("extra", {}).get("0", {})
        if "counts" not in e:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2))
        total = sum(e["counts"]) or 1
        ax.bar(e["arm_names"], [c / total for c in e["counts"]], label="draw frequency")
        ax.plot(e["arm_names"], e["probs"], "k.-", label="final p")
        ax.set_ylabel("probability"); ax.set_title(f"{a['label']}: layer choice (seed 0)"); ax.legend(fontsize=7)
        paths.append(save(fig, out / f"{a['name']}_arms.png"))
    fig, ax = plt.subplots(figsize=(7, 4))
    rows = [(a["label"], a["mean"].get("step_ms"), a["mean"].get("floor_ms")) for a in results["arms"]]
    rows = [r for r in rows if r[1] is not None]
    if rows:
        ax.barh([r[0] for r in rows], [r[1] for r in rows], label="median step")
        ax.barh([r[0] for r in rows], [r[2] for r in rows], alpha=0.6, label="two-forward floor")
        ax.set_xlabel("ms per step (same run)"); ax.legend(fontsize=7)
        paths.append(save(fig, out / "step_time.png"))
    return paths


_SRC = "abstract of arXiv 2604.18264"
MEZO_LEARNS = Regime(
    "mezo_learns", "dev_acc_gain", ("mezo_fast",), ">=", 3.0,
    "MeZO's own regime: where plain MeZO does not raise dev accuracy over zero-shot within the budget, the "
    "accuracy target is never reached and equal-step accuracy differences are noise (issue 25)")
EXPERIMENT = Experiment(
    name="adalezo",
    config_cls=AdaLeZOConfig,
    modes={
        "smoke": {"top_blocks": 1, "n_train": 32, "n_dev": 16, "n_test": 16, "steps": 6, "ref_steps": 3,
                  "tune_steps": 2, "eval_every": 3, "lr_grid": (1e-5,), "floor_steps": 2, "skip_steps": 1,
                  "checkpoint_every": 3},
        # quick: a demonstration of every arm and claim within issue 20's 2.5-minute budget, on 2 adapted blocks
        # and 20 steps (MeZO cannot move 20 steps from zero-shot: the claims are untestable by design); measured
        # 136-163 s of units on a clean clone with an empty cache at 24 steps, hence 20
        "quick": {"top_blocks": 2, "n_train": 128, "n_dev": 64, "n_test": 128, "steps": 20, "ref_steps": 6,
                  "tune_steps": 8, "eval_every": 10, "lr_grid": (1e-5,), "floor_steps": 4, "checkpoint_every": 10},
        "full": {},
    },
    seeds={"smoke": 1, "quick": 3, "full": 3},
    budget_s={"quick": 150},
    arms=_arms,
    metrics=[
        Metric("test_acc", "%", True, "test accuracy after the fixed step budget (equal steps)"),
        Metric("test_loss", "nats", False, "test cross-entropy over the two label words after the step budget"),
        Metric("dev_acc", "%", True, "dev accuracy after the step budget"),
        Metric("zero_shot_dev_acc", "%", True, "dev accuracy of the pretrained model before any step"),
        Metric("dev_acc_gain", "pts", True, "final dev accuracy minus zero-shot dev accuracy"),
        Metric("dev_acc_at_time", "%", True, "dev accuracy at time_fraction x MeZO's total step time (equal wall-clock)"),
        Metric("time_to_target_s", "s", False, "optimizer step time until dev accuracy >= zero-shot + target_gain (n/a if never)"),
        Metric("speedup_vs_mezo", "x", True, "MeZO's time to target / this arm's (0 when never reached)"),
        Metric("speedup_vs_lezo", "x", True, "LeZO's time to target / this arm's (0 when never reached)"),
        Metric("time_to_90_s", "s", False, "post hoc: optimizer step time until dev accuracy >= zero-shot + 90% of MeZO's final gain (same seed)"),
        Metric("speedup90_vs_mezo", "x", True, "post hoc: MeZO's time to 90% of its gain / this arm's (0 when never reached)"),
        Metric("speedup90_vs_lezo", "x", True, "post hoc: LeZO's time to 90% of MeZO's gain / this arm's (0 when never reached)"),
        Metric("step_ms", "ms", False, "median wall-clock per optimizer step"),
        Metric("floor_ms", "ms", False, "median time of two plain forwards on a batch (same run)"),
        Metric("step_over_floor", "x", False, "step_ms / floor_ms"),
        Metric("zo_fraction", "", False, "median fraction of step time in perturbation + update sweeps (f)"),
        Metric("touched_fraction", "", False, "mean fraction of trainable parameters perturbed per step (q)"),
        Metric("amdahl_ceiling", "x", True, "1 / ((1 - f) + f q) with f of MeZO (same seed) and this arm's q"),
        Metric("train_rss_mib", "MiB", False, "peak resident memory during training (process-wide)"),
        Metric("diverged", "", False, "1 when the loss became non-finite"),
    ],
    claims=[
        Claim("wallclock", "AdaLeZO reaches the dev-accuracy target in less wall-clock than MeZO on our engine "
              f"(speed-up > 1); paper: 1.7-3.0x over state-of-the-art ZO methods ({_SRC}).",
              "speedup_vs_mezo", "adalezo", "mezo_fast", "higher", regime=MEZO_LEARNS),
        Claim("wallclock_lezo", "AdaLeZO reaches the dev-accuracy target in less wall-clock than LeZO (uniform layer "
              f"sampling, same k) ({_SRC}: 1.7-3.0x over state-of-the-art ZO methods).",
              "speedup_vs_lezo", "adalezo", "lezo", "higher", regime=MEZO_LEARNS),
        Claim("wallclock90_posthoc", "POST HOC (added after the first full run, where MeZO, LeZO and both AdaLeZO "
              "rules reached the declared +3-point target within their first two evaluations, so that it compared "
              "step times): AdaLeZO reaches 90% of MeZO's final dev-accuracy gain in less wall-clock than MeZO; "
              f"paper: 1.7-3.0x ({_SRC}).", "speedup90_vs_mezo", "adalezo", "mezo_fast", "higher",
              regime=MEZO_LEARNS),
        Claim("wallclock90_lezo_posthoc", "POST HOC (as wallclock90_posthoc): AdaLeZO reaches 90% of MeZO's final "
              f"dev-accuracy gain in less wall-clock than LeZO ({_SRC}).", "speedup90_vs_lezo", "adalezo", "lezo",
              "higher", regime=MEZO_LEARNS),
        Claim("accuracy", "AdaLeZO's test accuracy at equal steps is within 1 point of MeZO's (or better) "
              f"({_SRC}: acceleration 'while maintaining' accuracy).", "test_acc", "adalezo", "mezo_fast", "higher",
              margin=1.0, regime=MEZO_LEARNS),
        Claim("bandit", "AdaLeZO beats uniform layer sampling (LeZO, same k) in test accuracy at equal steps "
              f"({_SRC}: uniform exploration is 'policy-blind').", "test_acc", "adalezo", "lezo", "higher",
              regime=MEZO_LEARNS),
        Claim("official_vs_former", "Ours: the official AdaLeZO rule beats this project's former reconstruction in "
              "test accuracy at equal steps (not a paper claim; it says whether the fidelity fix matters here).",
              "test_acc", "adalezo", "adalezo_former", "higher", regime=MEZO_LEARNS),
        Claim("memory", f"AdaLeZO adds no memory over MeZO (within 16 MiB of peak RSS) ({_SRC}).",
              "train_rss_mib", "adalezo", "mezo_fast", "lower", margin=16.0),
        Claim("plugin", "AdaLeZO as a plug-in improves ZO-Adam at equal wall-clock: higher dev accuracy "
              f"({_SRC}: 'universal plug-and-play module'; the form of the official AdaZOAdaMU update).", "dev_acc_at_time",
              "adalezo_adam", "zo_adam", "higher", regime=MEZO_LEARNS),
        Claim("floor", "Per-step overhead: AdaLeZO's step time is closer to the two-forward floor than MeZO's "
              "(perturbation and update are over 40% of MeZO's step: abstract; Amdahl).", "step_over_floor",
              "adalezo", "mezo_fast", "lower"),
    ],
    run_unit=_run,
    derive=_derive,
    plot=_plot,
    summary=("MeZO's prompt-based protocol scaled to 2 CPU cores: SmolLM2-135M-Instruct scores '<sentence> It was' "
             "by the label words ' terrible'/' great' (MeZO's SST-2 template) on Rotten Tomatoes sentence polarity "
             "(the sentences of SST-2, from the vaderSentiment sdist; neutral ones dropped as SST-2 does; prompts of "
             "at most 24 tokens); 1000/500/1000 examples, batch 16, constant LR, eps 1e-3, eval mode. Only the top 4 "
             "of 30 blocks and the final norm are adapted (the lower blocks' states are cached): 5 arms by the "
             "official grouping, so official AdaLeZO and LeZO draw k = 1. Full: 600 steps, 3 seeds, one LR grid "
             "{1e-6, 1e-5, 1e-4} for every ZO arm tuned on a separate seed by 100-step runs. The paper fine-tunes "
             "OPT/LLaMA 6.7B-30B on GPUs for 20,000 steps; reference-style MeZO is timed on 40 steps only. Quick "
             "mode (2 blocks, 20 steps) is a demonstration whose claims are untestable by design."),
)
