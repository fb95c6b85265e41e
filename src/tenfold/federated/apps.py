"""Module-level Flower apps for the Deployment Runtime (`flwr run deploy/fedinit_app`).

`server_app` reads an `FLConfig` from the run config (keys = FLConfig field names; `out_dir` for the history and
the server checkpoint) and runs the same checkpointed round loop as the simulation; `client_app` is the
FedInit-capable ClientApp. Each SuperNode is started with `--node-config "partition-id=K num-partitions=N"`.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.serverapp import ServerApp

from tenfold.common.atomic import atomic_write_json
from tenfold.federated.config import FLConfig
from tenfold.federated.fedinit import make_client_app
from tenfold.federated.server import initial_model, run_rounds

client_app = make_client_app()
server_app = ServerApp()


@server_app.main()
def main(grid, context) -> None:
    rc = dict(context.run_config)
    out = Path(str(rc.pop("out_dir", "fl-deploy-out")))
    out.mkdir(parents=True, exist_ok=True)
    cfg = FLConfig.from_record(rc).validate()

    def progress(rnd, hist):
        atomic_write_json(out / "history.json", {"config": cfg.to_record(), "done": False, **hist})

    hist = run_rounds(grid, cfg, initial_model(cfg), checkpoint_path=out / "server.pt", on_round=progress)
    hist.pop("arrays")
    atomic_write_json(out / "history.json", {"config": cfg.to_record(), "done": True, **hist})


def read_history(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / "history.json"
    return json.loads(path.read_text()) if path.exists() else None
