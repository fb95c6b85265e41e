"""Flower simulation overhead: wall time per round on Flower's simulation engine (Ray) vs the same local work in a
plain in-process loop, as a ratio measured in one run; plus Flower's one-off start-up time.

    python benchmarks/fl_overhead.py [--clients 10 20] [--rounds 10]

The plain loop samples the same clients and runs the same `local_train` and averaging; only the transport differs.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from tenfold.federated.config import FLConfig
from tenfold.federated.fedinit import build_model, client_data, local_train
from tenfold.federated.maths import weighted_average
from tenfold.federated.server import initial_model
from tenfold.federated.simulation import simulate


def plain_loop(cfg: FLConfig) -> list[float]:
    """Per-round wall times of an in-process FedAvg with identical local work."""
    w, rng, times = initial_model(cfg), random.Random(cfg.seed), []
    for rnd in range(1, cfg.rounds + 1):
        t = time.perf_counter()
        chosen = sorted(rng.sample(range(cfg.n_clients), cfg.clients_per_round))
        sds, ns = [], []
        for pid in chosen:
            m = build_model(cfg)
            m.load_state_dict(w)
            x, y = client_data(cfg, pid)
            local_train(m, x, y, cfg, rnd, pid)
            sds.append(m.state_dict()); ns.append(len(y))
        w = weighted_average(sds, ns)
        times.append(time.perf_counter() - t)
    return times


def flower(cfg: FLConfig) -> tuple[float, list[float]]:
    stamps = []
    t0 = time.perf_counter()
    simulate(cfg, on_round=lambda r, h: stamps.append(time.perf_counter()))
    return stamps[0] - t0, [b - a for a, b in zip(stamps, stamps[1:])][:-1]  # the last round also evaluates


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, nargs="+", default=[10, 20])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default="fl_overhead.json")
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n in a.clients:
        cfg = FLConfig(n_clients=n, fraction=0.2, rounds=a.rounds, n_train=300 * n, eval_every=10 ** 6)
        plain = plain_loop(cfg)
        startup, rounds = flower(cfg)
        ratio = (sum(rounds) / len(rounds)) / (sum(plain[1:]) / len(plain[1:]))
        rows.append({"clients": n, "per_round_plain_s": sum(plain[1:]) / len(plain[1:]),
                     "per_round_flower_s": sum(rounds) / len(rounds), "ratio": ratio, "flower_startup_s": startup})
        print(json.dumps(rows[-1]))
    with open(a.out, "w") as fh:
        json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
