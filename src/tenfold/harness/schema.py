"""The results JSON Schemas shipped with the package (`tenfold.results/2`, and `/1` for older files), a validator,
and the upgrade from `/1` to `/2`.

`/2` adds, per claim, the evaluated regime checks (`regime`), what the paper reports (`paper`) and the verdict
*untestable*; and, per file, the mode's declared budget (`budget_s`). The report reads both versions: a `/1` file
is upgraded in memory with `upgrade_v1` (no regime checks, paper numbers "not recorded"). `rejudge` rewrites a
`/1` or `/2` file as `/2` with the experiment's current regime checks evaluated on the stored per-seed metrics,
which is what the run itself would have recorded (checks and verdicts use nothing else).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

CURRENT = "tenfold.results/2"
_FILES = {"tenfold.results/2": "results.schema.json", "tenfold.results/1": "results.schema.v1.json"}
SCHEMA_IDS = tuple(_FILES)


def results_schema(schema_id: str = CURRENT) -> dict:
    if schema_id not in _FILES:
        raise ValueError(f"Invalid schema id: {schema_id!r}; expected one of {', '.join(_FILES)}")
    return json.loads(resources.files("tenfold.harness").joinpath(_FILES[schema_id]).read_text())


def _load(obj_or_path) -> dict:
    return json.loads(Path(obj_or_path).read_text()) if isinstance(obj_or_path, (str, Path)) else obj_or_path


def validate_results(obj_or_path, schema_id: str | None = CURRENT) -> None:
    """Raise `jsonschema.ValidationError` unless the results (dict or path) match the schema.

    `schema_id` defaults to the current `/2`; pass None to validate against whichever version the file declares.
    """
    import jsonschema

    obj = _load(obj_or_path)
    jsonschema.validate(obj, results_schema(obj.get("schema", CURRENT) if schema_id is None else schema_id))


NOT_RECORDED = {"reported": False, "value": None, "metric": "", "setting": "",
                "source": "not recorded (tenfold.results/1 file)"}


def upgrade_v1(obj: dict) -> dict:
    """A `/1` results dict in the `/2` shape, without evaluating anything (for reading old files)."""
    if obj.get("schema") != "tenfold.results/1":
        return obj
    out = {**obj, "schema": CURRENT, "budget_s": obj.get("budget_s")}
    out["claims"] = [{**c, "regime": c.get("regime", []), "paper": c.get("paper", dict(NOT_RECORDED))}
                     for c in obj["claims"]]
    return out


def rejudge(obj: dict, exp, paper_results: Mapping[str, Any] | None = None) -> dict:
    """Rewrite a `/1` or `/2` results dict as `/2` for experiment `exp`: re-judge each stored claim from the stored
    per-seed metrics with the claim's current regime checks, and attach the paper's numbers.

    The stored claim's arms, metric, direction and margin are kept (the run was judged by them); a stored claim
    the experiment no longer declares keeps its verdict and gets no regime checks. Without regime checks the
    re-judged verdict equals the stored one (same rule, same numbers); a mismatch raises.
    """
    from tenfold.harness.experiment import Claim
    from tenfold.harness.runner import judge_claim

    out = dict(upgrade_v1(obj))  # a copy: the caller's dict keeps its stored verdicts (the CLI reports changes)
    if out["method"] != exp.name:
        raise ValueError(f"Invalid results: method {out['method']!r} is not experiment {exp.name!r}")
    out["budget_s"] = exp.budget_s.get(out["mode"])
    declared = {c.id: c for c in exp.claims}
    per_seed = {a["name"]: a["per_seed"] for a in out["arms"]}
    claims = []
    for stored in out["claims"]:
        now = declared.get(stored["id"])
        c = Claim(stored["id"], stored["statement"], stored["metric"], stored["method_arm"], stored["baseline_arm"],
                  stored["direction"], stored["margin"], regime=now.regime if now is not None else ())
        paper = (paper_results or {}).get(stored["id"])
        new = judge_claim(c, per_seed, out["mode"], stored["unit"], paper)
        if not c.regime and stored["verdict"] != "untestable" and new["verdict"] != stored["verdict"]:
            raise ValueError(f"{exp.name} claim {c.id}: re-judged verdict {new['verdict']} differs from the stored "
                             f"{stored['verdict']}")
        claims.append(new)
    out["claims"] = claims
    return out
