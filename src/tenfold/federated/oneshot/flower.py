"""The single communication round of one-shot FL, on Flower: clients train a small HF ViT from a shared random
initialisation on their own split and upload it once; the server keeps every upload (no aggregation here: FedAvg,
the ensemble and FedMITR all start from the list of client models).

`OneShotConfig` travels inside the round's message (a Flower ConfigRecord), so a client needs only its partition id.
`run_round(cfg)` runs the round with `flwr.simulation.run_simulation` (one virtual SuperNode per client) and
returns the client state dicts sorted by partition id, plus their label counts, training losses and the feature
moments of their data (for the DENSE baseline's statistics prior).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from tenfold.common.config import field
from tenfold.common.errors import UserError, check_choice

DATASETS = ("fmnist", "mnist5k")


@dataclass
class OneShotConfig:
    dataset: str = field("fmnist", help="client data: fmnist (Fashion-MNIST train) or mnist5k")
    n_train: int = field(3000, help="training images shared out among clients (class-stratified subsample)")
    n_clients: int = field(5, help="clients (SuperNodes), each uploads once")
    alpha: float = field(0.1, help="Dirichlet label-skew concentration (smaller = more skew)")
    data_seed: int = field(0, help="fixes the subsample and the split")
    vit_size: str = field("debug", help="tenfold.models.hf_tiny.tiny_vit size (debug: D=32, 2 layers, 2 heads)")
    patch_size: int = field(4, help="ViT patch size on 28x28 one-channel images (4 -> 49 patches)")
    local_epochs: int = field(5, help="local epochs of AdamW on each client")
    batch_size: int = field(64, help="local minibatch size")
    lr: float = field(2e-3, help="local AdamW learning rate")
    weight_decay: float = field(0.05, help="local AdamW weight decay")
    seed: int = field(0, help="shared initialisation and local shuffling")
    round_timeout: float = field(600.0, help="seconds to wait for the uploads")

    def validate(self) -> "OneShotConfig":
        """Raise `UserError` naming the first bad field; returns self."""
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("vit_size", self.vit_size, ("debug", "tiny"))
        if self.n_clients < 1:
            raise UserError(f"Invalid n_clients: {self.n_clients}; expected >= 1")
        if self.alpha <= 0:
            raise UserError(f"Invalid alpha: {self.alpha}; expected > 0")
        if self.n_train < 10 * self.n_clients:
            raise UserError(f"Invalid n_train: {self.n_train}; expected >= 10 * n_clients ({10 * self.n_clients})")
        if 28 % self.patch_size:
            raise UserError(f"Invalid patch_size: {self.patch_size}; expected a divisor of 28 (2, 4, 7, 14)")
        for name in ("local_epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"Invalid {name}: {getattr(self, name)}; expected >= 1")
        if self.lr <= 0:
            raise UserError(f"Invalid lr: {self.lr}; expected > 0")
        return self

    def to_record(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record) -> "OneShotConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: record[k] for k in record.keys() if k in names})

    def key(self) -> str:
        """A short hash of the config (cache key for the trained client models)."""
        return hashlib.sha256(repr(sorted(self.to_record().items())).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- data and model
@functools.lru_cache(maxsize=2)
def _source(dataset: str):
    from tenfold.data import fashion_mnist, mnist5k

    if dataset == "fmnist":
        return (*fashion_mnist("train"), *fashion_mnist("test"))
    x, y = mnist5k()                       # 500 per class; the last 100 of each class are the test set
    rng = np.random.default_rng(12345)
    test = np.concatenate([rng.choice(np.flatnonzero(y == c), 100, replace=False) for c in range(10)])
    train = np.setdiff1d(np.arange(len(y)), test)
    return x[train], y[train], x[test], y[test]


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    from tenfold.data.images import normalise

    return torch.from_numpy(normalise(x)).unsqueeze(1)      # (N, 1, 28, 28)


@functools.lru_cache(maxsize=4)
def _splits(dataset: str, n_train: int, n_clients: int, alpha: float, data_seed: int):
    from tenfold.data import dirichlet_partition

    x, y, _, _ = _source(dataset)
    rng = np.random.default_rng(data_seed)
    per_class = min(n_train // 10, min(int((y == c).sum()) for c in range(10)))
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]))
    x, y = x[keep], y[keep]
    parts = dirichlet_partition(y, n_clients, alpha, seed=data_seed)
    xt, yt = _to_tensor(x), torch.from_numpy(y)
    return [(xt[p], yt[p]) for p in parts]


def client_split(cfg: OneShotConfig, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (n_i, 1, 28, 28) float32, y (n_i,) int64) of one client."""
    if not 0 <= partition_id < cfg.n_clients:
        raise UserError(f"Invalid partition-id: {partition_id}; expected 0..{cfg.n_clients - 1}")
    x, y = _splits(cfg.dataset, cfg.n_train, cfg.n_clients, cfg.alpha, cfg.data_seed)[partition_id]
    if len(y) == 0:
        raise UserError(f"client {partition_id} has an empty split; raise n_train or alpha")
    return x, y


def test_set(cfg: OneShotConfig, n_test: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-stratified test subset (at most `n_test` images; MNIST-5k has 1000)."""
    _, _, x, y = _source(cfg.dataset)
    rng = np.random.default_rng(cfg.data_seed + 1)
    per = min(n_test // 10, min(int((y == c).sum()) for c in range(10)))
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in range(10)]))
    return _to_tensor(x[keep]), torch.from_numpy(y[keep])


def build_vit(cfg: OneShotConfig):
    """A fresh `ViTForImageClassification` for 1x28x28 inputs (random init; seed it before calling)."""
    from tenfold.models.hf_tiny import tiny_vit

    model, _ = tiny_vit(cfg.vit_size, image_size=28, patch_size=cfg.patch_size, num_channels=1, num_labels=10)
    return model


def initial_state(cfg: OneShotConfig) -> dict:
    """The shared random initialisation every client starts from (seeded by cfg.seed)."""
    torch.manual_seed(cfg.seed)
    return {k: v.detach().clone() for k, v in build_vit(cfg).state_dict().items()}


def local_train(model, x: torch.Tensor, y: torch.Tensor, cfg: OneShotConfig, partition_id: int) -> float:
    """Train in place with AdamW (cosine schedule) for cfg.local_epochs; returns the mean loss of the last epoch."""
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + partition_id)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_steps = cfg.local_epochs * ((len(y) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(n_steps, 1))
    model.train()
    last = 0.0
    for _ in range(cfg.local_epochs):
        total, nb = 0.0, 0
        for idx in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
            loss = torch.nn.functional.cross_entropy(model(x[idx]).logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, nb = total + float(loss.detach()), nb + 1
        last = total / max(nb, 1)
    model.eval()
    return last


# ----------------------------------------------------------------------------- Flower apps
def train_handler(msg, context):
    """Client: load the shared initial model, train on the own split, upload it once (with its label counts and
    the (L, 2, D) feature moments of its data that DENSE's statistics prior uses)."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    torch.set_num_threads(1)
    cfg = OneShotConfig.from_record(msg.content["config"])
    pid = int(context.node_config["partition-id"])
    x, y = client_split(cfg, pid)
    model = build_vit(cfg)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss = local_train(model, x, y, cfg, pid)
    counts = np.bincount(y.numpy(), minlength=10).astype(int).tolist()
    metrics = {"num-examples": int(len(y)), "train-loss": float(loss), "partition-id": pid}
    metrics.update({f"count-{c}": int(n) for c, n in enumerate(counts)})
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # DENSE's statistics prior needs what a BN layer would keep: per-layer feature moments on the local data
    from tenfold.federated.oneshot.dense import feature_stats

    stats = ArrayRecord({"feature_stats": feature_stats(model, x).contiguous()})
    return Message(RecordDict({"arrays": ArrayRecord(sd), "metrics": MetricRecord(metrics), "stats": stats}),
                   reply_to=msg)


def make_client_app():
    """The one-shot `ClientApp` (its only handler is train)."""
    from flwr.clientapp import ClientApp

    app = ClientApp()
    app.train()(train_handler)
    return app


def collect_uploads(grid, cfg: OneShotConfig) -> dict:
    """Server: send the initial model to every client once and gather the uploads, sorted by partition id."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

    deadline = time.time() + cfg.round_timeout
    while len(list(grid.get_node_ids())) < cfg.n_clients and time.time() < deadline:
        time.sleep(0.2)
    init = ArrayRecord(initial_state(cfg))
    msgs = [Message(RecordDict({"arrays": init, "config": ConfigRecord(cfg.to_record())}), dst_node_id=n,
                    message_type=MessageType.TRAIN) for n in sorted(grid.get_node_ids())]
    replies = list(grid.send_and_receive(msgs, timeout=cfg.round_timeout))
    errors = [m.error.reason for m in replies if m.has_error()]
    if errors or len(replies) < cfg.n_clients:
        raise RuntimeError(f"one-shot round: {len(replies) - len(errors)} of {cfg.n_clients} clients uploaded "
                           f"({'; '.join(errors) or 'timeout'})")
    replies.sort(key=lambda m: int(m.content["metrics"]["partition-id"]))
    return {"states": [m.content["arrays"].to_torch_state_dict() for m in replies],
            "label_counts": torch.tensor([[int(m.content["metrics"][f"count-{c}"]) for c in range(10)]
                                          for m in replies]),
            "train_loss": [float(m.content["metrics"]["train-loss"]) for m in replies],
            "feature_stats": [m.content["stats"].to_torch_state_dict()["feature_stats"] for m in replies]}


def make_server_app(cfg: OneShotConfig, out: dict):
    """A `ServerApp` that runs the single round; the uploads (or the exception) are written into `out`."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context):
        logging.getLogger("flwr").setLevel(logging.ERROR)
        try:
            out.update(collect_uploads(grid, cfg))
        except BaseException as e:  # run_simulation would only log it
            out["error"] = e

    return app


def run_round(cfg: OneShotConfig, *, verbose: bool = False) -> dict:
    """Run the one-shot round on Flower's simulation engine; returns states, label_counts (K, 10), train_loss,
    feature_stats (K tensors (L, 2, D)), round_seconds.

    Examples
    --------
    >>> up = run_round(OneShotConfig(n_clients=3, n_train=300, local_epochs=1))   # doctest: +SKIP
    >>> len(up["states"])                                                         # doctest: +SKIP
    3
    """
    from tenfold.federated.simulation import quiet_flower

    cfg.validate()
    for pid in range(cfg.n_clients):      # fail on empty splits before Ray starts
        client_split(cfg, pid)
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    if not verbose:
        quiet_flower()
    from flwr.simulation import run_simulation

    out: dict = {}
    init_args = {"include_dashboard": False, "log_to_driver": verbose}
    if os.environ.get("TENFOLD_RAY_CPUS"):
        init_args["num_cpus"] = int(os.environ["TENFOLD_RAY_CPUS"])
    t0 = time.perf_counter()
    run_simulation(server_app=make_server_app(cfg, out), client_app=make_client_app(),
                   num_supernodes=cfg.n_clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": init_args},
                   verbose_logging=verbose)
    if "error" in out:
        raise out["error"]
    if "states" not in out:
        raise RuntimeError("one-shot round produced no uploads (see Flower's log with verbose=True)")
    out["round_seconds"] = time.perf_counter() - t0
    return out
