"""The environment a result was measured in: versions, threads, device, CPU, git commit."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
import sys
from pathlib import Path

import tenfold

KEY_PACKAGES = ("torch", "numpy", "scikit-learn", "transformers", "peft", "trl", "flwr", "torchmetrics", "scipy")


def _version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """HEAD of the checkout tenfold is imported from (None outside git); '+dirty' if it has changes."""
    root = Path(tenfold.__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str = "cpu", threads: int | None = None, workers: int | None = None) -> dict:
    """The environment block of results.json; `threads` is the per-unit thread count the runner fixed (None: this
    process's torch setting), `workers` the number of worker processes (0: units ran in the runner's process)."""
    import torch

    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads or torch.get_num_threads(),
        "device": device,
        "tenfold": tenfold.__version__,
        "git_commit": git_commit(),
        "packages": {p: v for p in KEY_PACKAGES if (v := _version(p))},
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if workers is not None:
        env["workers"] = workers
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env
