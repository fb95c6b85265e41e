"""Run an experiment's (arm, seed) units with resume, then aggregate them into `results.json`.

Layout of one method's output folder::

    DIR/<method>/run.json                    what the folder holds: mode, config fingerprint, seeds, time spent
    DIR/<method>/units/<arm>__seed<k>.json   one finished unit (written atomically)
    DIR/<method>/work/<arm>__seed<k>/        the unit's private folder (mid-unit checkpoints; removed when the
                                             unit is done unless keep_work)
    DIR/<method>/results.json                the aggregate, rewritten after every unit
    DIR/<method>/*.png                       plots

A rerun with the same mode and config skips every finished unit and resumes the others from their checkpoints, so
an interrupted run loses at most the round in progress. A run with another mode or config, or with fewer seeds
than the folder holds, is refused (`IncompatibleResults`) instead of replacing what is there; `fresh=True`
(`--fresh`) discards it explicitly.

Units run in this process (`workers=0`, the library default) or in spawned worker processes (`workers>=1`, what
`tenfold reproduce` does: see `tenfold.harness.workers`) with a fixed thread count per unit, recorded in every
unit, so that the numbers do not depend on the machine's core count.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tenfold.common.atomic import atomic_write_json
from tenfold.common.config import apply_overrides, to_dict
from tenfold.common.errors import UserError, check_choice, check_positive
from tenfold.common.seeding import seed_everything
from tenfold.harness.environment import environment
from tenfold.harness.experiment import MODES, Arm, Claim, Experiment, PaperResult, UnitContext, UnitResult
from tenfold.harness.memory import PeakMemory
from tenfold.harness.schema import CURRENT as SCHEMA_ID  # tenfold.results/2
from tenfold.harness.verdict import judge

# the per-unit thread count of `tenfold reproduce` (the committed results were measured with 2 threads)
DEFAULT_THREADS = 2


class IncompatibleResults(UserError):
    """The output folder holds results of another mode, config or seed count; the run would replace them."""


def resolve_config(exp: Experiment, mode: str, overrides: Sequence[str] = ()) -> Any:
    """The experiment's config for `mode`, with user `key=value` overrides applied on top."""
    check_choice("mode", mode, MODES)
    cfg = apply_overrides(exp.config_cls(), dict(exp.modes[mode]))
    return apply_overrides(cfg, list(overrides))


def fingerprint(cfg: Any, mode: str) -> str:
    return _fingerprint_of(to_dict(cfg), mode)


def _fingerprint_of(config: Mapping[str, Any], mode: str) -> str:
    blob = json.dumps({"mode": mode, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stored_run(method_dir: Path) -> dict | None:
    """{mode, fingerprint, seeds} of what `method_dir` holds (run.json; else an older folder's results.json or
    unit files), or None when it holds nothing."""
    for name in ("run.json", "results.json"):
        try:
            obj = json.loads((method_dir / name).read_text())
        except FileNotFoundError:
            continue
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{method_dir / name}: unreadable ({e}); repair it, or pass --fresh to discard "
                            f"{method_dir}") from None
        if name == "run.json":
            return obj
        if "config" in obj and "mode" in obj:
            done = [s for a in obj.get("arms", []) for s in a.get("seeds_done", [])]
            return {"mode": obj["mode"], "fingerprint": _fingerprint_of(obj["config"], obj["mode"]),
                    "seeds": max(done, default=-1) + 1,
                    "elapsed_s": obj.get("elapsed_s", obj.get("wall_time_s", 0.0)),
                    "threads": obj.get("environment", {}).get("threads")}
    fps: dict[str, int] = {}
    for path in sorted((method_dir / "units").glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        fps[rec.get("fingerprint")] = max(fps.get(rec.get("fingerprint"), 0), int(rec.get("seed", 0)) + 1)
    if not fps:
        return None
    if len(fps) > 1:
        raise IncompatibleResults(f"{method_dir} holds units of {len(fps)} different configs; pass --fresh to "
                                  "discard them, or write elsewhere with --out")
    (fp, seeds), = fps.items()
    return {"mode": "unknown", "fingerprint": fp, "seeds": seeds}


def check_compatible(method_dir: Path, mode: str, fp: str, n_seeds: int, threads: int | None = None) -> dict | None:
    """Raise `IncompatibleResults` when `method_dir` holds results that this run would replace (another mode or
    config, fewer seeds than it has finished) or mix with its own (another per-unit thread count); returns what it
    holds (None if nothing)."""
    if method_dir.exists() and not method_dir.is_dir():
        raise UserError(f"Invalid output folder {method_dir}: it is a file")
    held = _stored_run(method_dir)
    if held is None:
        return None
    if held.get("fingerprint") != fp:
        what = f"a {held.get('mode')} run" if held.get("mode") == mode or held.get("mode") == "unknown" else \
            f"a {held.get('mode')}-mode run"
        raise IncompatibleResults(
            f"{method_dir} holds {what} with config fingerprint {held.get('fingerprint')}; this {mode} run has "
            f"{fp} (another mode, --set or code default) and would replace it. Write elsewhere with --out, or "
            f"pass --fresh to discard what is there.")
    if held.get("seeds", 0) > n_seeds:
        raise IncompatibleResults(
            f"{method_dir} holds {held['seeds']} seeds of this config; --seeds {n_seeds} would drop some of them. "
            f"Use --seeds {held['seeds']} (or more, to extend), another --out, or --fresh.")
    if threads is not None and held.get("threads") is not None and held["threads"] != threads:
        raise IncompatibleResults(
            f"{method_dir} holds units run with {held['threads']} threads each; --threads {threads} would mix "
            f"thread counts (and numbers) in one result. Use --threads {held['threads']}, another --out, or --fresh.")
    return held


def unit_seed(method: str, seed: int) -> int:
    """A per-(method, seed) integer, so that methods do not share random streams."""
    return int(hashlib.sha256(f"{method}/{seed}".encode()).hexdigest()[:8], 16)


def run_experiment(
    exp: Experiment,
    paper: dict,
    *,
    mode: str = "quick",
    seeds: int | None = None,
    out_dir: str | Path = "results",
    fresh: bool = False,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    on_unit_done: Callable[[str, int], None] | None = None,
    paper_results: Mapping[str, PaperResult] | None = None,
    workers: int = 0,
    threads: int | None = None,
    keep_work: bool = False,
    only_arms: Sequence[str] | None = None,
) -> Path:
    """Run (or resume) every (arm, seed) unit of `exp` and write `out_dir/<name>/results.json`.

    Parameters
    ----------
    exp : Experiment
    paper : dict
        {"number", "title", "arxiv"} for the result file.
    mode : {"smoke", "quick", "full"}, default="quick"
    seeds : int or None
        Number of seeds (0..seeds-1); None takes the experiment's default for the mode.
    fresh : bool, default=False
        Delete earlier units of this method first instead of resuming. Without it, a folder that holds another
        mode's or config's results, or more seeds, is refused with `IncompatibleResults`.
    overrides : sequence of "key=value"
        Config overrides on top of the mode's budget.
    paper_results : mapping claim id -> PaperResult, optional
        What the paper reports for each claim, stored beside our evidence (the catalogue's
        `MethodInfo.paper_results()`); a claim without an entry is stored as "not stated".
    workers : int, default=0
        0 runs the units in this process; n >= 1 runs them in n spawned worker processes (one if the experiment
        does not declare `parallel_units`), which an interrupt stops with everything they started.
    threads : int or None
        Threads per unit (torch, OpenMP, BLAS), recorded in each unit; None keeps this process's setting
        (in-process only; workers default to `DEFAULT_THREADS`).
    keep_work : bool, default=False
        Keep finished units' work folders (mid-unit checkpoints) and, once the run is complete, the shared work
        files of the method; by default they are removed (small `work/*.json` records are kept).
    only_arms : sequence of arm names, optional
        Run only these arms' units now (the others stay to do; results.json says "partial" until they are done).

    Returns
    -------
    Path of the written results.json.
    """
    cfg = resolve_config(exp, mode, overrides)
    n_seeds = exp.seeds[mode] if seeds is None else seeds
    if n_seeds < 1:
        raise UserError(f"Invalid seeds: {n_seeds}; expected an integer >= 1")
    arms = list(exp.arms(cfg))
    exp.check_claims(arms)
    if only_arms is not None:
        unknown = sorted(set(only_arms) - {a.name for a in arms})
        if unknown or not only_arms:
            raise UserError(f"Invalid arms {unknown or list(only_arms)} for {exp.name}; expected some of: "
                            f"{', '.join(a.name for a in arms)}")
    check_positive("workers", workers, allow_zero=True)  # 0: in this process
    if threads is not None:
        check_positive("threads", threads)
    fp = fingerprint(cfg, mode)
    method_dir = Path(out_dir) / exp.name
    if fresh and method_dir.exists():
        shutil.rmtree(method_dir)
    if workers and threads is None:
        threads = DEFAULT_THREADS
    held = check_compatible(method_dir, mode, fp, n_seeds, threads)
    (method_dir / "units").mkdir(parents=True, exist_ok=True)
    lock = _lock(method_dir)
    try:
        return _run_locked(exp, paper, cfg, mode, n_seeds, arms, fp, method_dir, held, cache_dir, device, progress,
                           on_unit_done, paper_results, workers, threads, keep_work, only_arms)
    finally:
        lock.close()


def _lock(method_dir: Path):
    """An exclusive lock on the method folder for the whole run: a second run on the same folder is refused (it
    would overwrite run.json and results.json, and a completing run would delete the other's checkpoints)."""
    import fcntl

    fh = open(method_dir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise UserError(f"another tenfold run is using {method_dir}; wait for it to end, or write elsewhere with "
                        "--out") from None
    return fh


def _run_locked(exp, paper, cfg, mode, n_seeds, arms, fp, method_dir, held, cache_dir, device, progress,
                on_unit_done, paper_results, workers, threads, keep_work, only_arms) -> Path:
    from tenfold.data.cache import cache_root

    cache = Path(cache_dir) if cache_dir else cache_root()
    # what the folder holds: written once a unit has finished (an attempt that finishes none leaves no claim on
    # the folder); `seeds` counts the seeds with a finished unit
    manifest = {"mode": mode, "fingerprint": fp, "seeds": (held or {}).get("seeds", 0), "threads": threads,
                "config": to_dict(cfg), "elapsed_s": float((held or {}).get("elapsed_s") or 0.0)}

    todo = [(arm, s) for s in range(n_seeds) for arm in arms]  # seed-major: pairs complete early
    units: dict[tuple[str, int], dict] = {}
    for arm, s in todo:
        rec = _load_unit(method_dir, arm, s, fp)
        if rec is not None:
            units[(arm.name, s)] = rec
    started = time.time()
    elapsed0 = manifest["elapsed_s"]

    def save_manifest() -> None:
        if units:
            manifest["seeds"] = max(manifest["seeds"], max(s for _, s in units) + 1)
            manifest["elapsed_s"] = elapsed0 + time.time() - started
            atomic_write_json(method_dir / "run.json", manifest)

    pending = [(arm, s) for arm, s in todo if (arm.name, s) not in units
               and (only_arms is None or arm.name in only_arms)]
    n_workers = min(workers if exp.parallel_units else min(workers, 1), len(pending))
    env = {"threads": threads, "workers": n_workers}
    by_name = {a.name: a for a in arms}
    bar = _bar(len(todo), len(units), exp.name, progress)

    def done(key: tuple[str, int], rec: dict) -> None:
        units[key] = rec
        if not keep_work:
            shutil.rmtree(method_dir / "work" / f"{key[0]}__seed{key[1]}", ignore_errors=True)
        save_manifest()
        _write_results(exp, paper, cfg, mode, n_seeds, arms, units, method_dir, manifest, device, env, final=False,
                       paper_results=paper_results)
        bar.update(1)
        if on_unit_done:
            on_unit_done(*key)

    try:
        if n_workers == 0:
            for arm, s in pending:
                bar.set_description(f"{exp.name} {arm.name} seed {s}")
                done((arm.name, s), _run_unit(exp, arm, s, cfg, fp, mode, method_dir, cache, device, progress,
                                              threads))
        else:
            from tenfold.harness.workers import WorkerPool

            def start(key):
                bar.set_description(f"{exp.name} {key[0]} seed {key[1]}")

            tasks = [((arm.name, s), {"exp": exp, "arm": by_name[arm.name], "seed": s, "cfg": cfg, "fp": fp,
                                      "mode": mode, "method_dir": method_dir, "cache": cache, "device": device,
                                      "progress": progress and n_workers == 1, "threads": threads})
                     for arm, s in pending]
            with WorkerPool(n_workers, threads) as pool:
                pool.run(tasks, done, on_start=start)
    finally:
        bar.close()
        save_manifest()  # the time of an interrupted invocation counts too
    path = _write_results(exp, paper, cfg, mode, n_seeds, arms, units, method_dir, manifest, device, env,
                          final=True, paper_results=paper_results)
    if not keep_work and all((a.name, s) in units for a in arms for s in range(n_seeds)):
        _clear_work(method_dir / "work")
    return path


def _clear_work(work: Path) -> None:
    """Remove a complete run's work folders (unit checkpoints, shared trained models); keep top-level files (small
    records such as hyperparameter-tuning results)."""
    if work.is_dir():
        for entry in work.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)


def _bar(total: int, done: int, name: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=name, unit="unit", disable=not enabled, leave=True, dynamic_ncols=True)


def _unit_path(method_dir: Path, arm: Arm, seed: int) -> Path:
    return method_dir / "units" / f"{arm.name}__seed{seed}.json"


def _load_unit(method_dir: Path, arm: Arm, seed: int, fp: str) -> dict | None:
    path = _unit_path(method_dir, arm, seed)
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return rec if rec.get("fingerprint") == fp else None


def _run_unit(exp, arm, seed, cfg, fp, mode, method_dir, cache, device, progress, threads=None) -> dict:
    from tqdm.auto import tqdm

    work = method_dir / "work" / f"{arm.name}__seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    fp_file = work / "fingerprint"
    if fp_file.exists() and fp_file.read_text() != fp:  # stale checkpoints from another config
        shutil.rmtree(work)
        work.mkdir(parents=True)
    fp_file.write_text(fp)

    def bar(it=None, **kw):
        kw.setdefault("leave", False)
        kw.setdefault("dynamic_ncols", True)
        return tqdm(it, disable=not progress, position=1, **kw)

    ctx = UnitContext(work_dir=work, cache_dir=cache, device=device, mode=mode, progress=bar)
    seed_everything(unit_seed(exp.name, seed))
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    used = torch.get_num_threads()
    t0 = time.perf_counter()
    try:
        with _blas_threads(threads), PeakMemory() as mem:
            res: UnitResult = exp.run_unit(arm, seed, cfg, ctx)
    finally:  # a unit may change torch's thread count for itself; the next unit, and method, starts as configured
        torch.set_num_threads(before)
    wall = time.perf_counter() - t0
    unknown = set(res.metrics) - {m.name for m in exp.metrics}
    if unknown:
        raise ValueError(f"{exp.name}: run_unit returned undeclared metrics {sorted(unknown)}")
    rec = {
        "arm": arm.name,
        "seed": seed,
        "fingerprint": fp,
        "metrics": {k: _clean(float(v)) for k, v in res.metrics.items()},
        "curves": res.curves,
        "extra": res.extra,
        "notes": ctx.notes,
        "wall_time_s": wall,
        "threads": used,
        "peak_rss_mib": _clean(mem.peak_mib),
        "cuda_peak_mib": mem.cuda_peak_mib,
    }
    atomic_write_json(_unit_path(method_dir, arm, seed), rec)
    return rec


def _blas_threads(threads: int | None):
    """Limit the BLAS/OpenMP pools already loaded in this process to `threads` (no-op for None)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


def _clean(x: float) -> float | None:
    """JSON has no NaN/inf: store them as null."""
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return mean, std


def _with_derived(exp: Experiment, units: dict, cfg: Any) -> dict:
    """Copies of the unit records with `exp.derive`'s cross-unit metrics added (the stored units are untouched)."""
    if exp.derive is None or cfg is None:
        return units
    extra = exp.derive(units, cfg)
    declared = {m.name for m in exp.metrics}
    out = {}
    for key, rec in units.items():
        new = extra.get(key, {})
        unknown = set(new) - declared
        if unknown:
            raise ValueError(f"{exp.name}: derive returned undeclared metrics {sorted(unknown)}")
        out[key] = {**rec, "metrics": {**rec["metrics"], **{k: _clean(float(v)) for k, v in new.items()}}}
    return out


def aggregate(exp: Experiment, arms: Sequence[Arm], units: dict, mode: str, cfg: Any = None,
              paper_results: Mapping[str, PaperResult] | None = None) -> tuple[list, list, list]:
    """Arms with per-seed metrics and mean/std, curves, and judged claims (`cfg` feeds `exp.derive`)."""
    units = _with_derived(exp, units, cfg)
    arm_rows = []
    for arm in arms:
        recs = sorted((r for (a, _), r in units.items() if a == arm.name), key=lambda r: r["seed"])
        per_seed = {str(r["seed"]): r["metrics"] for r in recs}
        mean, std = {}, {}
        for m in exp.metrics:
            mu, sd = _stats([r["metrics"].get(m.name) for r in recs])
            if mu is not None:
                mean[m.name], std[m.name] = mu, sd
        wall = _stats([r["wall_time_s"] for r in recs])
        rss = _stats([r["peak_rss_mib"] for r in recs])
        arm_rows.append({
            "name": arm.name, "role": arm.role, "label": arm.display, "params": dict(arm.params),
            "seeds_done": [r["seed"] for r in recs], "per_seed": per_seed, "mean": mean, "std": std,
            "wall_time_s": {"mean": wall[0], "std": wall[1]}, "peak_rss_mib": {"mean": rss[0], "std": rss[1]},
            "extra": {str(r["seed"]): r["extra"] for r in recs if r.get("extra")},
            "notes": sorted({n for r in recs for n in r.get("notes", [])}),
        })
    curves = [
        {"arm": r["arm"], "seed": r["seed"], "name": name, **curve}
        for r in sorted(units.values(), key=lambda r: (r["arm"], r["seed"]))
        for name, curve in r["curves"].items()
    ]
    by_arm = {row["name"]: row["per_seed"] for row in arm_rows}
    claims = [judge_claim(c, by_arm, mode, exp.metric(c.metric).unit, (paper_results or {}).get(c.id)) for c in exp.claims]
    return arm_rows, curves, claims


def judge_claim(c: Claim, per_seed_by_arm: Mapping[str, Mapping[str, Mapping[str, Any]]], mode: str, unit: str,
                paper_result: PaperResult | None = None) -> dict:
    """One claim's `results.json` entry: its regime checks, evidence and verdict, and what the paper reports.

    `per_seed_by_arm` maps arm -> seed -> metric -> value, as stored in `results.json`'s arms.
    """
    regime = [r.evaluate(per_seed_by_arm) for r in c.regime]
    for r in regime:
        r["value"] = _clean(r["value"])
        r["per_arm"] = {k: _clean(v) for k, v in r["per_arm"].items()}
    m = {s: v[c.metric] for s, v in per_seed_by_arm.get(c.method, {}).items() if v.get(c.metric) is not None}
    b = {s: v[c.metric] for s, v in per_seed_by_arm.get(c.baseline, {}).items() if v.get(c.metric) is not None}
    j = judge(c, m, b, mode, regime)
    j["evidence"] = {k: (_clean(v) if isinstance(v, float) else v) for k, v in j["evidence"].items()}
    paper = paper_result.as_dict() if paper_result is not None else NOT_STATED
    return {"id": c.id, "statement": c.statement, "metric": c.metric, "unit": unit, "method_arm": c.method,
            "baseline_arm": c.baseline, "direction": c.direction, "margin": c.margin, **j, "regime": regime,
            "paper": dict(paper)}


# a claim whose paper number nobody has looked up yet (the catalogue gives every claim an entry; tests check it)
NOT_STATED = {"reported": False, "value": None, "metric": "", "setting": "", "source": "not looked up"}


def _write_results(exp, paper, cfg, mode, n_seeds, arms, units, method_dir, manifest, device, env, final,
                   paper_results=None) -> Path:
    arm_rows, curves, claims = aggregate(exp, arms, units, mode, cfg, paper_results)
    complete = all((a.name, s) in units for a in arms for s in range(n_seeds))
    results = {
        "schema": SCHEMA_ID,
        "method": exp.name,
        "paper": paper,
        "summary": exp.summary,
        "mode": mode,
        "seeds": list(range(n_seeds)),
        "status": "complete" if complete else "partial",
        "config": to_dict(cfg),
        "environment": environment(device, **env),
        "wall_time_s": sum(r["wall_time_s"] for r in units.values()),
        "elapsed_s": manifest["elapsed_s"],
        "budget_s": exp.budget_s.get(mode),
        "metrics": [{"name": m.name, "unit": m.unit, "higher_is_better": m.higher_is_better,
                     "description": m.description} for m in exp.metrics],
        "arms": arm_rows,
        "curves": curves,
        "claims": claims,
        "plots": [],
    }
    if final:
        from tenfold.harness.plots import default_plots

        plots = default_plots(results, method_dir)
        if exp.plot is not None and units:
            plots += exp.plot(results, method_dir)
        results["plots"] = [p.name for p in plots]
    # compact: curves and per-seed extras (e.g. embeddings for plots) make indented files several MB; REPORT.md
    # is the human-readable form
    return atomic_write_json(method_dir / "results.json", results, indent=None)
