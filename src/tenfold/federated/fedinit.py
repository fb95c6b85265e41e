"""FedInit [Sun, Shen, Tao, NeurIPS 2023] as a Flower `ClientApp`: local training from a personalised relaxed start.

"Understanding How Consistency Works in Federated Learning via Stage-wise Relaxed Initialization",
arXiv 2306.05706. Reference simulator: woodenchild95/FL-Simulator (`--use-RI`, `--beta 0.1`).

Each sampled client i, at round t, receives the global model w^t and starts from

    w_i^{t,0} = w^t + beta * (w^t - w_i^last)          (w_i^last: its model at the end of its previous stage)

then trains locally with the algorithm's rule (FedAvg: SGD; FedProx: + mu/2 ||w - w^t||^2; SCAFFOLD: corrected
gradients), stores its final model w_i^{t,K} in Flower's per-node `context.state`, and uploads either the
delta-equivalent model w^t + (w_i^{t,K} - w_i^{t,0}) (`aggregation="delta"`, default: a model average then equals
FL-Simulator's average of updates) or w_i^{t,K} itself (`aggregation="model"`).

Implemented: the client rule for FedAvg, FedProx, FedAdam (client side = FedAvg's) and SCAFFOLD (option II control
variates), with FedInit as a switch (beta > 0). Choices of ours, documented: on a client's first participation there
is no w_i^last and it starts from w^t (FL-Simulator instead uses the initial model w^0 there); FedProx's proximal
anchor is w^t, not the relaxed start. Not implemented: FedDyn, FedCM, FedSAM.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tenfold.federated.config import FLConfig
from tenfold.federated.maths import delta_equivalent, relaxed_start, sq_distance

LAST_KEY = "fedinit-last"     # context.state key: the client's last local model (ArrayRecord)
CI_KEY = "scaffold-ci"        # context.state key: SCAFFOLD client control variate
C_KEY = "scaffold-c"          # message key: SCAFFOLD server control variate (down)
DC_KEY = "scaffold-dc"        # message key: SCAFFOLD control-variate change (up)


# ----------------------------------------------------------------------------- data and model
@functools.lru_cache(maxsize=4)
def _partitions(n_train: int, partition: str, alpha: float, n_clients: int, data_seed: int):
    """Per-client (x, y) tensors: a class-stratified subsample of Fashion-MNIST train, split among clients."""
    from tenfold.data import dirichlet_partition, fashion_mnist, iid_partition
    from tenfold.data.images import normalise

    x, y = fashion_mnist("train")
    rng = np.random.default_rng(data_seed)
    per_class = n_train // 10
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]))
    x, y = x[keep], y[keep]
    if partition == "iid":
        parts = iid_partition(y, n_clients, seed=data_seed)
    else:
        parts = dirichlet_partition(y, n_clients, alpha, seed=data_seed)
    xt = torch.from_numpy(normalise(x)).unsqueeze(1)  # (N, 1, 28, 28)
    yt = torch.from_numpy(y)
    return [(xt[p], yt[p]) for p in parts]


def client_data(cfg: FLConfig, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of one client: x (n_i, 1, 28, 28) float32, y (n_i,) int64."""
    if not 0 <= partition_id < cfg.n_clients:
        raise ValueError(f"Invalid partition-id: {partition_id}; expected 0..{cfg.n_clients - 1}")
    return _partitions(cfg.n_train, cfg.partition, cfg.alpha, cfg.n_clients, cfg.data_seed)[partition_id]


def label_histograms(cfg: FLConfig) -> np.ndarray:
    """(n_clients, 10) label counts of the split, for plots."""
    parts = _partitions(cfg.n_train, cfg.partition, cfg.alpha, cfg.n_clients, cfg.data_seed)
    return np.stack([np.bincount(y.numpy(), minlength=10) for _, y in parts])


def build_model(cfg: FLConfig) -> nn.Module:
    from tenfold.models import GNConvNet

    return GNConvNet(1, 10, size=cfg.model_size)


def _seed(*parts: int) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


# ----------------------------------------------------------------------------- local training
def local_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: FLConfig, server_round: int,
                partition_id: int, *, anchor: dict | None = None, c: dict | None = None,
                ci: dict | None = None) -> tuple[int, float]:
    """Run `cfg.local_epochs` of SGD in place; returns (number of steps K, mean training loss).

    anchor : FedProx anchor (adds mu/2 ||w - anchor||^2) or None.
    c, ci : SCAFFOLD server and client control variates (gradient + c - ci) or None.
    Shuffling is seeded by (seed, round, partition), so a rerun is identical.
    """
    lr = cfg.lr * cfg.lr_decay ** (server_round - 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(_seed(cfg.seed, server_round, partition_id))
    params = dict(model.named_parameters())
    steps, total = 0, 0.0
    model.train()
    for _ in range(cfg.local_epochs):
        for idx in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            total += loss.item()
            if anchor is not None and cfg.proximal_mu > 0:
                loss = loss + 0.5 * cfg.proximal_mu * sum((p - anchor[n]).pow(2).sum() for n, p in params.items())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c is not None:
                for n, p in params.items():
                    p.grad.add_(c[n] - ci[n])
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            steps += 1
    return steps, total / max(steps, 1)


# ----------------------------------------------------------------------------- per-node state
def _load_state(context, key: str, cfg: FLConfig, partition_id: int) -> dict | None:
    if key in context.state:
        return context.state[key].to_torch_state_dict()
    if cfg.state_dir:
        path = Path(cfg.state_dir) / f"node{partition_id}-{key}.pt"
        if path.exists():
            return torch.load(path, map_location="cpu")
    return None


def _store_state(context, key: str, sd: dict, cfg: FLConfig, partition_id: int) -> None:
    from flwr.app import ArrayRecord

    from tenfold.common.atomic import atomic_write

    context.state[key] = ArrayRecord({k: v.detach().contiguous() for k, v in sd.items()})
    if cfg.state_dir:
        atomic_write(Path(cfg.state_dir) / f"node{partition_id}-{key}.pt", lambda fh: torch.save(sd, fh), mode="wb")


# ----------------------------------------------------------------------------- Flower handlers
def train_handler(msg, context):
    """Flower train handler: relaxed start (FedInit), local training, state update, upload."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    cfg = FLConfig.from_record(msg.content["config"])
    pid = int(context.node_config["partition-id"])
    rnd = int(msg.content["config"].get("server-round", 1))
    x, y = client_data(cfg, pid)
    global_sd = msg.content["arrays"].to_torch_state_dict()
    last = _load_state(context, LAST_KEY, cfg, pid) if cfg.beta > 0 else None
    start = relaxed_start(global_sd, last, cfg.beta)

    torch.manual_seed(_seed(cfg.seed, rnd, pid, 1))
    model = build_model(cfg)
    model.load_state_dict(start)
    anchor = {k: v.clone() for k, v in global_sd.items()} if cfg.algorithm == "fedprox" else None
    c = ci = None
    if cfg.algorithm == "scaffold":
        c = msg.content[C_KEY].to_torch_state_dict()
        ci = _load_state(context, CI_KEY, cfg, pid) or {k: torch.zeros_like(v) for k, v in c.items()}
    steps, loss = local_train(model, x, y, cfg, rnd, pid, anchor=anchor, c=c, ci=ci)

    local_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if cfg.beta > 0:
        _store_state(context, LAST_KEY, local_sd, cfg, pid)
    upload = delta_equivalent(global_sd, start, local_sd) if cfg.aggregation == "delta" else local_sd
    content = {"arrays": ArrayRecord(upload),
               "metrics": MetricRecord({"num-examples": int(len(y)), "train-loss": float(loss),
                                        "drift": sq_distance(local_sd, global_sd), "partition-id": pid})}
    if c is not None:
        lr = cfg.lr * cfg.lr_decay ** (rnd - 1)
        # SCAFFOLD option II: ci+ = ci - c + (x_start - x_K) / (K lr)
        new_ci = {k: ci[k] - c[k] + (start[k] - local_sd[k]) / (steps * lr) for k in c}
        content[DC_KEY] = ArrayRecord({k: new_ci[k] - ci[k] for k in c})
        _store_state(context, CI_KEY, new_ci, cfg, pid)
    return Message(RecordDict(content), reply_to=msg)


def query_handler(msg, context):
    """Answer the server's start-up query with this node's partition id (for deterministic sampling)."""
    from flwr.app import Message, MetricRecord, RecordDict

    pid = int(context.node_config["partition-id"])
    return Message(RecordDict({"metrics": MetricRecord({"partition-id": pid})}), reply_to=msg)


def make_client_app():
    """The FedInit-capable `ClientApp` (the algorithm and beta arrive with each message)."""
    from flwr.clientapp import ClientApp

    app = ClientApp()
    app.train()(train_handler)
    app.query()(query_handler)
    return app
