"""What an experiment declares: its arms, metrics, claims, per-mode budgets, and one unit of work.

A reproduction is an `Experiment` (a frozen dataclass with callbacks, not a subclass). The runner calls
`run_unit(arm, seed, cfg, ctx)` once per (arm, seed) and records what it returns.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

Role = Literal["method", "baseline", "ablation", "reference"]
ROLES = ("method", "baseline", "ablation", "reference")
MODES = ("smoke", "quick", "full")
QUICK_BUDGET_MAX_S = 150.0  # issue 20: each method's quick mode at most 2.5 minutes on two cores


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
class PaperResult:
    """What the paper itself reports for a claim, shown beside our numbers in the report.

    Parameters
    ----------
    value : str or None
        The reported number as the paper writes it (e.g. "+2.1 points", "0.56x", "ECE 1.2 vs 3.4");
        None when the paper reports no number for this claim (the report says "not reported").
    metric : str, default=""
        The paper's metric (e.g. "top-1 accuracy [%]").
    setting : str, default=""
        The paper's setting: model, data, scale (e.g. "ViT-S, CIFAR-10, Dir(0.1), 10 clients").
    source : str, default=""
        Where the number is: "abstract", "Table 2", "official README", a fidelity note ...
    """

    value: str | None
    metric: str = ""
    setting: str = ""
    source: str = ""

    @property
    def reported(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict:
        return {"reported": self.reported, "value": self.value, "metric": self.metric, "setting": self.setting,
                "source": self.source}


_OPS = {">": lambda v, t: v > t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t, "<=": lambda v, t: v <= t}


@dataclass(frozen=True)
class Regime:
    """A claim's precondition: the regime in which the paper's effect can exist, measured in the same run.

    The check's value is computed from the run's own per-seed metrics: for each arm in `arms`, the mean over
    seeds of `metric` (minus `relative_to`'s value in the same seed, when given); with several arms, the worst
    of them counts (the smallest for ">"/">=", the largest for "<"/"<="), so "on every data set" is one check.
    When the check fails, or cannot be computed, the claim's verdict is *untestable*. Checks are declared with
    the experiment, before any run, and their thresholds are never tuned after seeing results.

    Parameters
    ----------
    name : str
        Short identifier (letters, digits, '_'), shown in `tenfold list` and the report.
    metric : str
        A declared metric.
    arms : tuple of str
        The arms whose metric is checked (every one must pass).
    op : {">", ">=", "<", "<="}
    threshold : float
        In the metric's unit.
    why : str
        One sentence: why the claim cannot be tested outside this regime.
    relative_to : str or None, default=None
        An arm subtracted seed by seed (e.g. "MeZO raises accuracy over zero-shot by >= 3 points").
    stat : {"mean", "min", "max"}, default="mean"
        How an arm's per-seed values are summarised: "min" makes "every seed's network trained" one check.

    Examples
    --------
    >>> r = Regime("ce_overconfident", "temperature", ("ce",), ">", 1.0, "the paper is about over-confidence")
    >>> r.evaluate({"ce": {"0": {"temperature": 1.4}, "1": {"temperature": 1.2}}})["passed"]
    True
    """

    name: str
    metric: str
    arms: tuple[str, ...]
    op: Literal[">", ">=", "<", "<="]
    threshold: float
    why: str
    relative_to: str | None = None
    stat: Literal["mean", "min", "max"] = "mean"

    def __post_init__(self):
        if self.stat not in ("mean", "min", "max"):
            raise ValueError(f"Invalid stat: {self.stat!r}; expected mean, min or max")
        if isinstance(self.arms, str):
            object.__setattr__(self, "arms", (self.arms,))
        object.__setattr__(self, "arms", tuple(self.arms))
        if self.op not in _OPS:
            raise ValueError(f"Invalid op: {self.op!r}; expected one of {', '.join(_OPS)}")
        if not self.arms:
            raise ValueError(f"Invalid arms: regime check {self.name!r} needs at least one arm")
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"Invalid regime name: {self.name!r}; use letters, digits and '_'")
        if not self.why.strip():
            raise ValueError(f"Invalid why: regime check {self.name!r} must say why it is needed")

    def describe(self) -> str:
        """One line, e.g. "mean temperature of ce_fmnist, ce_lt > 1 (each arm)"."""
        arms = ", ".join(self.arms)
        rel = f" minus {self.relative_to} (paired by seed)" if self.relative_to else ""
        each = " (every arm)" if len(self.arms) > 1 else ""
        return f"{self.stat} {self.metric} of {arms}{rel} {self.op} {self.threshold:g}{each}"

    def evaluate(self, per_seed_by_arm: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> dict[str, Any]:
        """The check on one run: `per_seed_by_arm` maps arm -> seed -> metric -> value (None = not measured)."""
        per_arm: dict[str, float | None] = {}
        for arm in self.arms:
            vals = []
            for seed, metrics in per_seed_by_arm.get(arm, {}).items():
                v = metrics.get(self.metric)
                if self.relative_to is not None:
                    ref = per_seed_by_arm.get(self.relative_to, {}).get(seed, {}).get(self.metric)
                    v = None if v is None or ref is None else v - ref
                if v is not None and math.isfinite(v):
                    vals.append(v)
            per_arm[arm] = None if not vals else (sum(vals) / len(vals) if self.stat == "mean" else
                                                  min(vals) if self.stat == "min" else max(vals))
        measured = [v for v in per_arm.values() if v is not None]
        if len(measured) < len(self.arms):
            value, passed = None, None
        else:
            value = min(measured) if self.op in (">", ">=") else max(measured)
            passed = bool(_OPS[self.op](value, self.threshold))
        return {"name": self.name, "metric": self.metric, "arms": list(self.arms), "relative_to": self.relative_to,
                "op": self.op, "threshold": self.threshold, "stat": self.stat, "why": self.why,
                "description": self.describe(),
                "per_arm": per_arm, "value": value, "passed": passed}


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
    regime : Regime or tuple of Regime, default=()
        Preconditions measured in the same run; when one fails the verdict is *untestable* (see `Regime`).
    """

    id: str
    statement: str
    metric: str
    method: str
    baseline: str
    direction: Literal["higher", "lower"]
    margin: float = 0.0
    regime: tuple[Regime, ...] = ()

    def __post_init__(self):
        if isinstance(self.regime, Regime):
            object.__setattr__(self, "regime", (self.regime,))
        object.__setattr__(self, "regime", tuple(self.regime))
        if not all(isinstance(r, Regime) for r in self.regime):
            raise ValueError(f"Invalid regime for claim {self.id!r}: expected Regime objects")
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
    budget_s : Mapping[str, float]
        Declared budget per mode: the most the sum of the units' wall times may take, in seconds, on this
        project's reference machine (2 CPU cores, 2 torch threads, warm caches). Quick mode must declare one of
        at most `QUICK_BUDGET_MAX_S` (2.5 minutes); the conformance tests fail when a committed quick run's unit
        times exceed it by more than half.
    parallel_units : bool, default=False
        True when units may run side by side in separate worker processes (`tenfold reproduce --jobs N`): they
        share no work files that two units could compute at once, and they start no multi-process engine of their
        own (Ray). Otherwise the runner uses one worker whatever --jobs says.
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
    budget_s: Mapping[str, float] = field(default_factory=lambda: {"quick": QUICK_BUDGET_MAX_S})
    parallel_units: bool = False

    def __post_init__(self):
        missing = [m for m in MODES if m not in self.modes]
        if missing:
            raise ValueError(f"experiment {self.name}: modes missing {missing}")
        for mode, b in self.budget_s.items():
            if mode not in MODES or not b > 0:
                raise ValueError(f"experiment {self.name}: Invalid budget_s entry {mode!r}: {b!r}; expected a mode "
                                 f"({', '.join(MODES)}) mapped to seconds > 0")
        if self.budget_s.get("quick", 0) > QUICK_BUDGET_MAX_S:
            raise ValueError(f"experiment {self.name}: Invalid budget_s['quick']: {self.budget_s['quick']}; "
                             f"expected at most {QUICK_BUDGET_MAX_S} s")
        names = {m.name for m in self.metrics}
        for c in self.claims:
            if c.metric not in names:
                raise ValueError(f"claim {c.id}: unknown metric {c.metric!r}")
            for r in c.regime:
                if r.metric not in names:
                    raise ValueError(f"claim {c.id}: regime check {r.name}: unknown metric {r.metric!r}")
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError(f"experiment {self.name}: duplicate claim ids")

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
            for r in c.regime:
                for a in (*r.arms, *([r.relative_to] if r.relative_to else [])):
                    if a not in names:
                        raise ValueError(f"claim {c.id}: regime check {r.name}: unknown arm {a!r}")


def replace(obj, **kw):
    """`dataclasses.replace`, re-exported for experiment modules."""
    return dataclasses.replace(obj, **kw)
