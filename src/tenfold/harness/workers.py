"""Unit workers: processes that run (arm, seed) units with a fixed thread count, and that an interrupt can stop
at once, together with everything they started.

Why processes. A unit that runs Flower's simulation engine starts a server thread and Ray's daemons; Ctrl-C in
the process that runs them leaves the server thread looping over dead clients (and writing their empty rounds
into the unit's checkpoint) and Ray's processes running. A worker is started with `spawn` and calls
`os.setsid()`, so the terminal's SIGINT reaches only the parent, and the parent can stop the worker's whole
process group (Ray's daemons and workers included) with one signal. Units checkpoint atomically, so a worker
killed mid-round leaves its unit's checkpoint as it was after the last finished round, and a rerun resumes there.

Why a fixed thread count. Intra-op reductions split their work by the number of threads, so a unit's numbers
depend on it; every worker runs with exactly `threads` threads (torch, OpenMP, OpenBLAS, MKL, numba), whatever the
machine's core count or the caller's environment, and the unit records it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections import deque
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable

from tenfold.common.seeding import THREAD_VARIABLES


class UnitFailed(RuntimeError):
    """A unit raised inside its worker; the message carries the worker's traceback."""


class WorkerDied(RuntimeError):
    """A worker process ended without answering (killed, out of memory, segmentation fault)."""


def _worker_main(conn, threads: int) -> None:
    os.setsid()  # own session and process group: the terminal's Ctrl-C goes to the parent only
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tenfold.common.seeding import configure_threads

    configure_threads(threads)
    from tenfold.harness.runner import _run_unit

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        try:
            conn.send(("ok", _run_unit(**task)))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


class WorkerPool:
    """`n` spawned worker processes, each with `threads` threads; `run` hands out units and collects them.

    Use as a context manager: leaving it normally lets the workers finish and exit; leaving it by an exception
    (KeyboardInterrupt included) kills every worker and stops the rest of its process group (see `kill`).
    """

    def __init__(self, n: int, threads: int, grace_s: float = 3.0):
        if n < 1 or threads < 1:
            raise ValueError(f"WorkerPool needs n >= 1 and threads >= 1, got n={n}, threads={threads}")
        self.threads, self.grace_s = threads, grace_s
        ctx = mp.get_context("spawn")
        saved = {v: os.environ.get(v) for v in THREAD_VARIABLES}
        os.environ.update({v: str(threads) for v in THREAD_VARIABLES})  # read by the child's libraries at start
        self.workers = []
        try:
            for i in range(n):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(child, threads), name=f"tenfold-unit-worker-{i}")
                proc.start()
                child.close()
                self.workers.append((proc, parent))
        except BaseException:  # an interrupt while spawning: stop the workers already started
            self.kill()
            raise
        finally:
            for v, val in saved.items():
                if val is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = val

    def run(self, tasks: Iterable[tuple[Any, dict]], on_done: Callable[[Any, dict], None],
            on_start: Callable[[Any], None] | None = None) -> None:
        """Run each (key, `_run_unit` kwargs) task on a free worker; `on_done(key, record)` in the parent as each
        finishes (in finishing order). A failing unit raises `UnitFailed` (the others are stopped)."""
        queue = deque(tasks)
        idle = list(self.workers)
        busy: dict = {}  # conn -> (proc, key)
        while queue or busy:
            while idle and queue:
                proc, conn = idle.pop(0)
                key, task = queue.popleft()
                if on_start:
                    on_start(key)
                conn.send(task)
                busy[conn] = (proc, key)
            for conn in wait(list(busy)):
                proc, key = busy.pop(conn)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    proc.join(timeout=1)
                    code = proc.exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                    raise WorkerDied(f"the worker running {key} ended without a result ({how})") from None
                if msg[0] == "error":
                    raise UnitFailed(f"{key} failed: {msg[1]}\n--- worker traceback ---\n{msg[2]}")
                on_done(key, msg[1])
                idle.append((proc, conn))

    def close(self) -> None:
        """Ask idle workers to exit, then make sure nothing they started is left."""
        for proc, conn in self.workers:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 30
        for proc, _ in self.workers:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
        self.kill()  # anything left in their process groups (a Ray daemon that outlived its driver)

    def kill(self) -> None:
        """Stop every worker's process group: SIGKILL to the workers themselves, then SIGTERM to the rest of their
        groups, then SIGKILL to what is left after `grace_s`.

        The worker goes first and without warning. `ray.init` installs a SIGTERM handler in the worker (it raises
        SystemExit in the main thread only), so a group-wide SIGTERM would leave Flower's server thread running for
        a moment after its clients died: long enough to record their failures as a round and checkpoint it over the
        last good one. Killed outright, the worker writes nothing more (its checkpoints are written atomically)."""
        for proc, _ in self.workers:
            if proc.pid and proc.is_alive():
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        groups = [proc.pid for proc, _ in self.workers if proc.pid]
        for sig, wait_s in ((signal.SIGTERM, self.grace_s), (signal.SIGKILL, 0)):
            alive = [g for g in groups if _signal_group(g, sig)]
            if not alive:
                break
            deadline = time.monotonic() + wait_s
            while wait_s and time.monotonic() < deadline:
                for proc, _ in self.workers:
                    proc.is_alive()  # reaps a finished worker, whose zombie would still count as a group member
                if not any(_group_alive(g) for g in alive):
                    break
                time.sleep(0.05)
        for proc, conn in self.workers:
            if proc.is_alive():  # not yet in its own process group (still starting), or ignoring SIGTERM
                proc.kill()
            proc.join(timeout=1)
            conn.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
