"""Benchmark: TAP-GPT on CPU: predictions per second and LoRA steps per second for SmolLM2-135M-Instruct on
real ad_data prompts (k = 4 shots), and the peak resident memory of LoRA tuning vs inference (paper 8,
arXiv 2603.17191).

A prediction is one prompt -> one forward pass (last-position logits only) -> p("0"), p("1"). A LoRA step is
`--batch` prompts of forward + answer-token loss + backward, then one AdamW update of the adapters (r = 8,
all linear layers). Peak RSS is measured per phase (`PeakMemory` resets the high-water mark), with the model
already loaded, so the difference is what tuning adds (activations kept for backward, gradients, AdamW state).

    .venv/bin/python benchmarks/tapgpt_throughput.py                       # p = 8 and 16 features
    .venv/bin/python benchmarks/tapgpt_throughput.py --features 16 --preds 10 --steps 4 --out bench.json
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import numpy as np
import torch

from tenfold.harness.memory import PeakMemory


def run(p: int, args) -> dict:
    from tenfold.data import ad_biomarkers
    from tenfold.tabular import TAPGPTClassifier

    X, y = ad_biomarkers()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    fit, test = order[:250], order[250:250 + args.preds]
    common = dict(model=args.model, k=4, n_features=p, label_name="Impaired", pool_size=37, random_state=0)
    clf = TAPGPTClassifier(**common).fit(X.iloc[fit], y[fit])
    n_tok = np.mean([clf._encode(t).shape[1] for t in clf.prompts(X.iloc[test[:3]])])
    clf.predict_proba(X.iloc[test[:1]])                       # warm-up
    with PeakMemory() as mem_inf:
        t0 = time.perf_counter()
        clf.predict_proba(X.iloc[test])
        pred_s = time.perf_counter() - t0
    del clf                                                   # free the inference copy before tuning loads its own
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
    return {"features": p, "prompt_tokens": float(n_tok), "predictions_per_s": args.preds / pred_s,
            "lora_steps_per_s": 1.0 / step_s, "lora_batch": args.batch,
            "peak_rss_inference_mib": mem_inf.peak_mib, "peak_rss_tuning_mib": mem_tune.peak_mib,
            "tuning_over_inference": mem_tune.peak_mib / mem_inf.peak_mib}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", default="8,16", help="feature counts p, comma-separated")
    ap.add_argument("--preds", type=int, default=8, help="test prompts timed per p")
    ap.add_argument("--steps", type=int, default=3, help="LoRA steps timed per p (the first is dropped)")
    ap.add_argument("--batch", type=int, default=2, help="prompts per LoRA step")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="smollm2", help="smollm2 or tiny-debug (for a dry run)")
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"benchmark": "tapgpt_throughput", "model": args.model, "threads": args.threads,
           "torch": torch.__version__, "runs": [run(int(p), args) for p in args.features.split(",")]}
    print(f"TAP-GPT throughput, {args.model}, {args.threads} thread(s), k = 4 shots:")
    for r in out["runs"]:
        print(f"  p={r['features']:3d} ({r['prompt_tokens']:.0f} tokens): {r['predictions_per_s']:.2f} predictions/s, "
              f"{r['lora_steps_per_s']:.3f} LoRA steps/s (batch {r['lora_batch']}); peak RSS inference "
              f"{r['peak_rss_inference_mib']:.0f} MiB, tuning {r['peak_rss_tuning_mib']:.0f} MiB "
              f"({r['tuning_over_inference']:.2f}x)")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
