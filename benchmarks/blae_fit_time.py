"""Benchmark: BLAE's and the paper's baselines' fit time vs the plain autoencoder on the same data, sizes and epochs.

The extra cost of BLAE is the injectivity loss (pairwise distances within a batch) and the decoder Jacobian
(forward-mode, on a `jac_fraction` subsample of each batch). The issue's target is a ratio <= 3x; the knob is
`jac_fraction` (the reference code uses 0.3). The baselines (SPAE, TopoAE, GRAE, IRAE, GGAE) run with their
defaults, to show what each regulariser costs on the same footing.

Usage:
    TENFOLD_THREADS=1 python benchmarks/blae_fit_time.py [--n 1500] [--epochs 50] [--repeats 3]
        [--jac-fractions 0.1,0.3,1.0] [--baselines spae,topoae,grae,irae,ggae] [--out results/bench/blae_fit_time.json]

Output: a table on stdout and a JSON file with the median wall and process-CPU fit seconds per arm and their
ratios to the AE (the CPU ratio is the one to trust on a shared machine; both include BLAE's geodesic matrix).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1500, help="swiss-roll training points (reference: 1500)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=500, help="reference: N_train / 3")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--jac-fractions", default="0.1,0.3,1.0")
    p.add_argument("--baselines", default="spae,topoae,grae,irae,ggae",
                   help="the paper's baselines to time beside AE and BLAE (comma-separated; empty for none)")
    p.add_argument("--out", default="results/bench/blae_fit_time.json")
    args = p.parse_args(argv)

    import torch

    from tenfold.common.seeding import configure_threads
    from tenfold import manifold
    from tenfold.common.errors import UserError
    from tenfold.data import reference_swiss_roll
    from tenfold.manifold import AE, BLAE, geodesic_distances

    classes = {"spae": "SPAE", "topoae": "TopoAE", "grae": "GRAE", "irae": "IRAE", "ggae": "GGAE"}
    baselines = [b for b in args.baselines.split(",") if b]
    for b in baselines:
        if b not in classes:
            raise UserError(f"Invalid --baselines: {b!r}; expected a comma-separated subset of {', '.join(classes)}")
    configure_threads()  # $TENFOLD_THREADS or all cores
    X, _ = reference_swiss_roll(args.n, seed=0)
    common = dict(epochs=args.epochs, hidden=args.hidden, batch_size=args.batch_size, validation_fraction=0.0,
                  random_state=0)
    arms = {"ae": lambda: AE(**common)}
    for f in [float(v) for v in args.jac_fractions.split(",")]:
        arms[f"blae_jac{f:g}"] = lambda f=f: BLAE(jac_fraction=f, **common)
    arms["blae_nobilip"] = lambda: BLAE(lam_bilip=0.0, **common)
    for b in baselines:
        arms[b] = lambda b=b: getattr(manifold, classes[b])(**common)

    def timed(make):  # (wall, process CPU) seconds; CPU time is robust to other jobs on a shared machine
        t0, c0 = time.perf_counter(), time.process_time()
        make().fit(X)
        return time.perf_counter() - t0, time.process_time() - c0

    t0 = time.perf_counter()
    geodesic_distances(X, 5)
    geo_s = time.perf_counter() - t0
    times = {name: [] for name in arms}
    for _ in range(args.repeats):  # interleave arms so that load changes hit all of them alike
        for name, make in arms.items():
            times[name].append(timed(make))
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    rows = [{"arm": k, "median_fit_s": wall[k], "ratio_vs_ae": wall[k] / wall["ae"], "median_cpu_s": cpu[k],
             "cpu_ratio_vs_ae": cpu[k] / cpu["ae"], "runs_wall_cpu_s": times[k]} for k in arms]
    print(f"swiss roll n={args.n}, epochs={args.epochs}, hidden={args.hidden}, batch={args.batch_size}, "
          f"threads={torch.get_num_threads()}; geodesic matrix (included in BLAE fits) {geo_s:.2f}s")
    print(f"{'arm':16s} {'wall [s]':>9s} {'ratio':>6s} {'CPU [s]':>9s} {'ratio':>6s}   (medians; ratio vs AE)")
    for r in rows:
        print(f"{r['arm']:16s} {r['median_fit_s']:9.2f} {r['ratio_vs_ae']:6.2f} {r['median_cpu_s']:9.2f} "
              f"{r['cpu_ratio_vs_ae']:6.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "blae_fit_time", "config": vars(args), "geodesic_s": geo_s,
                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
