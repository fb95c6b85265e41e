from dataclasses import dataclass
from typing import Literal

import pytest

from tenfold.common.config import apply_overrides, describe, field
from tenfold.common.errors import UserError


@dataclass
class Cfg:
    lr: float = field(1e-3, help="step size")
    steps: int = field(10, help="number of steps")
    fused: bool = field(False, help="use the fused kernel")
    kind: Literal["a", "b"] = field("a", help="variant")
    widths: tuple[int, ...] = field((1, 2), help="layer widths")
    name: str = field("x", help="a name")
    opt: float | None = field(None, help="optional")


@pytest.mark.parametrize("item, key, value", [
    ("lr=0.5", "lr", 0.5), ("steps=3", "steps", 3), ("fused=true", "fused", True), ("fused=0", "fused", False),
    ("kind=b", "kind", "b"), ("widths=4,5,6", "widths", (4, 5, 6)), ("name=hello=world", "name", "hello=world"),
    ("opt=none", "opt", None), ("opt=2.5", "opt", 2.5),
])
def test_override_parses_by_type(item, key, value):
    assert getattr(apply_overrides(Cfg(), [item]), key) == value


@pytest.mark.parametrize("item, fragment", [
    ("steps=1.5", "Invalid steps"), ("fused=maybe", "Invalid fused"), ("kind=c", "expected one of a, b"),
    ("nosuch=1", "Unknown config key 'nosuch'"), ("lr", "expected key=value"),
])
def test_override_errors_name_the_parameter(item, fragment):
    with pytest.raises(UserError, match=fragment):
        apply_overrides(Cfg(), [item])


def test_overrides_do_not_mutate_and_accept_typed_dicts():
    base = Cfg()
    new = apply_overrides(base, {"steps": 99})
    assert base.steps == 10 and new.steps == 99


def test_describe_lists_help():
    rows = {name: help for name, _, _, help in describe(Cfg)}
    assert rows["lr"] == "step size" and len(rows) == 7
