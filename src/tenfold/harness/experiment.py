"""What an experiment declares: its arms, metrics, claims, per-mode budgets, and one unit of work.

A reproduction is an `Experiment` (a frozen dataclass with callbacks, not a subclass). The runner calls
`run_unit(arm, seed, cfg, ctx)` once per (arm, seed) and records what it returns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

Role = Literal["method", "baseline", "ablation", "reference"]
ROLES = ("method", "baseline", "ablation", "reference")
MODES = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Arm:
    """One configuration compared in an experiment.

    Parameters
    ----------
    name : str
        Short identifier, unique within the experiment (used in file names).
    role : {"method", "baseline", "ablation", "reference"}
    label : str, default=""
        Display name for tables and plots (defaults to `name`).
    params : Mapping, default={}
        Arm-specific settings that `run_unit` reads.
    """

    name: str
    role: Role
    label: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"Invalid role: {self.role!r}; expected one of {', '.join(ROLES)}")
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"Invalid arm name: {self.name!r}; use letters, digits, '-' and '_'")

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Metric:
    """A recorded number: its unit and which direction is better."""

    name: str
    unit: str
    higher_is_better: bool
    description: str = ""


@dataclass(frozen=True)
class Claim:
    """A paper's claim, turned into a paired comparison of two arms on one metric.

    Parameters
    ----------
    id : str
        Short identifier, unique within the experiment.
    statement : str
        The paper's claim, paraphrased, with its source.
    metric : str
        Name of a declared `Metric`.
    method, baseline : str
        Arm names; the difference is taken per seed (paired).
    direction : {"higher", "lower"}
        Which way the claim says `method` beats `baseline` on `metric`.
    margin : float, default=0.0
        Non-inferiority tolerance in the metric's unit: with margin m the claim is "method is not worse
        than baseline by more than m" (for claims of the "comparable to" kind). 0 means "strictly better".
    """

    id: str
    statement: str
    metric: str
    method: str
    baseline: str
    direction: Literal["higher", "lower"]
    margin: float = 0.0

    def __post_init__(self):
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"Invalid direction: {self.direction!r}; expected 'higher' or 'lower'")
        if self.margin < 0:
            raise ValueError(f"Invalid margin: {self.margin}; expected >= 0")


@dataclass
class UnitResult:
    """What one (arm, seed) unit returns.

    metrics : dict name -> float (each name declared as a `Metric`)
    curves : dict name -> {"x": [...], "y": [...], "xlabel": str, "ylabel": str}
    extra : JSON-ready data the experiment's own plot function reads back (e.g. histograms)
    """

    metrics: dict[str, float]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _silent_bar(iterable=None, **kwargs):
    """A disabled tqdm bar: iterates like `iterable` and accepts .n/.refresh()/.close() like a real one."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=True, **kwargs)


@dataclass
class UnitContext:
    """Services the runner hands to `run_unit`.

    work_dir : a folder private to this (arm, seed) unit, kept across interrupted runs: put
        mid-unit checkpoints here to resume long units.
    cache_dir : shared cache (data sets, pretrained models) for every method.
    device : "cpu" or "cuda".
    progress : wraps an iterable in a nested progress bar (a no-op when bars are off).
    """

    work_dir: Path
    cache_dir: Path
    device: str
    mode: str
    progress: Callable[..., Iterable] = field(default_factory=lambda: _silent_bar)
    notes: list[str] = field(default_factory=list)

    @property
    def checkpoint_path(self) -> Path:
        return self.work_dir / "checkpoint.pt"


@dataclass(frozen=True)
class Experiment:
    """A reproduction of one paper's headline claims.

    Parameters
    ----------
    name : str
        The method's registry name (e.g. "gce").
    config_cls : type
        The experiment's config dataclass; every field has a default.
    modes : Mapping[str, Mapping[str, Any]]
        Config overrides per mode ("smoke", "quick", "full"): the budget.
    seeds : Mapping[str, int]
        Default number of seeds per mode.
    arms : Callable[[config], Sequence[Arm]]
        The arms to run under a config.
    metrics : Sequence[Metric]
    claims : Sequence[Claim]
    run_unit : Callable[[Arm, int, config, UnitContext], UnitResult]
    plot : Callable[[dict, Path], list[Path]] or None
        Extra plots from the aggregated results dict, written into the given folder.
    derive : Callable[[dict, config], dict] or None
        Metrics that compare units with each other (e.g. steps to reach another arm's final loss in the same
        seed). Called at aggregation with {(arm, seed): unit record} and the config; returns
        {(arm, seed): {metric: value}}, added to those units' metrics (declared metrics only). Because they are
        computed from stored units, they need no rerun and are always consistent with the units they read.
    summary : str
        One paragraph for the report: the set-up at our scale and how it differs from the paper.
    """

    name: str
    config_cls: type
    modes: Mapping[str, Mapping[str, Any]]
    arms: Callable[[Any], Sequence[Arm]]
    metrics: Sequence[Metric]
    claims: Sequence[Claim]
    run_unit: Callable[[Arm, int, Any, UnitContext], UnitResult]
    seeds: Mapping[str, int] = field(default_factory=lambda: {"smoke": 1, "quick": 3, "full": 5})
    plot: Callable[[dict, Path], list[Path]] | None = None
    summary: str = ""
    derive: Callable[[dict, Any], dict] | None = None

    def __post_init__(self):
        missing = [m for m in MODES if m not in self.modes]
        if missing:
            raise ValueError(f"experiment {self.name}: modes missing {missing}")
        names = {m.name for m in self.metrics}
        for c in self.claims:
            if c.metric not in names:
                raise ValueError(f"claim {c.id}: unknown metric {c.metric!r}")

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def check_claims(self, arms: Sequence[Arm]) -> None:
        """Every claim must compare two arms that exist under this config."""
        names = {a.name for a in arms}
        if len(names) != len(arms):
            raise ValueError(f"experiment {self.name}: duplicate arm names")
        for c in self.claims:
            for a in (c.method, c.baseline):
                if a not in names:
                    raise ValueError(f"claim {c.id}: unknown arm {a!r}")


def replace(obj, **kw):
    """`dataclasses.replace`, re-exported for experiment modules."""
    return dataclasses.replace(obj, **kw)
