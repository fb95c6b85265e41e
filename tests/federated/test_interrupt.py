"""Issue 21: Ctrl-C (SIGINT) or SIGTERM stops a Flower reproduction within seconds, leaves no process behind, keeps
the interrupted unit's last good checkpoint, and the rerun resumes from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")
psutil = pytest.importorskip("psutil")

ROUNDS = 200  # in-process smoke rounds take ~0.1-0.3 s: enough that the run cannot finish before the signal
CMD = [sys.executable, "-m", "tenfold", "reproduce", "fedinit", "--mode", "smoke", "--set", f"rounds={ROUNDS}",
       "--arms", "fedavg", "--no-progress", "--no-report"]


def _round_of(ckpt: Path) -> int | None:
    from tenfold.common.checkpoint import load_checkpoint

    try:
        ck = load_checkpoint(ckpt, restore_rng=False)
    except Exception:  # noqa: BLE001 - being replaced at this moment
        return None
    return None if ck is None else ck["round"]


def _alive(procs) -> list:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _interrupt_mid_run(out: Path, sig: int) -> tuple[int, float, list, int, Path, str]:
    """Start the reproduction, wait for round 2's checkpoint, send `sig` to the command (as a terminal sends Ctrl-C to
    its foreground process); returns (exit status, seconds to exit, processes left, round seen, checkpoint, output)."""
    # SIGINT back to its default in the command, as in a terminal's foreground job: a test run started in the
    # background of a non-interactive shell (nohup, `&`, some CI runners) inherits SIGINT as ignored, and Python
    # then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([*CMD, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        seen, ckpt = None, None
        while time.monotonic() < deadline and proc.poll() is None:
            found = sorted(out.glob("fedinit/work/*/server.pt"))
            if found and (r := _round_of(found[0])) is not None and r >= 2:
                seen, ckpt = r, found[0]
                break
            time.sleep(0.2)
        assert seen is not None, f"no round-2 checkpoint appeared; output:\n{proc.communicate(timeout=60)[0]}"
        assert seen < ROUNDS, "the unit finished before it could be interrupted"
        family = psutil.Process(proc.pid).children(recursive=True)  # the unit worker (the engine runs in process)
        assert family, "the unit ran in no worker process"
        t0 = time.monotonic()
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0]
        took = time.monotonic() - t0
        time.sleep(1.0)
        return proc.returncode, took, _alive(family), seen, ckpt, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_interrupting_a_flower_reproduction_stops_keeps_and_resumes(tmp_path, sig):
    from tenfold.common.checkpoint import load_checkpoint

    out = tmp_path / "r"
    code, took, left, seen, ckpt, output = _interrupt_mid_run(out, sig)
    leftovers = [f"{p.pid} {p.name()}" for p in left]
    for p in left:  # clean up before failing
        p.kill()
    assert code == 128 + sig, f"exit status {code}; output:\n{output}"
    assert took < 20, f"stopping took {took:.1f} s"
    assert not leftovers, f"processes outlived the command: {leftovers}"

    # the checkpoint holds the last finished round, with every sampled client answering (no empty rounds)
    ck = load_checkpoint(ckpt, restore_rng=False)
    assert seen <= ck["round"] < ROUNDS
    assert ck["history"]["round"] == list(range(1, ck["round"] + 1))
    assert sum(ck["history"]["failures"]) == 0
    assert not (out / "fedinit" / "units").exists() or not any((out / "fedinit" / "units").glob("fedavg__*"))

    # the rerun resumes that unit from the checkpoint and finishes it
    done = subprocess.run([*CMD, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    res = json.loads((out / "fedinit" / "results.json").read_text())
    assert res["status"] == "partial"  # --arms fedavg: the other arms are still to do
    fedavg = next(a for a in res["arms"] if a["name"] == "fedavg")
    assert not fedavg["notes"], fedavg["notes"]  # no client failures in any round
    assert 0 < fedavg["per_seed"]["0"]["final_acc"] <= 100
    assert not any((out / "fedinit" / "work").glob("*/server.pt"))  # finished units' checkpoints are removed
