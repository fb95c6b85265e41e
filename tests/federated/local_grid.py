"""A test double for Flower's Grid: delivers real Flower Messages to the ClientApp handlers in this process.

It lets tests run the real round loop, strategies and handlers (Flower's Message/RecordDict/Context objects)
without starting Ray, and inject client failures.
"""

from __future__ import annotations

from flwr.app import Context, Error, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tenfold.federated.fedinit import query_handler, train_handler


class LocalGrid:
    def __init__(self, n_clients: int, failing: set[int] = frozenset(), first_id: int = 1000):
        TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
        # node ids deliberately not in partition order, as in a real deployment
        self.nodes = {first_id + 7 * ((p * 5) % n_clients) + p: p for p in range(n_clients)}
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={"partition-id": p, "num-partitions": n_clients},
                                    state=RecordDict(), run_config={}) for n, p in self.nodes.items()}
        self.failing = set(failing)
        self.sent: list[int] = []

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for m in reversed(list(messages)):  # arrival order differs from send order
            node = m.metadata.dst_node_id
            self.sent.append(node)
            if self.nodes[node] in self.failing and m.metadata.message_type == MessageType.TRAIN:
                replies.append(Message(Error(code=0, reason="simulated crash"), reply_to=m))
                continue
            handler = query_handler if m.metadata.message_type == MessageType.QUERY else train_handler
            replies.append(handler(m, self.contexts[node]))
        return replies
