"""Peak resident memory of this process during a block of work (MiB), plus CUDA peak when used.

Linux lets a process reset its high-water mark (`echo 5 > /proc/self/clear_refs`); where that is not
allowed a sampling thread reads VmRSS every 10 ms instead.
"""

from __future__ import annotations

import threading
from pathlib import Path


def _status_kib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Context manager; after exit, `.peak_mib` is the peak RSS during the block (MiB)."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.peak_mib = float("nan")
        self.cuda_peak_mib: float | None = None

    def __enter__(self):
        self._reset_ok = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._reset_ok = _status_kib("VmHWM") is not None
        except OSError:
            pass
        self._sampled = _status_kib("VmRSS") or 0.0
        self._stop = threading.Event()
        if not self._reset_ok:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        except ImportError:
            pass
        return self

    def _sample(self):
        while not self._stop.wait(self.interval_s):
            self._sampled = max(self._sampled, _status_kib("VmRSS") or 0.0)

    def __exit__(self, *exc):
        self._stop.set()
        if self._reset_ok:
            kib = _status_kib("VmHWM") or float("nan")
        else:
            self._thread.join()
            kib = max(self._sampled, _status_kib("VmRSS") or 0.0)
        self.peak_mib = kib / 1024
        try:
            import torch

            if torch.cuda.is_available():
                self.cuda_peak_mib = torch.cuda.max_memory_allocated() / 2**20
        except ImportError:
            pass
        return False
