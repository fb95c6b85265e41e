"""Benchmark: MoLS optimizer step time and state memory vs torch.optim.AdamW, in one run.

The parameters are those of a tiny LLaMA (`tenfold.models.hf_tiny.LLAMA_SIZES`, untied head, `--vocab` tokens),
with fixed random gradients. Step times are the median over interleaved repeats of `--steps` steps (drift on a
shared machine hits every optimiser alike), and the median of per-repeat ratios ("paired").

Optimisers timed:
* `adamw_foreach` / `adamw_fused`: torch.optim.AdamW, one param group (the issue's comparator: foreach).
* `adamw_type_groups`: AdamW(foreach) with one param group per module type at MoLS's multipliers: what a user who
  sets module-type LRs by hand runs (the same number of kernel calls as MoLS).
* `mols` / `mols_fused`: the calibrated MoLS after calibration, with every module type at its own multiplier (the
  worst case, one kernel call per type: embed x1, qk x2, vo x3, mlp x4, head x5, other x1; a real calibration gives
  as many distinct values).
* `mols_calibrating`: MoLS's steps during calibration (AdamW plus the gradient sums), the one-off cost.
* `mols_dynamic`: the earlier dynamic variant (SNR refresh every `--interval` steps).
State memory counts the bytes of every tensor in `optimizer.state`.

Usage: tenfold bench mols_step_time [--size tiny] [--vocab 4096] [--steps 50] [--repeats 7] [--out f.json]
(`--out x.json` also writes the figure x.png). Target (issue 23): post-calibration step <= 1.02x AdamW(foreach).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

SPREAD = {"embed": 1.0, "qk": 2.0, "vo": 3.0, "mlp": 4.0, "head": 5.0, "other": 1.0}


def _params(size: str, vocab: int = 256):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tenfold.models.hf_tiny import LLAMA_SIZES

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, tie_word_embeddings=False, **LLAMA_SIZES[size]))
    named = list(model.named_parameters())
    for _, p in named:
        p.grad = torch.randn_like(p) * 1e-2
    return named


def _state_bytes(opt) -> int:
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))


def _time(opt, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps


def _calibrated(named, **kw):
    from tenfold.optim import MoLS

    opt = MoLS(named, lr=1e-3, calibration_steps=2, **kw)
    for _ in range(2):
        opt.step()  # calibrated on the fixed gradients, then every type set to its own multiplier
    opt.multipliers = {t: SPREAD[t] for t in opt.multipliers}
    opt._bucket_cache = {}
    return opt


def _plot(res: dict, path: Path) -> None:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    keys = [k for k in ("adamw_foreach", "adamw_type_groups", "mols", "adamw_fused", "mols_fused",
                        "mols_calibrating", "mols_dynamic") if k in res["step_ms"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    vals = [res["step_ms"][k] for k in keys]
    ax.barh(range(len(keys)), vals, color=["C0" if k.startswith("adamw") else "C1" for k in keys])
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v / res['step_ms']['adamw_foreach']:.2f}x", va="center", fontsize=7)
    ax.set_yticks(range(len(keys)), keys, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"optimizer step, ms (median; {res['n_params'] / 1e6:.2f}M params, {res['threads']} thread)")
    save(fig, path)


def main(argv=None) -> dict:
    from tenfold.optim import MoLS, MoLSDynamic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=("debug", "tiny", "small"))
    ap.add_argument("--vocab", type=int, default=4096, help="vocabulary (embedding and head rows)")
    ap.add_argument("--interval", type=int, default=10, help="MoLSDynamic's refresh interval K")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the JSON result here (and the figure beside it, .png)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    named = _params(args.size, args.vocab)
    params = [p for _, p in named]
    mols = _calibrated(named, foreach=True)
    by_type: dict = {}
    for n, p in named:
        by_type.setdefault(mols.type_of(p), []).append(p)
    opts = {
        "adamw_foreach": torch.optim.AdamW(params, lr=1e-3, foreach=True),
        "adamw_type_groups": torch.optim.AdamW([{"params": ps, "lr": 1e-3 * SPREAD[t]} for t, ps in by_type.items()],
                                               lr=1e-3, foreach=True),
        "mols": mols,
        "adamw_fused": torch.optim.AdamW(params, lr=1e-3, fused=True),
        "mols_fused": _calibrated(named, fused=True),
        "mols_calibrating": MoLS(named, lr=1e-3, foreach=True, calibration_steps=10**9),
        "mols_dynamic": MoLSDynamic(named, lr=1e-3, interval=args.interval, warmup_steps=0),
    }
    with torch.no_grad():
        backup = [p.detach().clone() for p in params]
    times = {k: [] for k in opts}
    for k, o in opts.items():  # warm-up: allocate state
        _time(o, 2)
    for _ in range(args.repeats):
        for k, o in opts.items():
            times[k].append(_time(o, args.steps))
    with torch.no_grad():
        for p, b in zip(params, backup):
            p.copy_(b)
    med = {k: statistics.median(v) for k, v in times.items()}

    def paired(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    res = {
        "benchmark": "mols_step_time",
        "size": args.size,
        "vocab": args.vocab,
        "n_params": sum(p.numel() for p in params),
        "n_tensors": len(params),
        "types": {t: len(ps) for t, ps in by_type.items()},
        "threads": args.threads,
        "multipliers": dict(mols.multipliers),
        "kernel_calls_per_step": {"adamw_foreach": 1, "mols": len(set(mols.multipliers[t] for t in by_type))},
        "step_ms": {k: 1e3 * v for k, v in med.items()},
        "ratio_vs_adamw_foreach": med["mols"] / med["adamw_foreach"],
        "ratio_vs_adamw_foreach_paired": paired("mols", "adamw_foreach"),
        "ratio_vs_adamw_type_groups_paired": paired("mols", "adamw_type_groups"),
        "fused_ratio_vs_adamw_fused_paired": paired("mols_fused", "adamw_fused"),
        "calibrating_ratio_vs_adamw_foreach": med["mols_calibrating"] / med["adamw_foreach"],
        "dynamic_ratio_vs_adamw_foreach": med["mols_dynamic"] / med["adamw_foreach"],
        "target_post_calibration_le_1.02": paired("mols", "adamw_foreach") <= 1.02,
        "state_bytes": {"adamw": _state_bytes(opts["adamw_foreach"]), "mols": _state_bytes(mols),
                        "mols_dynamic": _state_bytes(opts["mols_dynamic"])},
    }
    print(json.dumps(res, indent=2))
    if args.out:
        from tenfold.common.atomic import atomic_write_json

        atomic_write_json(args.out, res)
        _plot(res, Path(args.out).with_suffix(".png"))
    return res


if __name__ == "__main__":
    main()
