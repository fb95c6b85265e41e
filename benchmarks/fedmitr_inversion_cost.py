"""Benchmark: synthesis cost of sparse model inversion vs dense inversion (and DENSE's generator), same image count.

FedMITR's claim (c): halting low-information patches makes inversion cheaper, because halted tokens are dropped from
the forward pass. The saving grows with the number of patches, so this runs the three synthesisers on the same
5-client ensemble of tiny HF ViTs at several patch sizes on 28x28 images (7 -> 16 patches, 4 -> 49, 2 -> 196).
The cost does not depend on what the clients learnt, so the client ViTs are randomly initialised (seeded).

Usage:
    TENFOLD_THREADS=1 python benchmarks/fedmitr_inversion_cost.py [--patches 7,4] [--images 128] [--steps 80]
        [--repeats 3] [--out results/bench/fedmitr_inversion_cost.json]

Output: a table on stdout and a JSON file with, per patch size and synthesiser, the median wall and process-CPU
seconds, the patch tokens forwarded, and the ratios to dense inversion (the CPU ratio is the one to trust on a
shared machine). Every synthesiser makes `--images` images with `--steps` ensemble passes per image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patches", default="7,4", help="ViT patch sizes on 28x28 (divisors of 28)")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--steps", type=int, default=80, help="inversion steps = DENSE generator steps per round")
    p.add_argument("--batch", type=int, default=128, help="inversion batch")
    p.add_argument("--dense-batch", type=int, default=64, help="DENSE images per round")
    p.add_argument("--clients", type=int, default=5)
    p.add_argument("--prune-ratio", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="results/bench/fedmitr_inversion_cost.json")
    args = p.parse_args(argv)

    import torch

    from tenfold.common.seeding import configure_threads
    from tenfold.federated.oneshot import DenseSynthesizer, SparseInverter
    from tenfold.models.hf_tiny import tiny_vit

    configure_threads()
    rows = []
    for patch in [int(v) for v in args.patches.split(",")]:
        models = []
        for k in range(args.clients):
            torch.manual_seed(k)
            models.append(tiny_vit("debug", image_size=28, patch_size=patch, num_channels=1, num_labels=10)[0].eval())
        torch.manual_seed(100)
        student = tiny_vit("debug", image_size=28, patch_size=patch, num_channels=1, num_labels=10)[0]

        def sparse():
            s = SparseInverter(steps=args.steps, batch_size=args.batch, prune_ratio=args.prune_ratio)
            return s.synthesize(models, args.images).stats["token_steps"]

        def dense():
            return SparseInverter(steps=args.steps, batch_size=args.batch, prune_ratio=0.0).synthesize(
                models, args.images).stats["token_steps"]

        def dense_gen():   # one KD step only, so this times DENSE's generator phases; no statistics prior
            d = DenseSynthesizer(rounds=max(1, args.images // args.dense_batch), g_steps=args.steps,
                                 batch_size=args.dense_batch, ngf=8, bn_weight=0.0)
            return d.distill(models, student, kd_steps=1, kd_batch=8)["synthetic"].stats["token_steps"]

        arms = {"dense": dense, "sparse": sparse, "dense_gen": dense_gen}
        times, tokens = {k: [] for k in arms}, {}
        for _ in range(args.repeats):     # interleaved so that load changes hit every arm alike
            for name, fn in arms.items():
                t0, c0 = time.perf_counter(), time.process_time()
                tokens[name] = fn()
                times[name].append((time.perf_counter() - t0, time.process_time() - c0))
        wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
        for k in arms:
            rows.append({"patch": patch, "n_patches": (28 // patch) ** 2, "arm": k, "median_wall_s": wall[k],
                         "median_cpu_s": cpu[k], "wall_ratio_vs_dense": wall[k] / wall["dense"],
                         "cpu_ratio_vs_dense": cpu[k] / cpu["dense"], "mtokens": tokens[k] / 1e6,
                         "token_ratio_vs_dense": tokens[k] / tokens["dense"], "runs_wall_cpu_s": times[k]})
    print(f"{args.clients} client ViTs (debug), {args.images} images, {args.steps} steps, prune_ratio "
          f"{args.prune_ratio} at 30/50/70 %, threads={torch.get_num_threads()}")
    print(f"{'patches':>7s} {'arm':10s} {'wall [s]':>9s} {'CPU [s]':>9s} {'CPU ratio':>9s} {'M tokens':>9s} "
          f"{'tok ratio':>9s}")
    for r in rows:
        print(f"{r['n_patches']:7d} {r['arm']:10s} {r['median_wall_s']:9.2f} {r['median_cpu_s']:9.2f} "
              f"{r['cpu_ratio_vs_dense']:9.2f} {r['mtokens']:9.2f} {r['token_ratio_vs_dense']:9.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "fedmitr_inversion_cost", "config": vars(args), "rows": rows},
                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
