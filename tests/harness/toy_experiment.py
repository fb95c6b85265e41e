"""A test-only toy experiment: logistic regression on sklearn digits, lr 0.5 vs lr 0.01 at equal steps.

It exercises every harness feature (arms, claims, curves, an extra plot, mid-unit checkpoints) in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.config import field
from tenfold.harness import Arm, Claim, Experiment, Metric, UnitResult


@dataclass
class ToyConfig:
    steps: int = field(60, help="SGD steps per unit")
    checkpoint_every: int = field(20, help="steps between mid-unit checkpoints")


def _arms(cfg):
    return [Arm("fast", "method", "lr 0.5", {"lr": 0.5}), Arm("slow", "baseline", "lr 0.01", {"lr": 0.01})]


def _run(arm, seed, cfg, ctx):
    from tenfold.data import digits

    x, y = digits()
    x = torch.tensor(x.reshape(len(x), -1) / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    model = torch.nn.Linear(64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=arm.params["lr"])
    start, losses = 0, []
    ck = load_checkpoint(ctx.checkpoint_path)
    if ck is not None:
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["optimizer"])
        start, losses = ck["step"], ck["losses"]
    for step in ctx.progress(range(start, cfg.steps), desc="steps"):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
        if (step + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(ctx.checkpoint_path, model=model.state_dict(), optimizer=opt.state_dict(),
                            step=step + 1, losses=losses)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    return UnitResult(metrics={"accuracy": 100 * acc, "final_loss": losses[-1]},
                      curves={"loss": {"x": list(range(1, len(losses) + 1)), "y": losses, "xlabel": "step",
                                       "ylabel": "train loss"}},
                      extra={"weight_norm": float(model.weight.detach().norm())})


def _plot(results, out: Path):
    from tenfold.harness.plots import _plt, save

    plt = _plt()
    fig, ax = plt.subplots()
    for a in results["arms"]:
        ax.bar(a["label"], np.mean([e["weight_norm"] for e in a["extra"].values()]))
    return [save(fig, out / "weight_norm.png")]


TOY = Experiment(
    name="toy",
    config_cls=ToyConfig,
    modes={"smoke": {"steps": 20}, "quick": {"steps": 60}, "full": {"steps": 200}},
    seeds={"smoke": 1, "quick": 3, "full": 3},
    arms=_arms,
    metrics=[Metric("accuracy", "%", True, "train accuracy"), Metric("final_loss", "nats", False)],
    claims=[Claim("faster", "A larger step size lowers the loss faster at equal steps (toy).", "final_loss",
                  "fast", "slow", "lower"),
            Claim("acc", "The larger step size is at least as accurate, within 1 point (toy).", "accuracy",
                  "fast", "slow", "higher", margin=1.0)],
    run_unit=_run,
    plot=_plot,
    summary="Toy experiment used by the harness tests.",
)
PAPER = {"number": 0, "title": "Toy", "arxiv": "0000.00000"}


def crash_unit(arm, seed, cfg, ctx):
    """A unit that kills its own process (as a segmentation fault would): the runner must say so, not hang."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def failing_unit(arm, seed, cfg, ctx):
    """A unit that raises: the worker sends the traceback back to the runner."""
    raise ValueError(f"toy failure in {arm.name}")
