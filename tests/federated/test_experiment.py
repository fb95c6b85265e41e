"""One unit of the FedInit reproduction (in process), checked end to end; the metrics' definitions."""

import math

import pytest

from tenfold.common.config import apply_overrides
from tenfold.experiments.fedinit import EXPERIMENT, curve_metrics
from tenfold.harness import UnitContext

pytest.importorskip("flwr")


def test_one_fedinit_unit_in_process(tmp_path):
    cfg = apply_overrides(EXPERIMENT.config_cls(), dict(EXPERIMENT.modes["smoke"]))
    arm = next(a for a in EXPERIMENT.arms(cfg) if a.name == "scaffold_fedinit")
    ctx = UnitContext(work_dir=tmp_path, cache_dir=tmp_path, device="cpu", mode="smoke")
    res = EXPERIMENT.run_unit(arm, 0, cfg, ctx)
    assert set(res.metrics) == {m.name for m in EXPERIMENT.metrics}
    assert 0 <= res.metrics["best_acc"] <= 100 and res.metrics["best_acc"] >= res.metrics["final_acc"] - 1e-9
    assert math.isfinite(res.metrics["divergence"]) and res.metrics["divergence"] > 0
    assert res.metrics["gen_gap"] == pytest.approx(res.metrics["train_acc"] - res.curves["test_accuracy"]["y"][-1])
    assert res.curves["divergence"]["x"] == list(range(1, cfg.rounds + 1))
    assert res.extra["split"]["per_client"] == cfg.n_train // cfg.n_clients
    assert (tmp_path / "server.pt").exists() and not ctx.notes  # the unit checkpoint; no client failed


def test_curve_metrics_take_tenths_of_the_evaluations():
    evals = [{"round": 5 * (i + 1), "test_acc": float(a)} for i, a in enumerate(range(20))]  # 0..19
    m = curve_metrics(evals)
    assert m["best_acc"] == 19 and m["best_round"] == 100
    assert m["final_acc"] == pytest.approx(18.5) and m["late_gain"] == pytest.approx(2.0)  # (18,19) vs (16,17)
    one = curve_metrics(evals[:1])
    assert one["final_acc"] == 0 and math.isnan(one["late_gain"])


def test_arms_cover_the_protocol_in_full_mode():
    full = apply_overrides(EXPERIMENT.config_cls(), dict(EXPERIMENT.modes["full"]))
    names = [a.name for a in EXPERIMENT.arms(full)]
    assert names == ["fedavg", "fedinit", "fedinit_b0p05", "fedinit_b0p2", "scaffold", "scaffold_fedinit",
                     "mnist_fedavg", "mnist_fedavg_fedinit", "mnist_scaffold", "mnist_scaffold_fedinit"]
    quick = apply_overrides(EXPERIMENT.config_cls(), dict(EXPERIMENT.modes["quick"]))
    assert [a.name for a in EXPERIMENT.arms(quick)] == ["fedavg", "fedinit", "scaffold", "scaffold_fedinit"]
