"""One unit of the FedInit reproduction on Flower's simulation engine (one Ray start-up), checked end to end."""

import math

from tenfold.common.config import apply_overrides
from tenfold.experiments.fedinit import EXPERIMENT
from tenfold.harness import UnitContext


def test_one_fedinit_unit_on_flower(tmp_path):
    cfg = apply_overrides(EXPERIMENT.config_cls(), dict(EXPERIMENT.modes["smoke"]))
    arm = next(a for a in EXPERIMENT.arms(cfg) if a.name == "fedinit")
    ctx = UnitContext(work_dir=tmp_path, cache_dir=tmp_path, device="cpu", mode="smoke")
    res = EXPERIMENT.run_unit(arm, 0, cfg, ctx)
    assert set(res.metrics) == {m.name for m in EXPERIMENT.metrics}
    assert 0 <= res.metrics["final_acc"] <= 100 and math.isfinite(res.metrics["inconsistency"])
    assert res.curves["inconsistency"]["x"] == list(range(1, cfg.rounds + 1))
    assert (tmp_path / "server.pt").exists() and any((tmp_path / "clients").iterdir())  # checkpoint + client state
