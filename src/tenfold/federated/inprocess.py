"""An in-process Flower Grid: every message goes through a real `ClientApp` (mods included) in this process.

Flower's simulation engine runs each virtual SuperNode in a Ray actor and keeps one `Context` per node between
messages (`flwr/server/superlink/fleet/vce/vce_api.py`). `InProcessGrid` does the same work without Ray: it calls
`client_app(message, context)`, so the app's mods (`fedinit_mod`, `scaffold_mod`) and handlers run exactly as on
the engine, and it keeps one `Context(state=RecordDict())` per node, with the engine's `node_config`
(`partition-id`, `num-partitions`). Messages are handled one after another, so the reproduction's units can run
side by side in worker processes (`parallel_units`) with no Ray start-up (~10-25 s per simulation on 2 cores).
`tests/federated/test_inprocess.py` checks that a short run gives the same arrays, bit for bit, here and on
Flower's simulation engine.

Not implemented: timeouts (a handler runs to the end) and node churn (every node is always connected).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


class InProcessGrid:
    """A Flower `Grid` (the methods strategies use) that delivers messages to `client_app` in this process.

    Parameters
    ----------
    client_app : flwr.clientapp.ClientApp
        Called as ``client_app(message, context)``, so its mods apply.
    n_nodes : int
        Virtual SuperNodes; node k has ``node_config = {"partition-id": k, "num-partitions": n_nodes}``.
    first_node_id : int, default=1000
        Node ids are ``first_node_id + 7 * k``: not partition ids, as on the engine (code must map them).
    run_config : mapping, default={}
        Every node's `Context.run_config`.

    Attributes
    ----------
    contexts : dict of int to flwr.app.Context
        One per node id; `context.state` holds what the mods keep between rounds.
    partition_of : dict of int to int
        Node id -> partition id.

    Examples
    --------
    >>> from flwr.clientapp import ClientApp
    >>> grid = InProcessGrid(ClientApp(), 3)
    >>> sorted(grid.partition_of.values())
    [0, 1, 2]
    """

    def __init__(self, client_app, n_nodes: int, *, first_node_id: int = 1000,
                 run_config: Mapping | None = None) -> None:
        from flwr.app import Context, RecordDict
        from flwr.supercore.task_identity import TaskIdentity

        if n_nodes < 1:
            raise ValueError(f"Invalid n_nodes: {n_nodes}; expected >= 1")
        # Message(...) reads the sender's identity; in a ServerApp process Flower sets it, here we do (run 1, node 0)
        for attr, value in (("_run_id", 1), ("_task_id", 1), ("_node_id", 0)):
            if getattr(TaskIdentity, attr) is None:
                setattr(TaskIdentity, attr, value)
        self.client_app = client_app
        self.partition_of = {first_node_id + 7 * k: k for k in range(n_nodes)}
        self.contexts = {node: Context(run_id=1, node_id=node,
                                       node_config={"partition-id": k, "num-partitions": n_nodes},
                                       state=RecordDict(), run_config=dict(run_config or {}))
                         for node, k in self.partition_of.items()}

    def get_node_ids(self) -> list[int]:
        return list(self.partition_of)

    def send_and_receive(self, messages: Iterable, *, timeout: float | None = None) -> list:
        """Each message's reply, in the order sent (an error reply where the app raised)."""
        from flwr.app import Error, Message
        from flwr.common.constant import ErrorCode

        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            if node not in self.contexts:
                raise ValueError(f"Invalid dst_node_id: {node}; this grid has nodes {self.get_node_ids()}")
            try:
                replies.append(self.client_app(msg, self.contexts[node]))
            except Exception as e:  # noqa: BLE001 - the engine turns a crashing ClientApp into an error reply
                replies.append(Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=repr(e)),
                                       reply_to=msg))
        return replies

    # ---- the node states, for exact resume (plain dicts of tensors, as every checkpoint in the project) ----
    def state_dict(self) -> dict[int, dict[str, dict[str, torch.Tensor]]]:
        """partition id -> {state key -> state dict} of every ArrayRecord in the nodes' `context.state`."""
        from flwr.app import ArrayRecord

        out: dict[int, dict[str, dict[str, torch.Tensor]]] = {}
        for node, ctx in self.contexts.items():
            recs = {k: v.to_torch_state_dict() for k, v in ctx.state.items() if isinstance(v, ArrayRecord)}
            if len(recs) != len(ctx.state):
                raise ValueError(f"node {node}: only ArrayRecords in context.state can be saved")
            if recs:
                out[self.partition_of[node]] = recs
        return out

    def load_state_dict(self, state: Mapping[int, Mapping[str, Mapping[str, torch.Tensor]]]) -> None:
        """Replace every node's `context.state` by the saved one (nodes absent from `state` start empty)."""
        from flwr.app import ArrayRecord, RecordDict

        node_of = {k: node for node, k in self.partition_of.items()}
        for node in self.contexts:
            self.contexts[node].state = RecordDict()
        for k, recs in state.items():
            self.contexts[node_of[int(k)]].state = RecordDict({key: ArrayRecord(dict(sd)) for key, sd in recs.items()})
