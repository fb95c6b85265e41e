"""Benchmark: the SSR pipeline's two expensive non-SFT steps (paper 10, ACE-Brain-0, arXiv 2603.03198).

1. WUDI merge time, closed form vs FusionBench's iterative Adam loop (300 steps), on SmolLM2-135M-shaped
   weight matrices (q_proj 576x576, k_proj 192x576, up_proj 1536x576, down_proj 576x1536), K experts with
   task vectors of relative size 1% (dense, as full fine-tuning gives) or rank 8 (as merged LoRA gives).
   Adam's time is measured over `--adam-steps` steps and scaled to 300 steps (its steps all cost the same;
   pass ``--adam-steps 300`` to time the whole loop). Reported: seconds per matrix and the ratio.
2. GRPO generations per second through TRL's GRPOTrainer on SmolLM2-135M-Instruct (LoRA on the top
   `--adapt-layers` layers, G completions of up to 6 tokens per prompt, beta = 0), from TRL's own step timer.

    .venv/bin/python benchmarks/ssr_speed.py                    # both, 1 thread
    .venv/bin/python benchmarks/ssr_speed.py --skip-grpo --adam-steps 300 --out bench.json
"""

from __future__ import annotations

import argparse
import time

import torch

SHAPES = {"q_proj": (576, 576), "k_proj": (192, 576), "up_proj": (1536, 576), "down_proj": (576, 1536)}


def _task_vectors(shape, k, kind, gen):
    m, n = shape
    base = torch.randn(m, n, generator=gen) / n ** 0.5
    if kind == "lora":
        tv = [torch.randn(m, 8, generator=gen) @ torch.randn(8, n, generator=gen) for _ in range(k)]
    else:
        tv = [torch.randn(m, n, generator=gen) for _ in range(k)]
    return torch.stack([0.01 * base.norm() * t / t.norm() for t in tv])


def bench_wudi(args) -> list[dict]:
    from tenfold.merging import wudi_adam, wudi_closed_form, wudi_objective

    gen = torch.Generator().manual_seed(0)
    rows = []
    for kind in args.kinds.split(","):
        for name, shape in SHAPES.items():
            tv = _task_vectors(shape, args.experts, kind, gen)
            t0 = time.perf_counter()
            cf = wudi_closed_form(tv).float()
            t_cf = time.perf_counter() - t0
            t0 = time.perf_counter()
            ad = wudi_adam(tv, iters=args.adam_steps, lr=1e-5)
            t_ad = (time.perf_counter() - t0) * 300 / args.adam_steps
            rows.append({"kind": kind, "matrix": name, "shape": list(shape), "closed_form_s": t_cf,
                         "adam300_s": t_ad, "ratio": t_ad / t_cf,
                         "loss_closed_form": float(wudi_objective(cf, tv)), "loss_adam": float(wudi_objective(ad, tv)),
                         "loss_sum_init": float(wudi_objective(tv.sum(0), tv))})
    return rows


def bench_grpo(args) -> dict:
    from tenfold.merging.domains import DOMAINS, make_split
    from tenfold.merging.grpo import GRPOSettings, grpo_train
    from tenfold.models.pretrained import smollm2

    model, tok = smollm2()
    ex = [e for d in DOMAINS.names() for e in make_split(d, 16, 1)[0]]
    n = len(model.model.layers)
    s = GRPOSettings(steps=args.grpo_steps, prompts_per_step=2, num_generations=args.generations,
                     save_every=10 ** 6)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _, log = grpo_train(model, tok, ex, s, tmp, layers=list(range(n - args.adapt_layers, n)),
                            targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    return {"steps": args.grpo_steps, "generations_per_step": 2 * args.generations, "seconds": log["seconds"],
            "generations_per_s": log["gen_per_s"], "mean_reward": sum(log["reward"]) / len(log["reward"])}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experts", type=int, default=3, help="K experts merged")
    ap.add_argument("--kinds", default="lora,dense", help="task-vector kinds: lora (rank 8), dense")
    ap.add_argument("--adam-steps", type=int, default=20, help="Adam steps timed (scaled to FusionBench's 300)")
    ap.add_argument("--skip-grpo", action="store_true")
    ap.add_argument("--grpo-steps", type=int, default=4)
    ap.add_argument("--generations", type=int, default=4, help="GRPO group size G (2 prompts per step)")
    ap.add_argument("--adapt-layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"benchmark": "ssr_speed", "threads": args.threads, "torch": torch.__version__, "wudi": bench_wudi(args)}
    print(f"WUDI merge time per matrix, K={args.experts} experts, {args.threads} thread(s) "
          f"(Adam: {args.adam_steps} steps timed, scaled to 300):")
    for r in out["wudi"]:
        print(f"  {r['kind']:5s} {r['matrix']:9s} {str(tuple(r['shape'])):12s} closed form {r['closed_form_s']:.3f} s, "
              f"Adam x300 {r['adam300_s']:.2f} s, ratio {r['ratio']:.0f}x; loss closed form "
              f"{r['loss_closed_form']:.3g} vs Adam({args.adam_steps}) {r['loss_adam']:.3g} "
              f"(init {r['loss_sum_init']:.3g})")
    if not args.skip_grpo:
        out["grpo"] = bench_grpo(args)
        g = out["grpo"]
        print(f"GRPO (TRL GRPOTrainer, SmolLM2-135M, LoRA on top {args.adapt_layers} layers, beta=0): "
              f"{g['generations_per_s']:.2f} completions/s over {g['steps']} steps of {g['generations_per_step']}")
    if args.out:
        from tenfold.common.atomic import atomic_write_json

        atomic_write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
