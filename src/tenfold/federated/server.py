"""The server side: a checkpointed round loop over any strategy, and the `ServerApp` around it.

Flower's `Strategy.start` runs all rounds in one call; to checkpoint after every round and resume a stopped run,
this loop calls the same strategy hooks (`configure_train`, `aggregate_train`) itself. It also samples clients
by partition id with its own seeded RNG and sorts replies, so that a simulation is repeatable bit for bit, and it
records the per-round inconsistency (dispersion of client uploads around their mean).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Callable

import torch

from tenfold.common.checkpoint import load_checkpoint, save_checkpoint
from tenfold.federated.config import FLConfig
from tenfold.federated.maths import dispersion
from tenfold.federated.rounds import GridView

log = logging.getLogger("tenfold.federated")


def _handshake(grid, cfg: FLConfig) -> dict[int, int]:
    """node id -> partition id, asked once of every connected node (a QUERY message)."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    deadline = time.time() + cfg.round_timeout
    while len(list(grid.get_node_ids())) < cfg.n_clients and time.time() < deadline:
        time.sleep(0.5)
    nodes = sorted(grid.get_node_ids())
    msgs = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.QUERY)
            for n in nodes]
    replies = grid.send_and_receive(msgs, timeout=cfg.round_timeout)
    return {m.metadata.src_node_id: int(m.content["metrics"]["partition-id"]) for m in replies if not m.has_error()}


def evaluator(cfg: FLConfig) -> Callable[[dict], tuple[float, float]]:
    """Centralised evaluation on a class-stratified Fashion-MNIST test subset: state dict -> (accuracy %, loss)."""
    import numpy as np

    from tenfold.data import fashion_mnist
    from tenfold.data.images import normalise
    from tenfold.federated.fedinit import build_model

    x, y = fashion_mnist("test")
    rng = np.random.default_rng(cfg.data_seed + 1)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), cfg.n_test // 10, replace=False)
                                   for c in range(10)]))
    xt, yt = torch.from_numpy(normalise(x[keep])).unsqueeze(1), torch.from_numpy(y[keep])
    model = build_model(cfg)

    @torch.no_grad()
    def evaluate(sd: dict) -> tuple[float, float]:
        model.load_state_dict(sd)
        model.eval()
        logits = torch.cat([model(xb) for xb in xt.split(500)])
        return (100.0 * (logits.argmax(1) == yt).float().mean().item(),
                torch.nn.functional.cross_entropy(logits, yt).item())

    return evaluate


def _without_rounds(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "rounds"}


def run_rounds(grid, cfg: FLConfig, initial: dict, *, checkpoint_path: str | Path | None = None,
               on_round: Callable[[int, dict], None] | None = None, stop=None) -> dict:
    """Run `cfg.rounds` rounds (resuming from `checkpoint_path` if it exists); returns the history dict.

    `stop` (a `threading.Event`, optional): once set, the loop ends with `KeyboardInterrupt` before the next round
    and never checkpoints the round in progress, whose clients may have been stopped with the caller (an
    interrupted `simulate` sets it, so the server thread that Flower leaves running cannot overwrite the last good
    checkpoint with empty rounds).

    History keys: round, accuracy (%), test_loss, train_loss, dispersion, drift, failures (lists, one entry per
    round; accuracy/test_loss are None on rounds without evaluation) and `arrays` (the final state dict).
    """
    from flwr.app import ArrayRecord, ConfigRecord

    from tenfold.federated.strategies import load_strategy_state, make_strategy, strategy_state

    cfg.validate()
    strategy = make_strategy(cfg)
    evaluate = evaluator(cfg)
    pid_of = _handshake(grid, cfg)
    if not pid_of:
        raise RuntimeError("no client answered the start-up query; are the SuperNodes running?")
    rng = random.Random(cfg.seed)
    arrays = ArrayRecord(initial)
    hist = {k: [] for k in ("round", "accuracy", "test_loss", "train_loss", "dispersion", "drift", "failures")}
    start = 0
    ck = load_checkpoint(checkpoint_path, restore_rng=False) if checkpoint_path else None
    if ck is not None:
        if _without_rounds(ck["config"]) != _without_rounds(cfg.to_record()):
            raise ValueError(f"checkpoint {checkpoint_path} was written under another config; delete it or "
                             "use the same config (only `rounds` may change, to extend a run)")
        arrays, start, hist = ArrayRecord(ck["model"]), ck["round"], ck["history"]
        rng.setstate(ck["sampler_rng"])
        load_strategy_state(strategy, ck["strategy"])
        log.info("resumed from round %d", start)
    def check_stop():
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt(f"federated run stopped before round {rnd} was saved")

    for rnd in range(start + 1, cfg.rounds + 1):
        check_stop()
        online = [n for n in grid.get_node_ids() if n in pid_of]
        k = min(cfg.clients_per_round, len(online))
        chosen_pids = set(rng.sample(sorted(pid_of[n] for n in online), k))
        chosen = [n for n in online if pid_of[n] in chosen_pids]
        strategy.min_train_nodes = strategy.min_available_nodes = k
        messages = strategy.configure_train(rnd, arrays, ConfigRecord(cfg.to_record()), GridView(grid, chosen))
        replies = sorted(grid.send_and_receive(messages, timeout=cfg.round_timeout),
                         key=lambda m: pid_of.get(m.metadata.src_node_id, -1))
        ok = [m for m in replies if not m.has_error()]
        failures = k - len(ok)
        if failures:
            reasons = "; ".join(m.error.reason for m in replies if m.has_error()) or "no reply before the timeout"
            log.warning("round %d: %d of %d sampled clients failed (%s); aggregating the rest", rnd, failures, k,
                        reasons)
        disp = drift = loss = float("nan")
        if ok:
            weights = [float(m.content["metrics"]["num-examples"]) for m in ok]
            disp = dispersion([m.content["arrays"].to_torch_state_dict() for m in ok], weights)
            drift = sum(float(m.content["metrics"]["drift"]) for m in ok) / len(ok)
            loss = sum(float(m.content["metrics"]["train-loss"]) for m in ok) / len(ok)
            new, _ = strategy.aggregate_train(rnd, ok)
            if new is not None:
                arrays = new
        acc = tl = None
        if rnd % cfg.eval_every == 0 or rnd == cfg.rounds:
            acc, tl = evaluate(arrays.to_torch_state_dict())
        for key, val in zip(hist, (rnd, acc, tl, loss, disp, drift, failures)):
            hist[key].append(val)
        check_stop()
        if checkpoint_path:
            save_checkpoint(checkpoint_path, model=arrays.to_torch_state_dict(), round=rnd, history=hist,
                            sampler_rng=rng.getstate(), strategy=strategy_state(strategy), config=cfg.to_record())
        if on_round:
            on_round(rnd, hist)
    return {**hist, "arrays": arrays.to_torch_state_dict()}


def initial_model(cfg: FLConfig) -> dict:
    """The initial global model, seeded by cfg.seed."""
    from tenfold.federated.fedinit import build_model

    torch.manual_seed(cfg.seed)
    return {k: v.detach().clone() for k, v in build_model(cfg).state_dict().items()}


def make_server_app(cfg: FLConfig, out: dict, *, checkpoint_path=None, on_round=None, quiet: bool = True,
                    stop=None):
    """A `ServerApp` running `run_rounds` (with its `stop` event); the history (or the exception) is written into
    `out`."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context):
        if quiet:
            logging.getLogger("flwr").setLevel(logging.ERROR)
        try:
            out["history"] = run_rounds(grid, cfg, initial_model(cfg), checkpoint_path=checkpoint_path,
                                        on_round=on_round, stop=stop)
        except BaseException as e:  # run_simulation would only log it
            out["error"] = e

    return app
