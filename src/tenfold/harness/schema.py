"""The `tenfold.results/1` JSON Schema shipped with the package, and a validator for result files."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def results_schema() -> dict:
    return json.loads(resources.files("tenfold.harness").joinpath("results.schema.json").read_text())


def validate_results(obj_or_path) -> None:
    """Raise `jsonschema.ValidationError` unless the results (dict or path) match the schema."""
    import jsonschema

    obj = json.loads(Path(obj_or_path).read_text()) if isinstance(obj_or_path, (str, Path)) else obj_or_path
    jsonschema.validate(obj, results_schema())
