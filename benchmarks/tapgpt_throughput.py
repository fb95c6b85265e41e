"""Benchmark: TAP-GPT on CPU: predictions per second and LoRA steps per second for SmolLM2-135M-Instruct on
real ad_data prompts (k = 4 shots), with and without the shared-prefix cache, and the peak resident memory of
LoRA tuning vs inference (paper 8, arXiv 2603.17191).

Two paths, same model, same prompts text:

* per-prompt (`shot_sets=None`, `predict_batch_size=1`): every prompt draws its own examples (the reference),
  so each prediction is one forward pass over the whole prompt, and each LoRA prompt its own forward and
  backward pass.
* cached (`shot_sets=4`, `predict_batch_size=16`): four example draws per test split; the prompt prefix
  (template, instruction, table header, example rows) runs once per draw and its key/value state is reused
  by a batch of query rows; each LoRA step's batch shares one prefix, through which gradients flow back.

A LoRA step is `--batch` prompts of forward + answer-token loss + backward, then one AdamW update of the
adapters (r = 8, all linear layers). Peak RSS is measured per phase (`PeakMemory` resets the high-water mark)
with the model already loaded, so the difference is what tuning adds (activations kept for backward,
gradients, AdamW state).

    .venv/bin/python benchmarks/tapgpt_throughput.py                       # p = 8
    .venv/bin/python benchmarks/tapgpt_throughput.py --features 8,16 --preds 32 --steps 4 --out bench.json
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from tenfold.harness.memory import PeakMemory

PATHS = {"per_prompt": {"shot_sets": None, "predict_batch_size": 1},
         "cached": {"shot_sets": 4, "predict_batch_size": 16}}


def run(p: int, path: str, args) -> dict:
    from tenfold.data import ad_biomarkers
    from tenfold.tabular import TAPGPTClassifier

    X, y = ad_biomarkers()
    order = np.random.default_rng(0).permutation(len(X))
    fit, test = order[:250], order[250:250 + args.preds]
    common = dict(model=args.model, k=4, n_features=p, label_name="Impaired", pool_size=37, random_state=0,
                  **PATHS[path])
    clf = TAPGPTClassifier(**common).fit(X.iloc[fit], y[fit])
    plan = clf._plan(X.iloc[test])
    n_prefix = float(np.mean([len(g[0]) for g in plan]))
    n_suffix = float(np.mean([len(q) for g in plan for _, q, _ in g[2]]))
    clf.predict_proba(X.iloc[test[:2]])                       # warm-up
    with PeakMemory() as mem_inf:
        t0 = time.perf_counter()
        proba = clf.predict_proba(X.iloc[test])
        pred_s = time.perf_counter() - t0
    del clf
    gc.collect()
    tuner = TAPGPTClassifier(**common, lora_steps=args.steps, batch_size=args.batch, lora_r=8)
    steps_t = []
    with PeakMemory() as mem_tune:
        last = [time.perf_counter()]

        def tick(step, loss):
            now = time.perf_counter()
            steps_t.append(now - last[0]); last[0] = now
        tuner.fit(X.iloc[fit], y[fit], callback=tick)
    step_s = float(np.median(steps_t[1:] if len(steps_t) > 1 else steps_t))   # skip the first (fit set-up)
    return {"path": path, "features": p, "prefix_tokens": n_prefix, "suffix_tokens": n_suffix,
            "predictions_per_s": args.preds / pred_s, "lora_steps_per_s": 1.0 / step_s, "lora_batch": args.batch,
            "peak_rss_inference_mib": mem_inf.peak_mib, "peak_rss_tuning_mib": mem_tune.peak_mib,
            "tuning_over_inference": mem_tune.peak_mib / mem_inf.peak_mib, "mean_p1": float(proba[:, 1].mean())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", default="8", help="feature counts p, comma-separated")
    ap.add_argument("--preds", type=int, default=32, help="test prompts timed per p and path")
    ap.add_argument("--steps", type=int, default=3, help="LoRA steps timed per p and path (the first is dropped)")
    ap.add_argument("--batch", type=int, default=8, help="prompts per LoRA step")
    ap.add_argument("--paths", default="per_prompt,cached", help="which of: " + ", ".join(PATHS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="smollm2", help="smollm2 or tiny-debug (for a dry run)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = [run(int(p), path, args) for p in args.features.split(",") for path in args.paths.split(",")]
    out = {"benchmark": "tapgpt_throughput", "model": args.model, "threads": args.threads,
           "torch": torch.__version__, "runs": runs}
    print(f"TAP-GPT throughput, {args.model}, {args.threads} thread(s), k = 4 shots, LoRA batch {args.batch}:")
    for r in runs:
        print(f"  p={r['features']:3d} {r['path']:10s} (prefix {r['prefix_tokens']:.0f} + suffix "
              f"{r['suffix_tokens']:.0f} tokens): {r['predictions_per_s']:.2f} predictions/s, "
              f"{r['lora_steps_per_s']:.3f} LoRA steps/s; peak RSS inference {r['peak_rss_inference_mib']:.0f} MiB, "
              f"tuning {r['peak_rss_tuning_mib']:.0f} MiB ({r['tuning_over_inference']:.2f}x)")
    if args.out:
        from tenfold.common.atomic import atomic_write_json

        atomic_write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
