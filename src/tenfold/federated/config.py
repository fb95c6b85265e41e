"""`FLConfig`: one typed config for a federated run, validated before any round starts.

The server sends it to every client inside each training message (a Flower `ConfigRecord`), so clients need
no configuration of their own beyond their partition id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from tenfold.common.config import field
from tenfold.common.errors import UserError, check_choice

ALGORITHMS = ("fedavg", "fedprox", "fedadam", "scaffold")


@dataclass
class FLConfig:
    algorithm: Literal["fedavg", "fedprox", "fedadam", "scaffold"] = field("fedavg", help="server/client algorithm")
    beta: float = field(0.0, help="FedInit relaxation; 0 = off (plain algorithm), paper default 0.1")
    aggregation: Literal["delta", "model"] = field(
        "delta", help="FedInit upload: 'delta' = w + (w_K - start) (FL-Simulator), 'model' = w_K")
    n_clients: int = field(20, help="number of clients (SuperNodes)")
    fraction: float = field(0.1, help="fraction of clients sampled per round, in (0, 1]")
    rounds: int = field(30, help="communication rounds")
    local_epochs: int = field(2, help="local epochs per round")
    batch_size: int = field(32, help="local minibatch size")
    lr: float = field(0.1, help="local SGD learning rate (FL-Simulator default)")
    lr_decay: float = field(0.998, help="per-round multiplicative lr decay (FL-Simulator default)")
    weight_decay: float = field(1e-3, help="local SGD weight decay (FL-Simulator default)")
    grad_clip: float = field(10.0, help="local gradient-norm clip (FL-Simulator default)")
    proximal_mu: float = field(0.01, help="FedProx proximal weight (FL-Simulator uses 0.1 or 0.01)")
    server_lr: float = field(0.01, help="FedAdam server learning rate eta")
    server_tau: float = field(1e-3, help="FedAdam adaptivity tau")
    scaffold_lr: float = field(1.0, help="SCAFFOLD global step size on the averaged update")
    n_train: int = field(6000, help="Fashion-MNIST training images shared out among clients (class-stratified)")
    partition: Literal["dirichlet", "iid"] = field("dirichlet", help="client split")
    alpha: float = field(0.1, help="Dirichlet concentration (smaller = more label skew)")
    data_seed: int = field(0, help="fixes the subsample and the split")
    model_size: Literal["debug", "small", "base"] = field("debug", help="GroupNorm CNN width")
    n_test: int = field(2000, help="test images for the server's centralised evaluation")
    eval_every: int = field(5, help="rounds between evaluations (the last round is always evaluated)")
    seed: int = field(0, help="client sampling and local shuffling")
    round_timeout: float = field(120.0, help="seconds to wait for replies in one round")
    state_dir: str = field("", help="if set, clients also persist their FedInit/SCAFFOLD state here (exact resume)")

    @property
    def clients_per_round(self) -> int:
        return max(1, int(round(self.n_clients * self.fraction)))

    def validate(self) -> "FLConfig":
        """Raise `UserError` naming the first bad field; returns self."""
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_choice("aggregation", self.aggregation, ("delta", "model"))
        check_choice("partition", self.partition, ("dirichlet", "iid"))
        if not 0.0 <= self.beta < 1.0:
            raise UserError(f"Invalid beta: {self.beta}; expected 0 <= beta < 1")
        if not 0.0 < self.fraction <= 1.0:
            raise UserError(f"Invalid fraction: {self.fraction}; expected 0 < fraction <= 1")
        if self.n_clients < 1:
            raise UserError(f"Invalid n_clients: {self.n_clients}; expected >= 1")
        if self.clients_per_round > self.n_clients:
            raise UserError(f"Invalid fraction: samples {self.clients_per_round} clients but only "
                            f"{self.n_clients} exist")
        if self.partition == "dirichlet" and self.alpha <= 0:
            raise UserError(f"Invalid alpha: {self.alpha}; expected > 0 for Dirichlet splits")
        if self.n_train < 2 * self.n_clients:
            raise UserError(f"Invalid n_train: {self.n_train}; expected >= 2 * n_clients ({2 * self.n_clients})")
        for name in ("rounds", "local_epochs", "batch_size", "eval_every", "n_test"):
            if getattr(self, name) < 1:
                raise UserError(f"Invalid {name}: {getattr(self, name)}; expected >= 1")
        for name in ("lr", "server_lr", "scaffold_lr", "round_timeout"):
            if getattr(self, name) <= 0:
                raise UserError(f"Invalid {name}: {getattr(self, name)}; expected > 0")
        return self

    def to_record(self) -> dict:
        """Plain dict of Flower-compatible scalars (for a ConfigRecord)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record) -> "FLConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: record[k] for k in record.keys() if k in names})
