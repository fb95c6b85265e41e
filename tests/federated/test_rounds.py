"""The real round loop, strategies and ClientApp handlers over an in-process grid (no Ray)."""

import random

import pytest
import torch
from federated.local_grid import LocalGrid

from tenfold.common.errors import UserError
from tenfold.federated.config import FLConfig
from tenfold.federated.fedinit import build_model, client_data, local_train
from tenfold.federated.maths import weighted_average
from tenfold.federated.server import initial_model, run_rounds

TINY = dict(n_clients=4, fraction=0.5, rounds=3, n_train=200, n_test=100, local_epochs=1, eval_every=3)


def _run(tmp_path=None, grid=None, **kw):
    cfg = FLConfig(**{**TINY, **kw})
    grid = grid or LocalGrid(cfg.n_clients)
    return run_rounds(grid, cfg, initial_model(cfg), checkpoint_path=tmp_path), grid


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_beta0_is_exactly_fedavg_against_a_naive_loop():
    cfg = FLConfig(**TINY)
    hist, _ = _run()
    # naive FedAvg: same sampling RNG, same local training, weighted average of local models
    w = initial_model(cfg)
    rng = random.Random(cfg.seed)
    for rnd in range(1, cfg.rounds + 1):
        chosen = sorted(rng.sample(range(cfg.n_clients), cfg.clients_per_round))
        locals_, weights = [], []
        for pid in chosen:
            torch.manual_seed(0)  # model init is overwritten by the state dict
            m = build_model(cfg)
            m.load_state_dict(w)
            x, y = client_data(cfg, pid)
            local_train(m, x, y, cfg, rnd, pid)
            locals_.append(m.state_dict()); weights.append(len(y))
        w = weighted_average(locals_, weights)
    assert all(torch.allclose(hist["arrays"][k], w[k], atol=1e-6) for k in w)


@pytest.mark.parametrize("algorithm", ["fedavg", "fedprox", "fedadam", "scaffold"])
def test_fedinit_runs_with_every_algorithm_and_is_deterministic(algorithm):
    a, _ = _run(algorithm=algorithm, beta=0.1)
    b, _ = _run(algorithm=algorithm, beta=0.1)
    assert _same(a["arrays"], b["arrays"])
    assert len(a["round"]) == 3 and a["accuracy"][-1] is not None and all(d >= 0 for d in a["dispersion"])
    c, _ = _run(algorithm=algorithm, beta=0.0)
    assert not _same(a["arrays"], c["arrays"])  # the relaxation changes the trajectory


def test_client_keeps_last_model_in_context_state():
    _, grid = _run(beta=0.1)
    states = [ctx.state for ctx in grid.contexts.values() if "fedinit-last" in ctx.state]
    assert states, "no client stored its last local model"


@pytest.mark.parametrize("algorithm", ["fedavg", "scaffold", "fedadam"])
def test_interrupted_run_resumes_to_the_same_model(tmp_path, algorithm):
    full, _ = _run(algorithm=algorithm, beta=0.1, state_dir=str(tmp_path / "a"))
    cfg = FLConfig(**{**TINY, "algorithm": algorithm, "beta": 0.1, "state_dir": str(tmp_path / "b")})

    def stop_after_round_2(rnd, hist):
        if rnd == 2:
            raise KeyboardInterrupt

    ck = tmp_path / "server.pt"
    with pytest.raises(KeyboardInterrupt):
        run_rounds(LocalGrid(4), cfg, initial_model(cfg), checkpoint_path=ck, on_round=stop_after_round_2)
    # a fresh grid: client processes restarted and context.state lost; client state returns from state_dir
    resumed = run_rounds(LocalGrid(4), cfg, initial_model(cfg), checkpoint_path=ck)
    assert resumed["round"] == [1, 2, 3]
    assert _same(full["arrays"], resumed["arrays"])


def test_checkpoint_of_another_config_is_refused_but_rounds_may_grow(tmp_path):
    ck = tmp_path / "server.pt"
    _run(ck, rounds=2)
    with pytest.raises(ValueError, match="another config"):
        _run(ck, rounds=3, lr=0.5)
    longer, _ = _run(ck, rounds=3)
    straight, _ = _run(rounds=3)
    assert longer["round"] == [1, 2, 3] and _same(longer["arrays"], straight["arrays"])


def test_failed_client_is_logged_and_round_completes(caplog):
    hist, _ = _run(grid=LocalGrid(4, failing={0, 1, 2}))
    assert sum(hist["failures"]) > 0 and len(hist["round"]) == 3
    assert "sampled clients failed" in caplog.text


@pytest.mark.parametrize("kw, fragment", [
    (dict(beta=1.0), "Invalid beta"), (dict(beta=-0.1), "Invalid beta"), (dict(fraction=0.0), "Invalid fraction"),
    (dict(fraction=1.5), "Invalid fraction"), (dict(alpha=0.0), "Invalid alpha"), (dict(algorithm="fedsgd"),
    "Invalid algorithm"), (dict(n_train=4), "Invalid n_train"),
])
def test_bad_config_is_refused_before_any_round(kw, fragment):
    grid = LocalGrid(4)
    with pytest.raises(UserError, match=fragment):
        _run(grid=grid, **kw)
    assert grid.sent == []
