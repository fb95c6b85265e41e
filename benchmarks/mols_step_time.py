"""Benchmark: MoLS optimizer step time and state memory vs torch.optim.AdamW(foreach=True), in one run.

The parameters are those of the tiny LLaMA (`tenfold.models.hf_tiny.tiny_llama`, untied head), with fixed
random gradients. Step times are the median over interleaved repeats of `--steps` steps (so drift on a
shared machine hits both alike), also as the median of per-repeat ratios.
`mols`: the calibrated MoLS after its calibration (torch's Adam kernel per module-type multiplier);
`mols_calibrating`: its steps during calibration (AdamW plus the gradient sums), the one-off cost;
`mols_dynamic` / `mols_dynamic_no_refresh`: the earlier dynamic variant (SNR refresh every K / never).
State memory counts the bytes of every tensor in `optimizer.state`.

Usage: tenfold bench mols_step_time [--size tiny] [--interval 10] [--steps 50] [--repeats 7] [--out f.json]
Target (issue 23): the calibrated MoLS's post-calibration step <= 1.02x AdamW(foreach=True).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def _params(size: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tenfold.models.hf_tiny import LLAMA_SIZES

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, tie_word_embeddings=False, **LLAMA_SIZES[size]))
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


def main(argv=None) -> dict:
    from tenfold.optim import MoLS, MoLSDynamic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=("debug", "tiny", "small"))
    ap.add_argument("--interval", type=int, default=10, help="MoLS K")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    named = _params(args.size)
    params = [p for _, p in named]
    calibrated = MoLS(named, lr=1e-3, foreach=True, calibration_steps=2)
    for _ in range(2):
        calibrated.step()  # calibrated on the fixed gradients: multipliers fixed from here on
    opts = {
        "adamw_foreach": torch.optim.AdamW(params, lr=1e-3, foreach=True),
        "adamw_forloop": torch.optim.AdamW(params, lr=1e-3, foreach=False),
        "mols": calibrated,
        "mols_calibrating": MoLS(named, lr=1e-3, foreach=True, calibration_steps=10**9),
        "mols_dynamic": MoLSDynamic(named, lr=1e-3, interval=args.interval, warmup_steps=0),
        # the same optimizer with the SNR refresh never due: separates the step kernels from the refresh cost
        "mols_dynamic_no_refresh": MoLSDynamic(named, lr=1e-3, interval=10**9, warmup_steps=0),
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
    mols = opts["mols_dynamic"]
    n_modules = len(mols.param_groups)
    extra_floats = 3 * n_modules  # snr, module_scale, mols_step per module
    res = {
        "benchmark": "mols_step_time",
        "size": args.size,
        "n_params": sum(p.numel() for p in params),
        "n_tensors": len(params),
        "n_modules": n_modules,
        "interval": args.interval,
        "threads": args.threads,
        "step_ms": {k: 1e3 * v for k, v in med.items()},
        "ratio_vs_adamw_foreach": med["mols"] / med["adamw_foreach"],
        # per-repeat ratios (MoLS and AdamW timed back to back) cancel slow drift from other load
        "ratio_vs_adamw_foreach_paired": statistics.median(
            m / a for m, a in zip(times["mols"], times["adamw_foreach"])),
        "ratio_vs_adamw_forloop": med["mols"] / med["adamw_forloop"],
        "multipliers": calibrated.multipliers,
        "calibrating_ratio_vs_adamw_foreach": med["mols_calibrating"] / med["adamw_foreach"],
        "dynamic_ratio_vs_adamw_foreach": med["mols_dynamic"] / med["adamw_foreach"],
        "target_post_calibration_le_1.02": med["mols"] / med["adamw_foreach"] <= 1.02,
        "state_bytes": {"adamw": _state_bytes(opts["adamw_foreach"]), "mols": _state_bytes(calibrated),
                        "mols_dynamic": _state_bytes(mols)},
        "mols_extra_state": {"module_floats": extra_floats,
                             "tensor_bytes_over_adamw": _state_bytes(mols) - _state_bytes(opts["adamw_foreach"])},
    }
    print(json.dumps(res, indent=2))
    if args.out:
        from tenfold.common.atomic import atomic_write_json

        atomic_write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
