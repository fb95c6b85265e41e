"""FL-Simulator's round protocol on any Flower grid: Bernoulli participation and a checkpointed loop over a
Flower `Strategy`'s hooks.

Flower's `Strategy.start` samples a fixed number of nodes per round with the global `random` module and cannot
checkpoint. `run_sampled_rounds` calls the same hooks (`configure_train`, `aggregate_train`) itself, as
`tenfold.federated.server.run_rounds` does, but with FL-Simulator's participation rule (each client joins
independently, `bernoulli_sample`), replies ordered by partition id (so aggregation sums in a fixed order and a run
repeats bit for bit on any engine), an optional server-side evaluation callback, and a checkpoint every k rounds
that also holds the strategy's cross-round state and, on an `InProcessGrid`, every node's `context.state` (exact
resume). It runs on `tenfold.federated.inprocess.InProcessGrid` and on the grid Flower hands a `ServerApp` on the
simulation engine or in a deployment; nodes are mapped to partition ids by one QUERY message each, so the client
app needs a query handler that replies with the metric "partition-id".

Reference: woodenchild95/FL-Simulator@502bec6, `server/server.py` (`_activate_clients_`, the round loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.common.errors import UserError

log = logging.getLogger("tenfold.federated")


def bernoulli_sample(n_clients: int, fraction: float, seed: int, server_round: int) -> list[int]:
    """FL-Simulator's participation: each of `n_clients` joins round `server_round` (1-based) with probability
    `fraction`, independently; drawn with ``np.random.seed(t + seed + inc)``, t = server_round - 1, and redrawn with
    inc + 1 while nobody joins (`server/server.py`, `_activate_clients_`). Returns the sorted client indices.

    Examples
    --------
    >>> bernoulli_sample(10, 0.3, seed=0, server_round=1)  # seed 0 draws nobody: redrawn with seed 1
    [2, 4, 5, 6]
    """
    if not 0.0 < fraction <= 1.0:
        raise UserError(f"Invalid fraction: {fraction}; expected 0 < fraction <= 1")
    if n_clients < 1:
        raise UserError(f"Invalid n_clients: {n_clients}; expected >= 1")
    inc = 0
    while True:
        # RandomState(s).uniform draws the same numbers as np.random.seed(s); np.random.uniform, without touching
        # the global RNG
        u = np.random.RandomState(server_round - 1 + seed + inc).uniform(size=n_clients)
        chosen = np.flatnonzero(u <= fraction)
        inc += 1
        if len(chosen):
            return chosen.tolist()


def partition_map(grid, n_clients: int, *, timeout: float = 120.0) -> dict[int, int]:
    """node id -> partition id of every connected node, asked once with a QUERY message (waits up to `timeout`
    seconds for `n_clients` nodes to connect)."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    deadline = time.time() + timeout
    while len(list(grid.get_node_ids())) < n_clients and time.time() < deadline:
        time.sleep(0.5)
    nodes = sorted(grid.get_node_ids())
    msgs = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.QUERY)
            for n in nodes]
    out = {}
    for m in grid.send_and_receive(msgs, timeout=timeout):
        if not m.has_error():
            out[m.metadata.src_node_id] = int(next(iter(m.content.metric_records.values()))["partition-id"])
    if sorted(out.values()) != list(range(n_clients)):
        raise RuntimeError(f"partition ids {sorted(out.values())} answered; expected 0..{n_clients - 1} (a missing "
                           "node, or a client app without a query handler replying 'partition-id'?)")
    return out


class GridView:
    """The grid as a strategy's sampler sees it: only the nodes chosen for this round (shared with the FLConfig
    server loop)."""

    def __init__(self, grid, node_ids):
        self._grid, self._ids = grid, list(node_ids)

    def get_node_ids(self):
        return list(self._ids)

    def __getattr__(self, name):
        return getattr(self._grid, name)


def strategy_state(strategy) -> dict:
    """Cross-round server state: `FedInit`'s w^0 and seen nodes, and the wrapped strategy's (SCAFFOLD's c,
    FedAdam's moments; `tenfold.federated.strategies.strategy_state`)."""
    from tenfold.federated.flower import FedInit
    from tenfold.federated.strategies import strategy_state as inner_state

    if not isinstance(strategy, FedInit):
        return {"inner": inner_state(strategy)}
    w0 = strategy.initial_arrays
    return {"inner": inner_state(strategy.strategy), "seen": sorted(strategy.seen_nodes),
            "initial": None if w0 is None else w0.to_torch_state_dict()}


def load_strategy_state(strategy, state: Mapping) -> None:
    from flwr.app import ArrayRecord

    from tenfold.federated.flower import FedInit
    from tenfold.federated.strategies import load_strategy_state as load_inner

    if isinstance(strategy, FedInit):
        load_inner(strategy.strategy, state["inner"])
        strategy.seen_nodes = set(state["seen"])
        strategy.initial_arrays = None if state["initial"] is None else ArrayRecord(dict(state["initial"]))
    else:
        load_inner(strategy, state["inner"])


def run_sampled_rounds(grid, strategy, initial, *, n_clients: int, rounds: int, fraction: float, seed: int,
                       train_config: Mapping | None = None,
                       evaluate: Callable[[int, object], dict | None] | None = None,
                       checkpoint_path: str | Path | None = None, checkpoint_every: int = 1,
                       meta: Mapping | None = None, on_round: Callable[[int, dict], None] | None = None,
                       timeout: float | None = None) -> dict:
    """Run rounds 1..`rounds` of `strategy` on `grid` with FL-Simulator's Bernoulli participation.

    Parameters
    ----------
    grid : Flower Grid or InProcessGrid
    strategy : flwr.serverapp.strategy.Strategy
        Must train every node it is shown (FedAvg and its kin: ``fraction_train=1.0, min_train_nodes=1,
        min_available_nodes=1``); the loop shows it only the round's sampled nodes.
    initial : flwr.app.ArrayRecord
        w^0.
    n_clients : int
        Nodes, with partition ids 0..n_clients-1.
    rounds, fraction, seed : int, float, int
        Rounds; participation probability; the sampling seed (`bernoulli_sample`).
    train_config : mapping or None
        The train ConfigRecord's content, every round (the strategy adds its own keys).
    evaluate : callable(round, arrays) -> dict or None
        Server-side evaluation after each round's aggregation; a dict is stored under `history["evals"]`.
    checkpoint_path : path or None
        Saved every `checkpoint_every` rounds and after the last; an existing one is resumed from when its `meta`
        equals this call's `meta` (otherwise refused). Node states are saved and restored only on a grid with
        `state_dict`/`load_state_dict` (`InProcessGrid`); elsewhere a resume restarts them empty.
    meta : mapping or None
        Identifies the run in the checkpoint (the caller's config).
    on_round : callable(round, history) or None
    timeout : float or None
        Passed to `grid.send_and_receive`.

    Returns
    -------
    history : dict
        round, clients (sampled partition ids), failures, metrics (the strategy's aggregated train metrics, a dict
        per round), evals (a list of {"round": r, **evaluate(r, arrays)}), and arrays (the final ArrayRecord).
    """
    from flwr.app import ArrayRecord, ConfigRecord

    if rounds < 1 or checkpoint_every < 1:
        raise UserError(f"Invalid rounds/checkpoint_every: {rounds}/{checkpoint_every}; expected >= 1")
    pid_of = partition_map(grid, n_clients, timeout=timeout or 120.0)
    node_of = {p: n for n, p in pid_of.items()}
    arrays = initial
    hist: dict = {"round": [], "clients": [], "failures": [], "metrics": [], "evals": []}
    start, meta = 0, dict(meta or {})
    ck = load_checkpoint(checkpoint_path, restore_rng=False) if checkpoint_path else None
    if ck is not None:
        if ck["meta"] != meta:
            raise UserError(f"Invalid checkpoint: {checkpoint_path} was written by another run; delete it")
        arrays, start, hist = ArrayRecord(dict(ck["model"])), ck["round"], ck["history"]
        load_strategy_state(strategy, ck["strategy"])
        if hasattr(grid, "load_state_dict"):
            grid.load_state_dict(ck["nodes"])
        log.info("resumed from round %d", start)
    for rnd in range(start + 1, rounds + 1):
        pids = bernoulli_sample(n_clients, fraction, seed, rnd)
        chosen = [node_of[p] for p in pids if p in node_of]
        messages = list(strategy.configure_train(rnd, arrays, ConfigRecord(dict(train_config or {})),
                                                 GridView(grid, chosen)))
        if sorted(m.metadata.dst_node_id for m in messages) != sorted(chosen):
            raise UserError("Invalid strategy: it did not train exactly the nodes it was shown; use "
                            "fraction_train=1.0, min_train_nodes=1, min_available_nodes=1")
        replies = sorted(grid.send_and_receive(messages, timeout=timeout),
                         key=lambda m: pid_of.get(m.metadata.src_node_id, -1))
        ok = [m for m in replies if not m.has_error()]
        if len(ok) < len(chosen):
            reasons = "; ".join(m.error.reason for m in replies if m.has_error()) or "no reply before the timeout"
            log.warning("round %d: %d of %d sampled clients failed (%s)", rnd, len(chosen) - len(ok), len(chosen),
                        reasons)
        new, metrics = strategy.aggregate_train(rnd, ok) if ok else (None, None)
        if new is not None:
            arrays = new
        hist["round"].append(rnd)
        hist["clients"].append(pids)
        hist["failures"].append(len(chosen) - len(ok))
        hist["metrics"].append({k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))})
        ev = evaluate(rnd, arrays) if evaluate is not None else None
        if ev is not None:
            hist["evals"].append({"round": rnd, **ev})
        if checkpoint_path and (rnd % checkpoint_every == 0 or rnd == rounds):
            save_checkpoint(checkpoint_path, model=arrays.to_torch_state_dict(), round=rnd, history=hist,
                            strategy=strategy_state(strategy), meta=meta,
                            nodes=grid.state_dict() if hasattr(grid, "state_dict") else {})
        if on_round is not None:
            on_round(rnd, hist)
    return {**hist, "arrays": arrays}
