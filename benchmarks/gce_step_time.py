"""Benchmark: training-step time with GCE vs cross-entropy on the same model and batch, and the fit time of
temperature scaling / ATS on 10k logits (paper 6, arXiv 2604.06689; issue target: GCE step <= 1.05x CE).

A step is forward + loss + backward + SGD update of LeNet-5 (the reproduction's network) or `GNConvNet` on one fixed batch of Fashion-MNIST-shaped
inputs. CE and GCE steps are timed interleaved one by one (so drift from other processes hits both alike) and
their medians are compared. The loss alone (forward + backward on fixed logits) is reported too.

    .venv/bin/python benchmarks/gce_step_time.py                 # prints a table
    .venv/bin/python benchmarks/gce_step_time.py --out bench.json --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tenfold.calibration import AdaptiveTemperatureScaling, GCELoss, TemperatureScaling
from tenfold.calibration.losses import CrossEntropyLoss
from tenfold.models import GNConvNet, LeNet5


def _step_timer(model, loss_fn, x, y, opt):
    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _loss_timer(loss_fn, z, y):
    def step():
        zz = z.detach().requires_grad_(True)
        loss_fn(zz, y).backward()
    return step


def compare(make_fns, rounds: int, reps: int) -> dict:
    """Time CE and GCE steps interleaved one by one (CE, GCE, CE, GCE, ...) `rounds * reps` times each, so that
    load from other processes hits both alike; report the medians in ms and their ratio (GCE / CE)."""
    fns = make_fns()
    for fn in fns.values():          # warm-up
        for _ in range(3):
            fn()
    per = {k: [] for k in fns}
    for _ in range(rounds * reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            per[k].append(time.perf_counter() - t0)
    ms = {k: 1e3 * statistics.median(v) for k, v in per.items()}
    return {"ce_ms": ms["ce"], "gce_ms": ms["gce"], "ratio": ms["gce"] / ms["ce"], "samples": rounds * reps}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="lenet5,debug,small",
                    help="models, comma-separated: lenet5, or a GNConvNet size (debug, small, base)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-logits", type=int, default=10_000)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))
    out = {"benchmark": "gce_step_time", "batch": args.batch, "threads": args.threads, "torch": torch.__version__,
           "step": {}, "loss_only": {}, "calibrator_fit_s": {}}

    for size in args.sizes.split(","):
        def make(size=size):
            fns = {}
            for name, loss_fn in (("ce", CrossEntropyLoss()), ("gce", GCELoss())):
                torch.manual_seed(0)
                model = LeNet5(1, 10) if size == "lenet5" else GNConvNet(1, 10, size)
                fns[name] = _step_timer(model, loss_fn, x, y, torch.optim.SGD(model.parameters(), lr=0.01))
            return fns
        out["step"][size] = compare(make, args.rounds, args.reps)
    z = torch.randn(args.batch, 10)
    out["loss_only"] = compare(lambda: {"ce": _loss_timer(CrossEntropyLoss(), z, y),
                                        "gce": _loss_timer(GCELoss(), z, y)}, args.rounds, 5 * args.reps)

    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(args.n_logits, 10, generator=g)
    labels = torch.multinomial(torch.softmax(logits / 2, 1), 1, generator=g).squeeze(1)
    for name, make_cal in (("ts", TemperatureScaling), ("ts_ece", lambda: TemperatureScaling(objective="ece")),
                           ("ats", lambda: AdaptiveTemperatureScaling(10)),
                           ("ats_lbfgs", lambda: AdaptiveTemperatureScaling(10, solver="lbfgs"))):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            make_cal().fit(logits, labels)
            times.append(time.perf_counter() - t0)
        out["calibrator_fit_s"][name] = statistics.median(times)

    n = args.rounds * args.reps
    print(f"step time, batch {args.batch}, {args.threads} thread(s) (medians of {n} interleaved steps):")
    for size, r in out["step"].items():
        print(f"  {'LeNet-5' if size == 'lenet5' else 'GNConvNet-' + size:16s} CE {r['ce_ms']:7.2f} ms  GCE {r['gce_ms']:7.2f} ms  ratio {r['ratio']:.3f}x "
              f"(target <= 1.05x)")
    r = out["loss_only"]
    print(f"  loss only (fwd+bwd)   CE {r['ce_ms']:7.3f} ms  GCE {r['gce_ms']:7.3f} ms  ratio {r['ratio']:.3f}x")
    f = out["calibrator_fit_s"]
    print(f"fit on {args.n_logits} logits x 10 classes: TS (NLL) {f['ts']:.3f} s, TS (ECE grid) {f['ts_ece']:.3f} s, "
          f"ATS (10 bins, grid) {f['ats']:.3f} s, ATS (L-BFGS, prior) {f['ats_lbfgs']:.3f} s")
    if args.out:
        from tenfold.common.atomic import atomic_write_json

        atomic_write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
