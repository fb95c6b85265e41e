"""End to end: registry -> run -> results.json valid against the schema -> report with an embedded plot,
plus resume after an interrupt, determinism, and mid-unit checkpoints."""

import json

import pytest
from harness.toy_experiment import PAPER, TOY

from tenfold.harness.report import write_report
from tenfold.harness.runner import run_experiment
from tenfold.harness.schema import validate_results

CATALOG = [{"name": "toy", "number": 0, "title": "Toy", "arxiv": "0", "implemented": True},
           {"name": "later", "number": 11, "title": "Later", "arxiv": "1", "implemented": False}]


@pytest.fixture
def counted():
    """Record every (arm, seed) the runner actually computes (TOY is frozen, hence object.__setattr__)."""
    calls, original = [], TOY.run_unit

    def wrapped(arm, seed, cfg, ctx):
        calls.append((arm.name, seed))
        return original(arm, seed, cfg, ctx)

    object.__setattr__(TOY, "run_unit", wrapped)
    yield calls
    object.__setattr__(TOY, "run_unit", original)


def test_run_validates_and_reports(tmp_path, counted):
    path = run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False)
    res = json.loads(path.read_text())
    validate_results(res)
    assert res["status"] == "complete" and len(counted) == 6
    assert {c["verdict"] for c in res["claims"]} <= {"held", "not_held", "inconclusive"}
    assert res["claims"][0]["verdict"] == "held"  # lr 0.5 beats lr 0.01 on loss on every seed, by far
    assert "weight_norm.png" in res["plots"] and "curve_loss.png" in res["plots"]
    md, page = write_report(tmp_path, CATALOG)
    text = md.read_text()
    assert "toy" in text and "Missing methods" in text and "later (11)" in text
    assert "data:image/png;base64," in page.read_text()


def test_same_seed_same_metrics(tmp_path):
    a = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path / "a", progress=False).read_text())
    b = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path / "b", progress=False).read_text())
    assert [x["per_seed"] for x in a["arms"]] == [x["per_seed"] for x in b["arms"]]
    assert all(c["verdict"] == "inconclusive" for c in a["claims"])  # smoke


def test_interrupt_then_resume_loses_and_recomputes_nothing(tmp_path, counted):
    def stop_after_first(arm, seed):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False, on_unit_done=stop_after_first)
    assert len(counted) == 1
    partial = json.loads((tmp_path / "toy" / "results.json").read_text())
    validate_results(partial)
    assert partial["status"] == "partial"
    first = partial["arms"][0]["per_seed"]["0"]
    run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False)
    assert len(counted) == 6 and counted.count(counted[0]) == 1  # the finished unit was not rerun
    final = json.loads((tmp_path / "toy" / "results.json").read_text())
    assert final["status"] == "complete" and final["arms"][0]["per_seed"]["0"] == first


def test_changed_config_is_refused_and_fresh_discards(tmp_path, counted):
    """Issue 21: another config (or mode) never silently replaces a folder's results; --fresh does, explicitly."""
    from tenfold.harness.runner import IncompatibleResults

    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False)
    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False)
    assert len(counted) == 2
    before = (tmp_path / "toy" / "results.json").read_text()
    for kw in ({"mode": "smoke", "overrides": ["steps=21"]}, {"mode": "quick"}):
        with pytest.raises(IncompatibleResults, match="--fresh"):
            run_experiment(TOY, PAPER, out_dir=tmp_path, progress=False, **kw)
    assert len(counted) == 2 and (tmp_path / "toy" / "results.json").read_text() == before
    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False, overrides=["steps=21"], fresh=True)
    assert len(counted) == 4
    from tenfold.harness.runner import fingerprint, resolve_config

    held = json.loads((tmp_path / "toy" / "run.json").read_text())
    assert held["mode"] == "smoke"
    assert held["fingerprint"] == fingerprint(resolve_config(TOY, "smoke", ["steps=21"]), "smoke")


def test_fewer_seeds_are_refused_more_extend(tmp_path, counted):
    from tenfold.harness.runner import IncompatibleResults

    run_experiment(TOY, PAPER, mode="smoke", seeds=2, out_dir=tmp_path, progress=False)
    with pytest.raises(IncompatibleResults, match="--seeds 2"):
        run_experiment(TOY, PAPER, mode="smoke", seeds=1, out_dir=tmp_path, progress=False)
    n = len(counted)
    r = json.loads(run_experiment(TOY, PAPER, mode="smoke", seeds=3, out_dir=tmp_path, progress=False).read_text())
    assert r["seeds"] == [0, 1, 2] and len(counted) == n + n // 2  # only the third seed's units ran


def test_mid_unit_checkpoint_resume_is_exact(tmp_path):
    """A unit interrupted after a checkpoint resumes from it and ends where an uninterrupted run ends."""
    from tenfold.common.checkpoint import load_checkpoint

    ref = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path / "ref", progress=False).read_text())

    out = tmp_path / "cut"
    original = TOY.run_unit

    def crash_after_checkpoint(arm, seed, cfg, ctx):
        from dataclasses import replace

        original(arm, seed, replace(cfg, steps=cfg.checkpoint_every), ctx)  # runs to the first checkpoint
        raise KeyboardInterrupt

    object.__setattr__(TOY, "run_unit", crash_after_checkpoint)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(TOY, PAPER, mode="smoke", out_dir=out, progress=False, overrides=["checkpoint_every=10"])
    finally:
        object.__setattr__(TOY, "run_unit", original)
    assert load_checkpoint(out / "toy" / "work" / "fast__seed0" / "checkpoint.pt", restore_rng=False)["step"] == 10
    ref2 = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path / "ref2", progress=False,
                                     overrides=["checkpoint_every=10"]).read_text())
    got = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=out, progress=False,
                                    overrides=["checkpoint_every=10"]).read_text())
    assert got["arms"][0]["per_seed"] == ref2["arms"][0]["per_seed"]
    assert ref["arms"][0]["per_seed"].keys() == got["arms"][0]["per_seed"].keys()


def test_derived_metrics_compare_units_without_rerunning_them(tmp_path, counted):
    import dataclasses

    from tenfold.harness import Claim, Metric

    def derive(units, cfg):
        # gap to the other arm's final loss in the same seed (a cross-unit metric)
        out = {}
        for (arm, seed), rec in units.items():
            other = units[("slow" if arm == "fast" else "fast", seed)]["metrics"]["final_loss"]
            out[(arm, seed)] = {"loss_gap": rec["metrics"]["final_loss"] - other}
        return out

    exp = dataclasses.replace(TOY, metrics=[*TOY.metrics, Metric("loss_gap", "nats", False)],
                              claims=[*TOY.claims, Claim("gap", "toy gap", "loss_gap", "fast", "slow", "lower")])
    object.__setattr__(exp, "run_unit", TOY.run_unit)  # counted
    plain = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False).read_text())
    assert len(counted) == 2
    res = json.loads(run_experiment(dataclasses.replace(exp, derive=derive), PAPER, mode="smoke", out_dir=tmp_path,
                                    progress=False).read_text())
    assert len(counted) == 2  # the stored units were reused: the derived metric needs no rerun
    validate_results(res)
    by = {a["name"]: a["per_seed"]["0"] for a in res["arms"]}
    loss = {a["name"]: a["per_seed"]["0"]["final_loss"] for a in plain["arms"]}
    assert by["fast"]["loss_gap"] == pytest.approx(loss["fast"] - loss["slow"]) == -by["slow"]["loss_gap"]
    unit = json.loads((tmp_path / "toy" / "units" / "fast__seed0.json").read_text())
    assert "loss_gap" not in unit["metrics"]  # stored units are left as measured
    with pytest.raises(ValueError, match="undeclared metrics"):
        run_experiment(dataclasses.replace(TOY, derive=derive), PAPER, mode="smoke", out_dir=tmp_path, progress=False)


def test_a_unit_that_changes_the_thread_count_does_not_leak_it(tmp_path):
    """FedMITR's units set one torch thread; the methods after it in `reproduce all` ran single-threaded."""
    import torch

    original = TOY.run_unit

    def one_thread(arm, seed, cfg, ctx):
        torch.set_num_threads(1)
        return original(arm, seed, cfg, ctx)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    object.__setattr__(TOY, "run_unit", one_thread)
    try:
        run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        object.__setattr__(TOY, "run_unit", original)
        torch.set_num_threads(before)


def test_finished_units_work_folders_are_removed_unless_kept(tmp_path):
    """Issue 21: a smoke run left 257 MB of mid-unit checkpoints behind."""
    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path / "a", progress=False)
    work = tmp_path / "a" / "toy" / "work"
    assert not work.exists() or not [p for p in work.iterdir() if p.is_dir()]
    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path / "b", progress=False, keep_work=True)
    kept = [p.name for p in (tmp_path / "b" / "toy" / "work").iterdir() if p.is_dir()]
    assert sorted(kept) == ["fast__seed0", "slow__seed0"]


def test_units_record_the_fixed_thread_count(tmp_path):
    import torch

    before = torch.get_num_threads()
    r = json.loads(run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False, threads=1).read_text())
    assert r["environment"]["threads"] == 1 and torch.get_num_threads() == before
    units = [json.loads(p.read_text()) for p in (tmp_path / "toy" / "units").glob("*.json")]
    assert units and {u["threads"] for u in units} == {1}


def test_worker_crash_and_unit_error_are_reported_not_hung(tmp_path):
    """Units in worker processes (what `tenfold reproduce` does): a crashed worker (issue 21 saw a segfault) is a
    WorkerDied naming the signal; an exception comes back as UnitFailed with the worker's traceback."""
    import dataclasses

    from harness.toy_experiment import crash_unit, failing_unit

    from tenfold.harness.workers import UnitFailed, WorkerDied

    with pytest.raises(WorkerDied, match="signal 11"):
        run_experiment(dataclasses.replace(TOY, run_unit=crash_unit), PAPER, mode="smoke", out_dir=tmp_path / "a",
                       progress=False, workers=1)
    with pytest.raises(UnitFailed, match="toy failure in") as err:
        run_experiment(dataclasses.replace(TOY, run_unit=failing_unit), PAPER, mode="smoke", out_dir=tmp_path / "b",
                       progress=False, workers=1)
    assert "worker traceback" in str(err.value) and "ValueError" in str(err.value)


def test_an_attempt_that_finishes_no_unit_leaves_no_claim_on_the_folder(tmp_path):
    """Review of issue 21: run.json used to be written before any work, so an aborted `--seeds 30` locked the folder
    to 30 seeds. Now it records only what finished: seeds with a finished unit, the thread count, time spent."""
    import dataclasses

    from harness.toy_experiment import failing_unit

    from tenfold.harness.runner import IncompatibleResults

    with pytest.raises(ValueError, match="toy failure"):
        run_experiment(dataclasses.replace(TOY, run_unit=failing_unit), PAPER, mode="smoke", seeds=30,
                       out_dir=tmp_path, progress=False)
    assert not (tmp_path / "toy" / "run.json").exists()
    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False, threads=1)  # 1 seed: accepted
    held = json.loads((tmp_path / "toy" / "run.json").read_text())
    assert held["seeds"] == 1 and held["threads"] == 1 and held["elapsed_s"] > 0
    with pytest.raises(IncompatibleResults, match="--threads 1"):  # mixing thread counts is refused
        run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False, threads=2, seeds=2)


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    from tenfold.common.errors import UserError
    from tenfold.harness.runner import _lock

    (tmp_path / "toy").mkdir()
    held = _lock(tmp_path / "toy")  # as a run in progress holds it
    try:
        with pytest.raises(UserError, match="another tenfold run is using"):
            run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False)
    finally:
        held.close()
    run_experiment(TOY, PAPER, mode="smoke", out_dir=tmp_path, progress=False)  # free again
