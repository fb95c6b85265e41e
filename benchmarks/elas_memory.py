"""Benchmark: ELAS FFN memory and speed the paper's way (activation bytes, FFN inference time), in one run.

Memory (paper Table 2): the bytes of the FFN's stored intermediate activation in bf16 (`ffn_activation_bytes`: the
2:4-compressed ReLU² activation for ELAS, the dense one without 2:4, silu(gate)·up for SwiGLU) at batch 1/32/128,
and, as an extra, every tensor autograd saves for the FFN's backward (`saved_tensor_bytes`).
Speed (paper Table 3): FFN forward (inference, no grad) time of each form vs the full-rank SwiGLU FFN at the
paper's widths (60M: d 512, d_ff 1376, rank 128; 130M: 768 / 2048 / 256), timed interleaved in one process. On
CPU the ELAS FFN runs the reference path (mask, then dense GEMM), so 2:4 cannot speed anything up here; the
speed-up over full rank comes from the low rank and the dropped gate (as in the first author's benchmark file).
On a machine with CUDA it also times the FFN forward in bf16 with ELAS on the 2:4 kernels, and records the probe
of whether the pinned torch runs 2:4 on that GPU.

Forms, all with `elasify`'s paper defaults (rank hidden/4, Xavier factors, squared-ReLU width 1.5x):
full-rank SwiGLU, low-rank SwiGLU (LORO), CoLA, low-rank squared ReLU without 2:4, ELAS.

Usage: tenfold bench elas_memory [--widths 512:1376,768:2048] [--tokens 2048] [--repeats 7] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

FORMS = {  # benchmark name -> tenfold.sparse.build_ffn form
    "fullrank_swiglu": "swiglu",
    "lowrank_swiglu": "lowrank_swiglu",
    "cola": "cola",
    "lowrank_srelu": "srelu",
    "elas": "srelu24",
}


def _ffn(form: str, d: int, d_ff: int, rank: int, backend: str = "reference"):
    from tenfold.sparse import build_ffn

    torch.manual_seed(0)
    return build_ffn(FORMS[form], d, d_ff, rank, backend=backend).eval()


def _memory(d: int, d_ff: int, rank: int, seq: int, batches: list[int]) -> dict:
    from tenfold.sparse import ffn_activation_bytes, saved_tensor_bytes

    out = {}
    for form in FORMS:
        ffn = _ffn(form, d, d_ff, rank).to(torch.bfloat16)
        rec = {}
        for b in batches:
            x = torch.randn(b, seq, d, dtype=torch.bfloat16)
            rec[f"act_b{b}"] = ffn_activation_bytes(ffn, x)
        x = torch.randn(min(batches), seq, d, dtype=torch.bfloat16, requires_grad=True)
        rec[f"saved_b{min(batches)}"] = saved_tensor_bytes(lambda: ffn(x), exclude=list(ffn.parameters()))
        out[form] = rec
    return out


@torch.no_grad()
def _speed(d: int, d_ff: int, rank: int, tokens: int, repeats: int) -> dict:
    ffns = {f: _ffn(f, d, d_ff, rank) for f in FORMS}
    x = torch.randn(tokens, d)
    for m in ffns.values():
        m(x)
    times = {f: [] for f in ffns}
    for _ in range(repeats):  # interleaved so machine drift hits every form alike
        for f, m in ffns.items():
            t0 = time.perf_counter()
            m(x)
            times[f].append(time.perf_counter() - t0)
    med = {f: statistics.median(v) * 1e3 for f, v in times.items()}
    return {"ms": med, "speedup_vs_fullrank": {f: med["fullrank_swiglu"] / v for f, v in med.items()},
            "elas_vs_no24": med["lowrank_srelu"] / med["elas"]}


def _gpu(d: int, d_ff: int, rank: int, tokens: int) -> dict:
    if not torch.cuda.is_available():
        return {"available": False, "note": "no CUDA: GPU timing not run"}
    from tenfold.sparse.kernels import semi_structured_status

    ok, why = semi_structured_status()
    out = {"available": True, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "semi_structured_ok": ok, "probe": why or "ok", "hidden": d, "tokens": tokens}
    x = torch.randn(tokens, d, device="cuda", dtype=torch.bfloat16)

    def ms(m) -> float:
        from tenfold.sparse.kernels import time_forward

        return time_forward(m, [x])

    for form in FORMS:
        out[f"{form}_ms"] = ms(_ffn(form, d, d_ff, rank).cuda().bfloat16())
    if ok:
        out["elas_cuda24_ms"] = ms(_ffn("elas", d, d_ff, rank, backend="cuda").cuda().bfloat16())
        out["speedup_elas_cuda24_vs_fullrank"] = out["fullrank_swiglu_ms"] / out["elas_cuda24_ms"]
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="512:1376,768:2048", help="hidden:intermediate pairs (paper 60M, 130M)")
    ap.add_argument("--rank-frac", type=float, default=0.25, help="rank / hidden (paper: 1/4)")
    ap.add_argument("--seq", type=int, default=256, help="tokens per sequence of the memory measurement")
    ap.add_argument("--batches", default="1,32,128", help="batch sizes of the memory measurement (paper Table 2)")
    ap.add_argument("--tokens", type=int, default=2048, help="tokens per timed forward")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    widths = [tuple(int(v) for v in w.split(":")) for w in args.widths.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    result = {"benchmark": "elas_memory", "threads": args.threads, "torch": torch.__version__, "per_width": {}}
    for d, d_ff in widths:
        rank = max(1, int(round(args.rank_frac * d)))
        mem = _memory(d, d_ff, rank, args.seq, batches)
        b = f"act_b{max(batches)}"
        result["per_width"][f"{d}x{d_ff}"] = {
            "rank": rank, "memory_bytes": mem,
            "act_ratio_elas_vs_lowrank_swiglu": mem["elas"][b] / mem["lowrank_swiglu"][b],
            "act_ratio_elas_vs_no24": mem["elas"][b] / mem["lowrank_srelu"][b],
            "speed": _speed(d, d_ff, rank, args.tokens, args.repeats),
            "gpu": _gpu(d, d_ff, rank, 4 * args.tokens),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
