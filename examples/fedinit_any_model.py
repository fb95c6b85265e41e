"""FedInit with your own model and data on Flower's simulation engine: `python examples/fedinit_any_model.py`."""
import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

from tenfold.federated.flower import FedInit, fedinit_mod, local_sgd


def make_model():  # any torch.nn.Module
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def my_batches(node: int):  # any re-iterable of (x, y): 64 synthetic samples, label-skewed per node
    g = torch.Generator().manual_seed(node)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, 0] > node - 1.5).long() + (x[:, 1] > 0).long()
    return list(zip(x.split(16), y.split(16)))


client = ClientApp(mods=[fedinit_mod])  # relaxed start in, update out, last local model kept in context.state


@client.train()
def train(msg, context):
    model = make_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())  # the relaxed start
    steps, n = local_sgd(model, my_batches(context.node_config["partition-id"]), msg.content["config"])
    metrics = MetricRecord({"num-examples": n, "num-steps": steps})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)


server, out = ServerApp(), {}


@server.main()
def main(grid, context):
    strategy = FedInit(FedAvg(fraction_train=0.5, fraction_evaluate=0.0), beta=0.1, lr=0.1, lr_decay=0.998, clip=10.0)
    out["result"] = strategy.start(grid, ArrayRecord(make_model().state_dict()), num_rounds=3)


if __name__ == "__main__":
    run_simulation(server_app=server, client_app=client, num_supernodes=4)
    print(out["result"])
