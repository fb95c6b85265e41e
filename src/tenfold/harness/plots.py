"""Default plots every reproduction gets: one per curve name (mean over seeds, min-max band) and a
bar chart of each claim's metric per arm (mean +- std). Experiments add their own through `Experiment.plot`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

ROLE_STYLE = {"method": "-", "baseline": "--", "ablation": ":", "reference": "-."}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Save a figure as PNG (atomically enough: PNGs are regenerated from results.json on demand)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_curves(results: dict, out: Path) -> list[Path]:
    plt = _plt()
    roles = {a["name"]: a["role"] for a in results["arms"]}
    labels = {a["name"]: a["label"] for a in results["arms"]}
    by_name: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for c in results["curves"]:
        by_name[c["name"]][c["arm"]].append(c)
    paths = []
    for name, arms in by_name.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for arm, curves in arms.items():
            n = min(len(c["y"]) for c in curves)
            if n == 0:
                continue
            x = np.asarray(curves[0]["x"][:n], dtype=float)
            ys = np.asarray([np.asarray(c["y"][:n], dtype=float) for c in curves])
            line, = ax.plot(x, np.nanmean(ys, 0), ROLE_STYLE.get(roles.get(arm), "-"), label=labels.get(arm, arm))
            if len(ys) > 1:
                ax.fill_between(x, np.nanmin(ys, 0), np.nanmax(ys, 0), color=line.get_color(), alpha=0.15)
        first = next(iter(arms.values()))[0]
        ax.set_xlabel(first.get("xlabel", "step"))
        ax.set_ylabel(first.get("ylabel", name))
        if first.get("logy"):
            ax.set_yscale("log")
        ax.set_title(f"{results['method']}: {name} ({results['mode']}, mean and range over seeds)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        paths.append(save(fig, out / f"curve_{name}.png"))
    return paths


def plot_claim_metrics(results: dict, out: Path) -> list[Path]:
    plt = _plt()
    metrics = list(dict.fromkeys(c["metric"] for c in results["claims"]))
    units = {m["name"]: m["unit"] for m in results["metrics"]}
    arms = [a for a in results["arms"] if a["mean"]]
    if not metrics or not arms:
        return []
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1, 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        rows = [a for a in arms if m in a["mean"]]
        ax.bar(range(len(rows)), [a["mean"][m] for a in rows], yerr=[a["std"][m] for a in rows],
               color=["C0" if a["role"] == "method" else "C7" for a in rows], capsize=3)
        ax.set_xticks(range(len(rows)), [a["label"] for a in rows], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{m} [{units.get(m, '')}]", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return [save(fig, out / "claim_metrics.png")]


def default_plots(results: dict, out: Path) -> list[Path]:
    return plot_curves(results, out) + plot_claim_metrics(results, out)
