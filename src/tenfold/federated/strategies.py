"""Server strategies on Flower's message API: Flower's own FedAvg, FedProx and FedAdam, plus SCAFFOLD (which
Flower does not ship), built from one `FLConfig`. FedInit needs no server change: it lives in the ClientApp.

SCAFFOLD: Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", ICML 2020,
arXiv 1910.06378; the server control variate travels with the model in each training message.
"""

from __future__ import annotations

import torch

from tenfold.federated.config import FLConfig
from tenfold.federated.fedinit import C_KEY, DC_KEY
from tenfold.federated.maths import weighted_average


def _scaffold_class():
    from flwr.app import ArrayRecord
    from flwr.serverapp.strategy import FedAvg
    from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

    class Scaffold(FedAvg):
        """SCAFFOLD on Flower: FedAvg's sampling, plus server/client control variates.

        Parameters
        ----------
        n_clients : int
            Total number of clients N (the control variate moves by |S|/N of the mean change).
        global_lr : float, default=1.0
            Server step on the averaged model update.
        **kwargs
            Passed to `FedAvg`.
        """

        def __init__(self, *, n_clients: int, global_lr: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.n_clients = n_clients
            self.global_lr = global_lr
            self.c: dict[str, torch.Tensor] | None = None
            self._current: dict[str, torch.Tensor] | None = None

        def configure_train(self, server_round, arrays, config, grid):
            self._current = arrays.to_torch_state_dict()
            if self.c is None:
                self.c = {k: torch.zeros_like(v) for k, v in self._current.items()}
            messages = list(super().configure_train(server_round, arrays, config, grid))
            for m in messages:
                m.content[C_KEY] = ArrayRecord(self.c)
            return messages

        def aggregate_train(self, server_round, replies):
            valid = [m for m in replies if not m.has_error()]
            if not valid:
                return None, None
            contents = [m.content for m in valid]
            weights = [float(c["metrics"][self.weighted_by_key]) for c in contents]
            avg = weighted_average([c["arrays"].to_torch_state_dict() for c in contents], weights)
            new = {k: self._current[k] + self.global_lr * (avg[k] - self._current[k]) for k in avg}
            dcs = [c[DC_KEY].to_torch_state_dict() for c in contents]
            scale = len(dcs) / self.n_clients
            self.c = {k: self.c[k] + scale * sum(d[k] for d in dcs) / len(dcs) for k in self.c}
            return ArrayRecord(new), aggregate_metricrecords(contents, self.weighted_by_key)

    return Scaffold


def make_strategy(cfg: FLConfig):
    """The Flower strategy for `cfg.algorithm`. Node sampling is done by the round loop (deterministic, by
    partition id), so the strategy is asked to take every node it is shown."""
    from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

    k = cfg.clients_per_round
    common = dict(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=k, min_evaluate_nodes=0,
                  min_available_nodes=k)
    if cfg.algorithm == "fedavg":
        return FedAvg(**common)
    if cfg.algorithm == "fedprox":
        return FedProx(proximal_mu=cfg.proximal_mu, **common)
    if cfg.algorithm == "fedadam":
        return FedAdam(eta=cfg.server_lr, eta_l=cfg.lr, tau=cfg.server_tau, **common)
    return _scaffold_class()(n_clients=cfg.n_clients, global_lr=cfg.scaffold_lr, **common)


_STATE_ATTRS = ("c", "m_t", "v_t", "current_arrays")


def strategy_state(strategy) -> dict:
    """The strategy's cross-round state (SCAFFOLD's c, FedAdam's moments), for checkpoints."""
    return {a: getattr(strategy, a) for a in _STATE_ATTRS if getattr(strategy, a, None) is not None}


def load_strategy_state(strategy, state: dict) -> None:
    for a, v in state.items():
        setattr(strategy, a, v)
