"""The in-process engine (`InProcessGrid`) and FL-Simulator's round protocol (`run_sampled_rounds`): mods apply,
one Context per node, Bernoulli participation as FL-Simulator draws it, exact resume, and the same arrays bit for bit
as on Flower's simulation engine (one Ray start)."""

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from tenfold.common.config import apply_overrides  # noqa: E402
from tenfold.common.errors import UserError  # noqa: E402
from tenfold.experiments.fedinit import EXPERIMENT, _data, _model, client_app, strategy  # noqa: E402
from tenfold.federated.flower import CI_STATE, LAST_STATE  # noqa: E402
from tenfold.federated.inprocess import InProcessGrid  # noqa: E402
from tenfold.federated.rounds import bernoulli_sample, run_sampled_rounds  # noqa: E402

CFG = apply_overrides(EXPERIMENT.config_cls(), dict(EXPERIMENT.modes["smoke"]))


def _pieces(algorithm="scaffold", seed=0):
    parts = _data("fmnist", CFG.n_train, CFG.n_test, CFG.n_clients, CFG.alpha, seed)[0]
    return client_app(algorithm, parts, CFG.batch_size, seed), strategy(algorithm, 0.1, CFG)


def _run(grid, strat, rounds=3, **kw):
    return run_sampled_rounds(grid, strat, ArrayRecord(_model(0).state_dict()), n_clients=CFG.n_clients,
                              rounds=rounds, fraction=0.5, seed=0, train_config={"local-epochs": 1}, **kw)


def _same_arrays(a: ArrayRecord, b: ArrayRecord) -> bool:
    x, y = a.to_numpy_ndarrays(), b.to_numpy_ndarrays()
    return list(a.keys()) == list(b.keys()) and all(np.array_equal(u, v) and u.dtype == v.dtype for u, v in zip(x, y))


# ----------------------------------------------------------------------------- the grid
def test_grid_calls_the_client_app_with_its_mods_and_one_context_per_node():
    calls = []

    def mod(msg, context, call_next):
        calls.append(("mod", context.node_id))
        return call_next(msg, context)

    app = ClientApp(mods=[mod])

    @app.train()
    def train(msg, context):
        context.state["seen"] = ArrayRecord({"n": torch.tensor([float(len(context.state.keys()))])})
        calls.append(("train", context.node_config["partition-id"]))
        return Message(RecordDict({"metrics": MetricRecord({"pid": context.node_config["partition-id"]})}),
                       reply_to=msg)

    grid = InProcessGrid(app, 3)
    nodes = grid.get_node_ids()
    assert sorted(grid.partition_of.values()) == [0, 1, 2] and nodes != [0, 1, 2]  # node ids are not partition ids
    msgs = [Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=n, message_type=MessageType.TRAIN)
            for n in (nodes[2], nodes[0])]
    replies = grid.send_and_receive(msgs)
    assert [r.content["metrics"]["pid"] for r in replies] == [2, 0]  # in the order sent
    assert [r.metadata.src_node_id for r in replies] == [nodes[2], nodes[0]]
    assert calls == [("mod", nodes[2]), ("train", 2), ("mod", nodes[0]), ("train", 0)]
    assert "seen" in grid.contexts[nodes[0]].state and "seen" not in grid.contexts[nodes[1]].state
    assert grid.contexts[nodes[1]].node_config == {"partition-id": 1, "num-partitions": 3}


def test_grid_turns_a_crashing_client_into_an_error_reply_and_refuses_unknown_nodes():
    app = ClientApp()

    @app.train()
    def train(msg, context):
        raise RuntimeError("disk full")

    grid = InProcessGrid(app, 2)
    msg = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=grid.get_node_ids()[0],
                  message_type=MessageType.TRAIN)
    reply = grid.send_and_receive([msg])[0]
    assert reply.has_error() and "disk full" in reply.error.reason
    with pytest.raises(ValueError, match="Invalid dst_node_id"):
        grid.send_and_receive([Message(RecordDict(), dst_node_id=5, message_type=MessageType.TRAIN)])


# ----------------------------------------------------------------------------- Bernoulli participation
def _flsim_activate(total_client, active_ratio, seed, t):
    """FL-Simulator's `_activate_clients_` as written there (global np.random); t is 0-based."""
    saved = np.random.get_state()
    try:
        inc_seed = 0
        while True:
            np.random.seed(t + seed + inc_seed)
            act_list = np.random.uniform(size=total_client)
            selected = np.sort(np.where(act_list <= active_ratio)[0])
            inc_seed += 1
            if len(selected) != 0:
                return selected.tolist()
    finally:
        np.random.set_state(saved)


@pytest.mark.parametrize("n, fraction, seed", [(100, 0.1, 0), (100, 0.1, 2), (20, 0.2, 1), (4, 0.05, 0)])
def test_bernoulli_sample_is_fl_simulators_draw(n, fraction, seed):
    for rnd in range(1, 31):
        assert bernoulli_sample(n, fraction, seed, rnd) == _flsim_activate(n, fraction, seed, rnd - 1)
    sizes = [len(bernoulli_sample(n, fraction, seed, r)) for r in range(1, 31)]
    assert min(sizes) >= 1 and len(set(sizes)) > 1  # never empty (redrawn), and not a fixed number


def test_bernoulli_sample_refuses_bad_arguments():
    with pytest.raises(UserError, match="Invalid fraction"):
        bernoulli_sample(10, 0.0, 0, 1)


# ----------------------------------------------------------------------------- the round loop
def test_rounds_resume_from_a_checkpoint_bit_for_bit(tmp_path):
    app, strat = _pieces()
    straight = _run(InProcessGrid(app, CFG.n_clients), strat, rounds=4)
    ck = tmp_path / "server.pt"
    app, strat = _pieces()
    _run(InProcessGrid(app, CFG.n_clients), strat, rounds=2, checkpoint_path=ck)
    app, strat = _pieces()  # a new process: fresh strategy, fresh node states, restored from the checkpoint
    grid = InProcessGrid(app, CFG.n_clients)
    resumed = _run(grid, strat, rounds=4, checkpoint_path=ck)
    assert resumed["round"] == straight["round"] == [1, 2, 3, 4]
    assert _same_arrays(resumed["arrays"], straight["arrays"])
    assert resumed["metrics"] == straight["metrics"]
    states = [set(c.state.keys()) for c in grid.contexts.values()]
    assert {LAST_STATE, CI_STATE} in states  # the node states really were in play


def test_rounds_refuse_a_checkpoint_of_another_run_and_a_strategy_that_samples_itself(tmp_path):
    app, strat = _pieces("fedavg")
    _run(InProcessGrid(app, CFG.n_clients), strat, rounds=1, checkpoint_path=tmp_path / "c.pt", meta={"a": 1})
    with pytest.raises(UserError, match="Invalid checkpoint"):
        _run(InProcessGrid(app, CFG.n_clients), strategy("fedavg", 0.1, CFG), rounds=2,
             checkpoint_path=tmp_path / "c.pt", meta={"a": 2})
    from flwr.serverapp.strategy import FedAvg

    half = FedAvg(fraction_train=0.5, fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    with pytest.raises(UserError, match="Invalid strategy"):
        run_sampled_rounds(InProcessGrid(app, CFG.n_clients), half, ArrayRecord(_model(0).state_dict()),
                           n_clients=CFG.n_clients, rounds=3, fraction=1.0, seed=0,
                           train_config={"local-epochs": 1, "lr": 0.1, "fedinit-beta": 0.0})


def test_inprocess_grid_gives_the_same_run_as_flowers_simulation_engine(monkeypatch):
    """Issue 26: the reproduction runs in process; this short SCAFFOLD + FedInit run (both mods, node state, the
    divergence) must give the same arrays and metrics, bit for bit, on Flower's simulation engine (Ray)."""
    pytest.importorskip("ray")
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from tenfold.federated.simulation import quiet_flower, shutdown_ray

    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # Ray's workers: one thread each, as this process below
    quiet_flower()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        app, strat = _pieces()
        local = _run(InProcessGrid(app, CFG.n_clients), strat)
        app, strat = _pieces()
        out = {}
        server = ServerApp()

        @server.main()
        def main(grid, context):
            try:
                out["hist"] = _run(grid, strat)
            except BaseException as e:  # run_simulation would only log it
                out["error"] = e

        try:
            run_simulation(server_app=server, client_app=app, num_supernodes=CFG.n_clients,
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"include_dashboard": False, "log_to_driver": False}})
        finally:
            shutdown_ray()
    finally:
        torch.set_num_threads(before)
    assert "error" not in out, out.get("error")
    ray = out["hist"]
    assert ray["clients"] == local["clients"] and ray["failures"] == [0, 0, 0]
    assert _same_arrays(ray["arrays"], local["arrays"])
    assert ray["metrics"] == local["metrics"] and all(m["fedinit-divergence"] > 0 for m in local["metrics"])
