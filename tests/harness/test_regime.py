"""Regime checks (preconditions) on claims, the verdict *untestable*, schema /2 and the /1 -> /2 upgrade."""

import copy
import dataclasses
import json

import pytest
from harness.toy_experiment import PAPER, TOY

from tenfold.harness import Claim, PaperResult, Regime
from tenfold.harness.runner import run_experiment
from tenfold.harness.schema import rejudge, upgrade_v1, validate_results
from tenfold.harness.verdict import judge

PER_SEED = {"ce": {"0": {"t": 1.4, "acc": 80.0}, "1": {"t": 1.2, "acc": 82.0}},
            "ce_lt": {"0": {"t": 0.9, "acc": 60.0}, "1": {"t": 0.7, "acc": 61.0}},
            "zs": {"0": {"acc": 70.0}, "1": {"acc": 80.0}}}


def test_regime_single_arm_mean_over_seeds():
    r = Regime("over", "t", ("ce",), ">", 1.0, "the paper is about over-confidence").evaluate(PER_SEED)
    assert r["value"] == pytest.approx(1.3) and r["passed"] is True and r["per_arm"] == {"ce": pytest.approx(1.3)}


def test_regime_every_arm_must_pass_worst_case_counts():
    r = Regime("over", "t", ("ce", "ce_lt"), ">", 1.0, "why").evaluate(PER_SEED)
    assert r["value"] == pytest.approx(0.8) and r["passed"] is False
    r = Regime("small", "t", ("ce", "ce_lt"), "<=", 1.3, "why").evaluate(PER_SEED)
    assert r["value"] == pytest.approx(1.3) and r["passed"] is True  # the largest counts for "<="


def test_regime_relative_to_is_paired_by_seed():
    r = Regime("learns", "acc", "ce", ">=", 3.0, "why", relative_to="zs").evaluate(PER_SEED)
    assert r["value"] == pytest.approx((10.0 + 2.0) / 2) and r["passed"] is True


def test_regime_unmeasured_is_none():
    r = Regime("gone", "missing_metric", ("ce",), ">", 0, "why").evaluate(PER_SEED)
    assert r["value"] is None and r["passed"] is None


@pytest.mark.parametrize("kw, msg", [({"op": "=="}, "Invalid op"), ({"arms": ()}, "Invalid arms"),
                                     ({"why": " "}, "Invalid why"), ({"name": "a b"}, "Invalid regime name")])
def test_regime_refuses_bad_declarations(kw, msg):
    args = {"name": "x", "metric": "t", "arms": ("ce",), "op": ">", "threshold": 1.0, "why": "because"} | kw
    with pytest.raises(ValueError, match=msg):
        Regime(**args)


CLAIM = Claim("c", "statement", "acc", "ce", "zs", "higher")


@pytest.mark.parametrize("passed, mode, verdict", [(False, "quick", "untestable"), (None, "full", "untestable"),
                                                   (False, "smoke", "inconclusive"), (True, "quick", "held")])
def test_failed_or_unmeasured_check_makes_untestable(passed, mode, verdict):
    m, b = {"0": 5.0, "1": 6.0, "2": 7.0}, {"0": 1.0, "1": 1.0, "2": 1.0}
    reg = [{"name": "r", "passed": passed, "value": 0.5 if passed is not None else None, "op": ">", "threshold": 1.0,
            "description": "mean t of ce > 1", "why": "the paper's regime"}]
    j = judge(CLAIM, m, b, mode, reg)
    assert j["verdict"] == verdict
    if verdict == "untestable":
        assert "regime check r" in j["reason"] and "the paper's regime" in j["reason"]
        assert ("measured 0.5, needs > 1" in j["reason"]) == (passed is False)
    assert j["evidence"]["diff_mean"] == pytest.approx(5.0)  # the evidence is kept either way


def _toy_with(regime):
    claims = [dataclasses.replace(TOY.claims[0], regime=regime), TOY.claims[1]]
    return dataclasses.replace(TOY, claims=claims)


def test_run_records_regime_paper_and_untestable(tmp_path):
    # "fast" lowers the loss by far on every seed: a threshold no run can meet makes the claim untestable
    exp = _toy_with(Regime("impossible", "accuracy", ("slow",), ">", 101.0, "needs a learner above 100%"))
    paper = {"faster": PaperResult("+3 points", metric="accuracy", setting="toy", source="Table 1")}
    path = run_experiment(exp, PAPER, mode="quick", out_dir=tmp_path, progress=False, paper_results=paper)
    res = json.loads(path.read_text())
    validate_results(res)
    assert res["schema"] == "tenfold.results/2" and res["budget_s"] == TOY.budget_s["quick"]
    c0, c1 = res["claims"]
    assert c0["verdict"] == "untestable" and c0["regime"][0]["passed"] is False
    assert c0["evidence"]["n"] == 3 and "needs > 101" in c0["reason"]
    assert c0["paper"] == {"reported": True, "value": "+3 points", "metric": "accuracy", "setting": "toy",
                           "source": "Table 1"}
    assert c1["regime"] == [] and c1["paper"]["reported"] is False


def test_passing_check_leaves_the_verdict_to_the_rule(tmp_path):
    exp = _toy_with(Regime("learns", "accuracy", ("fast",), ">", 50.0, "a learner that learns"))
    res = json.loads(run_experiment(exp, PAPER, mode="quick", out_dir=tmp_path, progress=False).read_text())
    assert res["claims"][0]["verdict"] == "held" and res["claims"][0]["regime"][0]["passed"] is True


def test_check_on_unknown_arm_or_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metric"):
        _toy_with(Regime("r", "nope", ("fast",), ">", 0, "why"))
    with pytest.raises(ValueError, match="unknown arm"):
        _toy_with(Regime("r", "accuracy", ("nope",), ">", 0, "why")).check_claims(TOY.arms(None))


def _as_v1(res: dict) -> dict:
    old = copy.deepcopy(res)
    old["schema"] = "tenfold.results/1"
    old.pop("budget_s")
    for c in old["claims"]:
        c.pop("regime"), c.pop("paper")
    return old


def test_v1_files_upgrade_and_rejudge(tmp_path):
    res = json.loads(run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False).read_text())
    old = _as_v1(res)
    validate_results(old, schema_id="tenfold.results/1")
    validate_results(old, schema_id=None)  # by the version the file declares
    with pytest.raises(Exception):
        validate_results(old)  # not /2
    up = upgrade_v1(old)
    validate_results(up)
    assert [c["verdict"] for c in up["claims"]] == [c["verdict"] for c in res["claims"]]
    # rejudged with a check declared now: the stored per-seed metrics decide it, nothing is rerun
    exp = _toy_with(Regime("impossible", "accuracy", ("slow",), ">", 101.0, "why"))
    new = rejudge(old, exp, {"acc": PaperResult(None, source="not in the paper")})
    validate_results(new)
    assert new["claims"][0]["verdict"] == "untestable" and new["claims"][1]["verdict"] == res["claims"][1]["verdict"]
    assert new["claims"][1]["paper"]["source"] == "not in the paper"
    again = rejudge(old, TOY)["claims"]  # no checks declared: exactly the run's own claims (paper: not looked up)
    assert [{k: v for k, v in c.items() if k != "paper"} for c in again] == \
        [{k: v for k, v in c.items() if k != "paper"} for c in res["claims"]]


def test_min_stat_fails_when_one_seed_collapsed():
    """stat="min": one collapsed seed (chance accuracy) fails "every seed's network trained", which the mean can
    hide; the stored check says which statistic it used."""
    from tenfold.harness.experiment import Regime

    runs = {"gce": {"0": {"acc": 97.0}, "1": {"acc": 10.0}, "2": {"acc": 98.0}}, "ce": {"0": {"acc": 96.0}}}
    r = Regime("trained", "acc", ("ce", "gce"), ">=", 50.0, "a collapsed network measures nothing", stat="min")
    out = r.evaluate(runs)
    assert out["per_arm"] == {"ce": 96.0, "gce": 10.0} and out["value"] == 10.0 and out["passed"] is False
    assert out["stat"] == "min" and out["description"].startswith("min acc of ce, gce >= 50")
    assert Regime("m", "acc", ("gce",), ">=", 50.0, "why").evaluate(runs)["passed"] is True  # mean 68.3
    with pytest.raises(ValueError, match="stat"):
        Regime("x", "acc", ("gce",), ">=", 1.0, "why", stat="median")


def test_rejudge_leaves_its_input_untouched(tmp_path):
    """`tenfold rejudge` prints each verdict that changed by comparing the stored claims with the new ones; a rejudge
    that rewrote its input in place hid every change (seen in session 19)."""
    stored = json.loads(run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False).read_text())
    before = copy.deepcopy(stored)
    strict = dataclasses.replace(TOY, claims=[dataclasses.replace(c, regime=(Regime(
        "never", TOY.claims[0].metric, (TOY.claims[0].method,), ">", 1e9, "cannot pass"),)) for c in TOY.claims])
    new = rejudge(stored, strict)
    assert stored == before
    assert {c["verdict"] for c in new["claims"]} == {"untestable"}
