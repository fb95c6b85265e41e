"""Benchmark: ZO step time in one run: our MeZO engine vs reference-style MeZO, AdaLeZO/LeZO vs the floor.

Model: all-MiniLM-L6-v2 (22.7M parameters, `tenfold.models.pretrained.minilm`) on a fixed batch of
`--batch` passages x `--seq` tokens, loss = cross-entropy of a 3-way linear head on the mean-pooled
output; `--model smollm2_top` (the AdaLeZO reproduction's set-up: SmolLM2's top 4 blocks and final norm on
cached hidden states, label-word loss; 5 arms); or `--model tiny_llama` (the "small" tiny LLaMA, byte LM loss).
Every optimizer takes the same closure. Timings are medians over interleaved repeats of `--steps` steps,
so drift on a shared machine hits every variant alike; each ratio is taken within this one run:

* engine: MeZO (dedicated generators, in-place, fused restore+update: 3 sweeps) vs `MeZOReference`
  (global RNG, out-of-place, 4 sweeps), with the forward (full step) and without it (closure returns 0:
  the sweeps alone);
* the floor: two plain forwards per step; each method's step time / floor;
* f = (perturb + update) / step for each method, touched fraction q, and the Amdahl ceiling
  1 / ((1 - f_MeZO) + f_MeZO q).

Usage: python benchmarks/zo_step_time.py [--model minilm] [--batch 16] [--seq 32] [--steps 5] [--repeats 5]
       [--exclude-embed] [--threads 1] [--out f.json]
Targets from the issues: our MeZO >= 2x faster per step than reference-style MeZO (issue 25; issue 4 asked for
1.3x); AdaLeZO per-step time <= 1.15x the two-forward floor. AdaLeZO and LeZO run at the official k = max(1,
floor(0.2 L)), the former rule at its ceil(L / 4).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def _setup(name: str, batch: int, seq: int):
    torch.manual_seed(0)
    if name == "minilm":
        from tenfold.models.pretrained import minilm

        enc, _ = minilm()
        enc.eval()
        head = torch.nn.Linear(enc.config.hidden_size, 3)
        model = torch.nn.ModuleDict({"encoder": enc, "head": head})
        ids = torch.randint(1000, 20000, (batch, seq))
        y = torch.randint(0, 3, (batch,))

        def loss():
            h = enc(input_ids=ids).last_hidden_state.mean(1)
            return torch.nn.functional.cross_entropy(head(h), y)
    elif name == "smollm2_top":
        from tenfold.experiments.adalezo import LABEL_WORDS, TopBlocksLM
        from tenfold.models.pretrained import smollm2

        lm, tok = smollm2()
        lm.eval()
        model = TopBlocksLM(lm, 4, [tok(w)["input_ids"][0] for w in LABEL_WORDS]).eval()
        h = torch.randn(batch, seq, lm.config.hidden_size)
        lengths = torch.full((batch,), seq)
        y = torch.randint(0, 2, (batch,))

        def loss():
            return torch.nn.functional.cross_entropy(model((h, lengths)), y)
    else:
        from tenfold.models.hf_tiny import tiny_llama

        model, _ = tiny_llama("small")
        model.eval()
        ids = torch.randint(0, 256, (batch, seq))

        def loss():
            return model(input_ids=ids, labels=ids).loss
    return model, loss


def main(argv=None) -> dict:
    from tenfold.zo import AdaLeZO, LeZO, MeZO, MeZOReference, default_k, model_arms

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm", choices=("minilm", "smollm2_top", "tiny_llama"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--exclude-embed", action="store_true", help="freeze the embedding arm for every method")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    model, loss = _setup(args.model, args.batch, args.seq)
    arms = model_arms(model, exclude=["embed"] if args.exclude_embed else ())
    L = len(arms)
    params = [p for g in arms for p in g["params"]]
    d = sum(p.numel() for p in params)
    lr = 0.0  # timing only: keep the weights where they are
    opts = {
        "mezo_reference": MeZOReference(params, lr=lr, eps=1e-3),
        "mezo_fast": MeZO(arms, lr=lr, eps=1e-3, seed=0),
        f"lezo_k={default_k(L)}": LeZO(arms, lr=lr, eps=1e-3, k=default_k(L), seed=0),
        f"adalezo_official_k={default_k(L)}": AdaLeZO(arms, lr=lr, eps=1e-3, seed=0),
        f"adalezo_former_k={default_k(L, 'former')}": AdaLeZO(arms, lr=lr, eps=1e-3, variant="former", warmup=0,
                                                              seed=0),
    }

    def run(opt, closure, steps):
        t0 = time.perf_counter()
        buckets, touched = {"perturb": 0.0, "update": 0.0}, 0
        for _ in range(steps):
            opt.step(closure)
            buckets["perturb"] += opt.timing["perturb"]
            buckets["update"] += opt.timing["update"]
            touched += opt.last["touched"]
        total = time.perf_counter() - t0
        return total / steps, (buckets["perturb"] + buckets["update"]) / total, touched / steps / d

    def floor(steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                float(loss()); float(loss())
        return (time.perf_counter() - t0) / steps

    def zero():
        return 0.0

    for o in opts.values():  # warm-up (allocations, scratch buffers)
        run(o, loss, 1)
    rows = {k: [] for k in opts}
    engine = {"mezo_reference": [], "mezo_fast": []}
    floors = []
    for _ in range(args.repeats):
        floors.append(floor(args.steps))
        for k, o in opts.items():
            rows[k].append(run(o, loss, args.steps))
        for k in engine:
            engine[k].append(run(opts[k], zero, args.steps)[0])
    fl = statistics.median(floors)
    step = {k: statistics.median(r[0] for r in v) for k, v in rows.items()}
    frac = {k: statistics.median(r[1] for r in v) for k, v in rows.items()}
    q = {k: statistics.median(r[2] for r in v) for k, v in rows.items()}
    eng = {k: statistics.median(v) for k, v in engine.items()}
    f = frac["mezo_fast"]
    res = {
        "benchmark": "zo_step_time", "model": args.model, "n_params": d, "n_arms": L,
        "arms": [g["name"] for g in arms], "batch": args.batch, "seq": args.seq, "threads": args.threads,
        "exclude_embed": args.exclude_embed,
        "floor_ms": 1e3 * fl,
        "step_ms": {k: 1e3 * v for k, v in step.items()},
        "step_over_floor": {k: v / fl for k, v in step.items()},
        "zo_fraction_f": frac,
        "touched_fraction_q": q,
        "amdahl_ceiling_vs_mezo_fast": {k: 1.0 / ((1 - f) + f * v) for k, v in q.items()},
        "speedup_vs_mezo_fast": {k: step["mezo_fast"] / v for k, v in step.items()},
        "engine_speedup_full_step": step["mezo_reference"] / step["mezo_fast"],
        "engine_speedup_sweeps_only": eng["mezo_reference"] / eng["mezo_fast"],
        "sweeps_only_ms": {k: 1e3 * v for k, v in eng.items()},
    }
    print(json.dumps(res, indent=2))
    if args.out:
        from tenfold.common.atomic import atomic_write_json

        atomic_write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
