"""Reproduction of FedInit (paper 5): relaxed initialisation on Flower, against FedAvg and SCAFFOLD.

Claim (Sun, Shen, Tao, NeurIPS 2023, arXiv 2306.05706, abstract): starting each local stage from
w + beta (w - w_i^last) improves generalisation "without any additional training or communication costs", can be
"incorporated into several current advanced algorithms", and works by reducing local inconsistency.

Set-up at our scale: Fashion-MNIST (a class-stratified subset), the GroupNorm CNN ("debug" width), 20 clients with
Dir(alpha=0.1) label skew, 10% participation (2 clients per round), 2 local epochs of SGD (lr 0.1, decay 0.998,
weight decay 1e-3, clip 10: FL-Simulator's defaults), beta = 0.1 (the paper's default), all on Flower's simulation
engine. The paper uses CIFAR-10/100 with ResNet-18-GN, 100 clients and 1000 rounds.

    tenfold reproduce fedinit --mode quick   # 4 arms x 3 seeds, 10 clients (2 a round), 3000 images, 10 rounds
    tenfold reproduce fedinit --mode full    # + FedProx, FedAdam, beta sweep, alpha 0.6 and IID controls, 60 rounds

Quick mode is a small end-to-end demonstration of the same comparison (all three claims judged, labelled "quick"),
not the evidence (that is the full run): 4 clients with Dir(0.1), 2 a round (so each client is sampled two or three
times and FedInit's relaxed start is exercised), 300 images per client as above, 5 rounds, 1000 test images
evaluated every round (`final_acc` is then the last round's). Runtime: measured in the timed `make reproduce`
(2 threads, idle machine), each unit costs ~9 s of Ray/Flower start-up (one simulation per unit: the two Ray actor
processes import torch and Flower each time) plus ~1.6 s per round, so the 12 units take about 200 s, over the
150 s quick budget but within the 1.5x the conformance test allows; only a library change (Ray started once, or an
in-process backend; issue 26) can bring it under. The earlier 10-client, 10-round quick config took ~27 s a unit.

Metrics: `final_acc` = mean test accuracy (%) over the evaluations in the last 20% of rounds (a single last-round
value is very noisy under Dir(0.1) with 2 clients a round); `inconsistency` = mean over the second half of the rounds
of the dispersion of client uploads around their mean (squared L2 over all weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.common.config import field
from tenfold.harness import Arm, Claim, Experiment, Metric, UnitResult


@dataclass
class FedInitExperimentConfig:
    rounds: int = field(30, help="communication rounds per run")
    n_clients: int = field(20, help="clients (virtual SuperNodes)")
    fraction: float = field(0.1, help="participation per round")
    local_epochs: int = field(2, help="local epochs per round")
    n_train: int = field(6000, help="Fashion-MNIST training images shared among clients")
    alpha: float = field(0.1, help="Dirichlet label skew of the main comparison")
    beta: float = field(0.1, help="FedInit beta in the 'with FedInit' arms (paper default)")
    eval_every: int = field(2, help="rounds between centralised evaluations")
    n_test: int = field(2000, help="test images per evaluation")
    model_size: str = field("debug", help="GroupNorm CNN width: debug | small | base")
    extended: bool = field(False, help="also FedProx, FedAdam, the beta sweep and the alpha 0.6 / IID controls")
    beta_sweep: tuple[float, ...] = field((0.05, 0.2), help="extra beta values for FedAvg+FedInit (extended only)")


def _arms(cfg: FedInitExperimentConfig) -> list[Arm]:
    arms = [
        Arm("fedavg", "baseline", "FedAvg", {"algorithm": "fedavg", "beta": 0.0}),
        Arm("fedinit", "method", f"FedAvg + FedInit (beta {cfg.beta:g})", {"algorithm": "fedavg", "beta": cfg.beta}),
        Arm("scaffold", "baseline", "SCAFFOLD", {"algorithm": "scaffold", "beta": 0.0}),
        Arm("scaffold_fedinit", "method", "SCAFFOLD + FedInit", {"algorithm": "scaffold", "beta": cfg.beta}),
    ]
    if cfg.extended:
        for alg, label in (("fedprox", "FedProx"), ("fedadam", "FedAdam")):
            arms += [Arm(alg, "baseline", label, {"algorithm": alg, "beta": 0.0}),
                     Arm(f"{alg}_fedinit", "method", f"{label} + FedInit", {"algorithm": alg, "beta": cfg.beta})]
        for b in cfg.beta_sweep:
            arms.append(Arm(f"fedinit_beta{str(b).replace('.', 'p')}", "ablation", f"FedAvg + FedInit (beta {b:g})",
                            {"algorithm": "fedavg", "beta": b}))
        for part, alpha, tag in (("dirichlet", 0.6, "a0p6"), ("iid", 1.0, "iid")):
            arms += [Arm(f"fedavg_{tag}", "reference", f"FedAvg, {tag}", {"algorithm": "fedavg", "beta": 0.0,
                                                                         "partition": part, "alpha": alpha}),
                     Arm(f"fedinit_{tag}", "reference", f"FedAvg + FedInit, {tag}",
                         {"algorithm": "fedavg", "beta": cfg.beta, "partition": part, "alpha": alpha})]
    return arms


def _fl_config(arm: Arm, seed: int, cfg: FedInitExperimentConfig, work: Path):
    from tenfold.federated.config import FLConfig

    p = arm.params
    return FLConfig(algorithm=p["algorithm"], beta=p["beta"], partition=p.get("partition", "dirichlet"),
                    alpha=p.get("alpha", cfg.alpha), n_clients=cfg.n_clients, fraction=cfg.fraction,
                    rounds=cfg.rounds, local_epochs=cfg.local_epochs, n_train=cfg.n_train, data_seed=seed,
                    seed=seed, eval_every=cfg.eval_every, n_test=cfg.n_test, model_size=cfg.model_size,
                    state_dir=str(work / "clients")).validate()


def _run(arm: Arm, seed: int, cfg: FedInitExperimentConfig, ctx) -> UnitResult:
    import time

    from tenfold.federated.fedinit import label_histograms
    from tenfold.federated.simulation import simulate

    fl = _fl_config(arm, seed, cfg, ctx.work_dir)
    bar = ctx.progress(total=fl.rounds, desc=f"{arm.name} rounds")
    times = []

    def on_round(rnd, hist):
        times.append(time.perf_counter())
        bar.n = rnd
        bar.refresh()

    t0 = time.perf_counter()
    hist = simulate(fl, checkpoint_path=ctx.work_dir / "server.pt", on_round=on_round)
    bar.close()
    evals = [(r, a) for r, a in zip(hist["round"], hist["accuracy"]) if a is not None]
    tail = [a for r, a in evals if r > 0.8 * fl.rounds] or [evals[-1][1]]
    disp = [d for r, d in zip(hist["round"], hist["dispersion"]) if r > fl.rounds / 2 and math.isfinite(d)]
    per_round = (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else float("nan")
    if sum(hist["failures"]):
        ctx.notes.append(f"{arm.name} seed {seed}: {sum(hist['failures'])} client failures")
    return UnitResult(
        metrics={"final_acc": float(np.mean(tail)), "inconsistency": float(np.mean(disp)) if disp else float("nan"),
                 "drift": float(np.nanmean(hist["drift"])), "round_time": per_round,
                 "startup_time": (times[0] - t0) if times else float("nan")},
        curves={"test_accuracy": {"x": [r for r, _ in evals], "y": [a for _, a in evals], "xlabel": "round",
                                  "ylabel": "test accuracy [%]"},
                "inconsistency": {"x": hist["round"], "y": [d if math.isfinite(d) else None for d in hist["dispersion"]],
                                  "xlabel": "round", "ylabel": "dispersion of client uploads [sq. L2]", "logy": True}},
        extra={"label_histogram": label_histograms(fl).tolist()} if seed == 0 and arm.name == "fedavg" else {},
    )


def _plot(results: dict, out: Path) -> list[Path]:
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    paths = []
    hist = next((a["extra"].get("0", {}).get("label_histogram") for a in results["arms"] if a["name"] == "fedavg"), None)
    if hist:
        h = np.asarray(hist)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        im = ax.imshow(h.T, aspect="auto", cmap="viridis")
        ax.set_xlabel("client"); ax.set_ylabel("class"); fig.colorbar(im, label="samples")
        ax.set_title(f"label histogram per client (seed 0, Dir({results['config']['alpha']:g}))", fontsize=9)
        paths.append(save(fig, out / "client_label_histogram.png"))
    sweep = [a for a in results["arms"] if a["params"].get("algorithm") == "fedavg" and "partition" not in a["params"]
             and a["mean"].get("final_acc") is not None]
    if len(sweep) > 2:
        sweep.sort(key=lambda a: a["params"]["beta"])
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar([a["params"]["beta"] for a in sweep], [a["mean"]["final_acc"] for a in sweep],
                    yerr=[a["std"]["final_acc"] for a in sweep], marker="o", capsize=3)
        ax.set_xlabel("beta"); ax.set_ylabel("final test accuracy [%]"); ax.grid(alpha=0.3)
        ax.set_title("FedAvg + FedInit: sensitivity to beta", fontsize=9)
        paths.append(save(fig, out / "beta_sensitivity.png"))
    return paths


EXPERIMENT = Experiment(
    name="fedinit",
    config_cls=FedInitExperimentConfig,
    modes={"smoke": {"rounds": 2, "n_clients": 4, "fraction": 0.5, "n_train": 400, "n_test": 200, "local_epochs": 1},
           "quick": {"n_clients": 4, "fraction": 0.5, "rounds": 5, "n_train": 1200, "n_test": 1000, "eval_every": 1},
           "full": {"rounds": 60, "extended": True}},
    seeds={"smoke": 1, "quick": 3, "full": 3},
    # issue 20: the most allowed; the 12 Ray start-ups (~9 s each) put quick mode over it (see the docstring)
    budget_s={"quick": 150.0},
    arms=_arms,
    metrics=[Metric("final_acc", "%", True, "test accuracy, mean of the evaluations in the last 20% of rounds"),
             Metric("inconsistency", "sq. L2", False, "dispersion of client uploads around their mean, 2nd half"),
             Metric("drift", "sq. L2", False, "mean ||w_i^K - w^t||^2 of sampled clients"),
             Metric("round_time", "s", False, "wall time per round in Flower's simulation (after start-up)"),
             Metric("startup_time", "s", False, "Flower/Ray start-up until the first round finished")],
    claims=[
        Claim("a_fedavg", "FedInit improves FedAvg's test accuracy under strong label skew (Dir 0.1) with no extra "
              "communication (abstract; FL-Simulator protocol)", "final_acc", "fedinit", "fedavg", "higher"),
        Claim("b_plugin", "FedInit can be incorporated into other algorithms and improves them (abstract); checked "
              "on SCAFFOLD", "final_acc", "scaffold_fedinit", "scaffold", "higher"),
        Claim("c_consistency", "FedInit reduces local inconsistency, the divergence of client models (abstract, "
              "excess-risk analysis)", "inconsistency", "fedinit", "fedavg", "lower"),
    ],
    run_unit=_run,
    plot=_plot,
    summary="Fashion-MNIST subset, GroupNorm CNN (debug width), 20 clients (quick: 4) with Dir(0.1) label skew, 2 "
            "clients per round, 2 local epochs, FL-Simulator's local SGD settings, beta 0.1; run on Flower's simulation engine "
            "(Ray). The paper uses CIFAR-10/100, ResNet-18-GN, 100 clients and 1000 rounds, so absolute accuracies "
            "are not comparable; only the direction of each difference is checked.",
)
