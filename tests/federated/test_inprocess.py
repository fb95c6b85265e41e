"""The in-process engine (`InProcessGrid`) and FL-Simulator's round protocol (`run_sampled_rounds`): mods apply,
one Context per node, Bernoulli participation as FL-Simulator draws it, exact resume, and the same arrays bit for bit
as on Flower's simulation engine (one Ray start)."""

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from tenfold.common.errors import UserError  # noqa: E402
from tenfold.federated.inprocess import InProcessGrid  # noqa: E402
from tenfold.federated.rounds import bernoulli_sample  # noqa: E402



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
