"""Every registered method: consistent catalogue entry, and (when implemented) a smoke run whose
results validate against the schema, with arms, metrics and claims that agree."""

import json
from pathlib import Path

import pytest

from tenfold.experiments import METHODS
from tenfold.harness.experiment import MODES
from tenfold.harness.runner import resolve_config, run_experiment
from tenfold.harness.schema import validate_results

IMPLEMENTED = [n for n in METHODS if METHODS.get(n).implemented]
# slow because every unit starts Ray (~20-60 s each); fedmitr's own tests run its smoke with resume, fedinit's run
# one experiment unit on Flower (tests/federated/test_experiment.py) and a real deployment; ssr's smoke run (~30 s,
# SmolLM2) is run and checked arm by arm in tests/merging/test_ssr_experiment.py
COVERED_ELSEWHERE = {"fedmitr", "fedinit", "ssr"}
SMOKE = [pytest.param(n, marks=pytest.mark.slow) if n in COVERED_ELSEWHERE else n for n in IMPLEMENTED]


@pytest.mark.parametrize("name", list(METHODS))
def test_catalogue_entry(name):
    info = METHODS.get(name)
    assert info.name == name and 1 <= info.number <= 10 and info.arxiv.count(".") == 1


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_experiment_declaration(name):
    exp = METHODS.get(name).load()
    assert exp.name == name and exp.summary
    for mode in MODES:
        cfg = resolve_config(exp, mode)
        exp.check_claims(list(exp.arms(cfg)))
    assert exp.seeds["quick"] >= 3 and exp.seeds["full"] >= 3


@pytest.mark.parametrize("name", SMOKE)
def test_smoke_run_validates(name, tmp_path):
    info = METHODS.get(name)
    path = run_experiment(info.load(), info.paper(), mode="smoke", out_dir=tmp_path, progress=False)
    res = json.loads(path.read_text())
    validate_results(res)
    assert res["status"] == "complete" and all(c["verdict"] == "inconclusive" for c in res["claims"])
    assert all(a["mean"] for a in res["arms"])


COMMITTED = sorted((Path(__file__).resolve().parents[1] / "docs" / "results").glob("**/results.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.parent.relative_to(p.parents[2])))
def test_committed_results_validate(path):
    res = json.loads(path.read_text())
    validate_results(res)
    assert res["method"] in METHODS and res["status"] == "complete"
