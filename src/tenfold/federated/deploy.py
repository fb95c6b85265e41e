"""Launch a real Flower deployment on this machine: one SuperLink and N SuperNodes as separate processes on
loopback, then submit `deploy/fedinit_app` with `flwr run` and wait for it to finish.

    python -m tenfold.federated.deploy --clients 3 --rounds 4 --out /tmp/fl-deploy [--kill-node-after-round 1]

With `--kill-node-after-round R`, the last SuperNode is killed (SIGKILL, whole process group) once round R has
finished; the ServerApp logs the failed client and completes the run with the others (Flower's fault handling).
Everything (logs, Flower home, history.json, server checkpoint) goes under `--out`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[3] / "deploy" / "fedinit_app"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def _spawn(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    fh = open(log, "w")
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def launch(n_clients: int = 3, rounds: int = 4, out_dir: str | Path = "fl-deploy", *,
           kill_node_after_round: int | None = None, run_config: dict | None = None, timeout_s: float = 900,
           app_dir: str | Path = APP_DIR) -> dict:
    """Start the federation, run the app, tear everything down; returns the ServerApp's history dict.

    Raises RuntimeError (with the log folder) if the run does not finish within `timeout_s`.
    """
    from tenfold.federated.apps import read_history
    from tenfold.federated.config import FLConfig

    if n_clients < 2:
        raise ValueError(f"Invalid n_clients: {n_clients}; expected >= 2")
    if kill_node_after_round is not None and not 1 <= kill_node_after_round < rounds:
        raise ValueError(f"Invalid kill_node_after_round: {kill_node_after_round}; expected 1..{rounds - 1}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("history.json", "server.pt"):
        (out / stale).unlink(missing_ok=True)
    home = out / "flwr-home"
    home.mkdir(exist_ok=True)
    link_port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n')
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "FLWR_TELEMETRY_ENABLED": "0", "TENFOLD_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cfg = {"n_clients": n_clients, "rounds": rounds, "fraction": 1.0, "out_dir": str(out), **(run_config or {})}
    FLConfig.from_record({k: v for k, v in cfg.items() if k != "out_dir"}).validate()  # fail before starting
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_spawn([f"{bindir}/flower-superlink", "--insecure", "--port", str(link_port)],
                            out / "superlink.log", env))
        time.sleep(3)
        for i in range(n_clients):
            procs.append(_spawn([f"{bindir}/flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                                 "--port", str(_free_port()), "--node-config",
                                 f"partition-id={i} num-partitions={n_clients}"], out / f"supernode{i}.log", env))
        overrides = " ".join(f"{k}={_toml_value(v)}" for k, v in cfg.items())
        run = _spawn([f"{bindir}/flwr", "run", str(app_dir), "local", "--stream", "--run-config", overrides],
                     out / "run.log", env)
        procs.append(run)
        deadline, killed = time.time() + timeout_s, False
        while time.time() < deadline:
            hist = read_history(out)
            if hist and hist.get("done"):
                return hist
            if (kill_node_after_round and not killed and hist and hist["round"]
                    and hist["round"][-1] >= kill_node_after_round):
                _kill(procs[n_clients])  # the last SuperNode
                killed = True
            if run.poll() is not None and not (hist and hist.get("done")):
                time.sleep(2)  # the history may land just after `flwr run` returns
                hist = read_history(out)
                if hist and hist.get("done"):
                    return hist
            time.sleep(1)
        raise RuntimeError(f"the deployment did not finish within {timeout_s:.0f} s; logs in {out}")
    finally:
        for p in reversed(procs):
            _kill(p)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--out", default="fl-deploy")
    p.add_argument("--kill-node-after-round", type=int, default=None)
    p.add_argument("--beta", type=float, default=0.1)
    a = p.parse_args(argv)
    hist = launch(a.clients, a.rounds, a.out, kill_node_after_round=a.kill_node_after_round,
                  run_config={"beta": a.beta})
    for r, acc, f in zip(hist["round"], hist["accuracy"], hist["failures"]):
        print(f"round {r}: accuracy {acc if acc is None else round(acc, 2)} %, failed clients {f}")
    print(f"logs and history: {Path(a.out).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
