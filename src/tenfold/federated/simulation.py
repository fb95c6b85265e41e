"""Run a federated experiment on Flower's simulation engine (Ray backend), in this process."""

from __future__ import annotations

import logging
import os

from tenfold.federated.config import FLConfig


def quiet_flower(level: int = logging.ERROR) -> None:
    """Flower logs every round at INFO and deprecation notices at WARNING; keep errors only (tenfold's own
    logger still reports client failures)."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    for name in ("flwr", "ray"):
        logging.getLogger(name).setLevel(level)


def shutdown_ray() -> None:
    """Stop the Ray runtime this process started, if any (an interrupted simulation leaves it running)."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - best effort while stopping
        pass


def simulate(cfg: FLConfig, *, checkpoint_path=None, on_round=None, verbose: bool = False) -> dict:
    """Run `cfg` with `flwr.simulation.run_simulation` (one virtual SuperNode per client); returns the history.

    Parameters
    ----------
    cfg : FLConfig
        Validated before anything starts.
    checkpoint_path : path or None
        Server checkpoint after every round; an existing one is resumed from. Set `cfg.state_dir` too for an
        exact resume of client state (FedInit's last models, SCAFFOLD's control variates).
    on_round : callable(round, history) or None

    Examples
    --------
    >>> from tenfold.federated.config import FLConfig
    >>> cfg = FLConfig(beta=0.1, n_clients=4, fraction=0.5, rounds=2, n_train=400)
    >>> hist = simulate(cfg)   # doctest: +SKIP
    >>> len(hist["round"])     # doctest: +SKIP
    2
    """
    cfg.validate()
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    if not verbose:
        quiet_flower()
    from flwr.simulation import run_simulation

    from tenfold.federated.fedinit import make_client_app
    from tenfold.federated.server import make_server_app

    import threading

    out: dict = {}
    stop = threading.Event()
    init_args = {"include_dashboard": False, "log_to_driver": verbose}
    if os.environ.get("TENFOLD_RAY_CPUS"):  # cap how many clients train at once (default: all cores)
        init_args["num_cpus"] = int(os.environ["TENFOLD_RAY_CPUS"])
    try:
        run_simulation(
            server_app=make_server_app(cfg, out, checkpoint_path=checkpoint_path, on_round=on_round,
                                       quiet=not verbose, stop=stop),
            client_app=make_client_app(),
            num_supernodes=cfg.n_clients,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                            "init_args": init_args},
            verbose_logging=verbose,
        )
    except KeyboardInterrupt:
        # Flower's server thread outlives run_simulation: make it stop before its next checkpoint, and stop Ray's
        # processes (the thread itself may wait out one round timeout; `tenfold reproduce` runs units in worker
        # processes and ends them at once)
        stop.set()
        shutdown_ray()
        raise
    if "error" in out:
        raise out["error"]
    return out["history"]
