"""`tenfold list | reproduce | report | rejudge | bench | merge`: the command line.

User errors (unknown names, bad modes, bad paths, a folder holding another run) exit with status 2 and one line
on stderr, before any work starts. Ctrl-C or SIGTERM during `reproduce` stops the unit workers and everything they
started within seconds; finished units are kept, and rerunning resumes (exit status 130 or 143).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tenfold.common.errors import UserError, check_choice, check_positive
from tenfold.harness.experiment import MODES


def _parser() -> argparse.ArgumentParser:
    from tenfold import __version__

    p = argparse.ArgumentParser(
        prog="tenfold", description="Ten ML papers as library components, with reproductions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  tenfold list                         the methods, their claims and regime checks\n"
               "  tenfold reproduce gce                one method, quick mode, into results/gce/\n"
               "  tenfold reproduce all --mode smoke --out /tmp/r   every method in seconds\n"
               "  tenfold report results               results/REPORT.md and results/report.html\n"
               "  tenfold merge merge.yaml --out merged   merge HF model folders (mergekit-style YAML)\n"
               "See README.md and docs/ for the components and the results schema.")
    p.add_argument("--version", action="version", version=f"tenfold {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the ten methods, their papers, status and checked claims")
    r = sub.add_parser("reproduce", help="run reproductions (resumes from finished units)")
    r.add_argument("names", nargs="+", metavar="NAME", help="method registry names, or 'all'")
    r.add_argument("--mode", default="quick", help="smoke | quick | full (default: quick)")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the mode's)")
    r.add_argument("--out", default=None,
                   help="results folder (default: results in quick mode, results-<mode> otherwise); a folder that "
                        "holds another mode's or config's results is refused")
    r.add_argument("--fresh", action="store_true",
                   help="discard what the folder holds for these methods instead of resuming")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes; units run side by side only for methods that declare it (default: 1)")
    r.add_argument("--threads", type=int, default=2, metavar="N",
                   help="threads per unit, fixed whatever the machine, so numbers repeat (default: 2, as the "
                        "committed results)")
    r.add_argument("--keep-work", action="store_true",
                   help="keep finished units' checkpoints and a complete run's work folders")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (one method only); repeatable")
    r.add_argument("--arms", default=None, metavar="A,B",
                   help="run only these arms now (one method only; the rest stay to do, results say 'partial')")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--no-report", action="store_true", help="do not rewrite the report afterwards")
    rj = sub.add_parser("rejudge", help="re-judge stored results.json files with today's claim declarations",
                        description="Rewrite every DIR/**/results.json (schema /1 or /2) in schema "
                                    "tenfold.results/2: each stored claim is judged again from the stored per-seed "
                                    "metrics with its current regime checks and paper numbers; no unit is rerun. "
                                    "Then rewrites the report of every folder that holds results.")
    rj.add_argument("dir", help="folder searched recursively for results.json files")
    rep = sub.add_parser("report", help="write DIR/REPORT.md and DIR/report.html from every results.json below DIR "
                                        "(each validated; bad files are refused, naming them)")
    rep.add_argument("dir", nargs="?", default="results",
                     help="folder searched recursively for results.json files (default: results)")
    rep.add_argument("--full", default=None, metavar="REF",
                     help="folder of committed full runs (REF/<method>/full/<method>/results.json) to show beside "
                          "this folder's numbers (default: the checkout's docs/results; 'none' for none)")
    b = sub.add_parser("bench", help="run a speed/memory benchmark from benchmarks/ (ratios in one run)",
                       description="`tenfold bench list` shows the benchmarks; `tenfold bench NAME [ARGS...]` runs "
                                   "benchmarks/NAME.py with ARGS (see `tenfold bench NAME --help`).")
    b.add_argument("name", metavar="NAME", help="benchmark script name (without .py), or 'list'")
    b.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark script")
    m = sub.add_parser("merge", help="merge Hugging Face model folders from a mergekit-style YAML file",
                       description="Merge the model folders a mergekit-style configuration names (merge_method: "
                                   "linear, task_arithmetic, ties, dare_linear, dare_ties, wudi or tsvm) with "
                                   "tenfold's merges and write an HF model folder: safetensors weights, the base's "
                                   "config, the tokenizer files and tenfold_merge.json. Every check runs before any "
                                   "tensor is read. See docs/merge.md.")
    m.add_argument("config", metavar="CONFIG.yaml", help="the merge configuration (mergekit's keys)")
    m.add_argument("--out", required=True, metavar="DIR", help="output folder (refused when not empty)")
    m.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"Invalid --out {str(path)!r}: not writable ({e.strerror})") from None


def cmd_list() -> int:
    from tenfold.experiments import METHODS

    print(f"{'#':>2}  {'name':9} {'status':16} {'arXiv':11} paper")
    for name in METHODS:
        m = METHODS.get(name)
        print(f"{m.number:>2}  {m.name:9} {'implemented' if m.implemented else 'not implemented':16} {m.arxiv:11} {m.title}")
        print(f"{'':4}field: {m.field}; component: {m.component}")
        if m.implemented:
            exp = m.load()
            budget = exp.budget_s.get("quick")
            if budget:
                print(f"{'':4}quick-mode budget: {budget:g} s")
            for c in exp.claims:
                print(f"{'':4}claim {c.id}: {c.statement}")
                for r in c.regime:
                    print(f"{'':6}regime check {r.name}: {r.describe()} ({r.why})")
                if not c.regime:
                    print(f"{'':6}regime check: none declared")
    return 0


def _select(names: list[str]):
    from tenfold.experiments import METHODS

    if names == ["all"]:
        return [METHODS.get(n) for n in METHODS if METHODS.get(n).implemented]
    if "all" in names:
        raise UserError("Invalid NAME list: 'all' cannot be combined with other names")
    infos = [METHODS.get(n) for n in names]  # unknown names raise, listing the valid ones
    missing = [m.name for m in infos if not m.implemented]
    if missing:
        raise UserError(f"not implemented yet: {', '.join(missing)}; implemented: "
                        f"{', '.join(n for n in METHODS if METHODS.get(n).implemented) or 'none'}")
    return infos


MAX_SEEDS = 50  # a --seeds above it is almost surely a typo (each seed reruns every arm)


class _Stop:
    """SIGTERM becomes KeyboardInterrupt (as SIGINT is), so both stop a run the same way; remembers which came."""

    def __init__(self):
        import signal

        self.signum = signal.SIGINT
        self.previous = signal.signal(signal.SIGTERM, self._handle)

    def restore(self) -> None:
        import signal

        signal.signal(signal.SIGTERM, self.previous)

    def _handle(self, signum, frame):
        self.signum = signum
        raise KeyboardInterrupt

    @property
    def code(self) -> int:
        return 128 + int(self.signum)


def _summary(rows: list[tuple[str, str, float | None, dict]]) -> str:
    """One line per method: mode, elapsed seconds, verdict counts."""
    lines = [f"{'method':9} {'mode':6} {'time':>8}  verdicts"]
    for name, mode, secs, counts in rows:
        verdicts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts.items() if n) or "none"
        lines.append(f"{name:9} {mode:6} {'n/a' if secs is None else f'{secs:.0f} s':>8}  {verdicts}")
    return "\n".join(lines)


def _counts(path: Path) -> tuple[float | None, dict]:
    import json

    try:
        r = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, {}
    counts = {v: 0 for v in ("held", "not_held", "inconclusive", "untestable")}
    for c in r.get("claims", []):
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return r.get("elapsed_s", r.get("wall_time_s")), counts


def cmd_reproduce(args) -> int:
    from tenfold.experiments import catalog, check_requirements
    from tenfold.harness.report import write_report
    from tenfold.harness.runner import check_compatible, fingerprint, resolve_config, run_experiment

    check_choice("--mode", args.mode, MODES)
    if args.seeds is not None and not 1 <= args.seeds <= MAX_SEEDS:
        raise UserError(f"Invalid --seeds: {args.seeds}; expected an integer between 1 and {MAX_SEEDS}")
    check_positive("--jobs", args.jobs)
    check_positive("--threads", args.threads)
    cores = os.cpu_count() or 1
    if args.jobs > 1 and args.jobs * args.threads > cores:  # side-by-side units would fight for the cores
        print(f"warning: --jobs {args.jobs} x --threads {args.threads} = {args.jobs * args.threads} threads on "
              f"{cores} cores; timings will be distorted and runs slower (e.g. --jobs {args.jobs} --threads "
              f"{max(1, cores // args.jobs)})", file=sys.stderr)
    if args.out is not None and not args.out.strip():
        raise UserError("Invalid --out '': expected a folder path (default: results, or results-<mode> outside "
                        "quick mode)")
    infos = _select(args.names)
    check_requirements(infos)  # missing extras: before any work
    if (args.set or args.arms is not None) and len(infos) != 1:
        raise UserError("--set and --arms apply to one method; name exactly one method with them")
    only_arms = None if args.arms is None else [a.strip() for a in args.arms.split(",") if a.strip()]
    out = Path(args.out if args.out is not None else "results" if args.mode == "quick" else f"results-{args.mode}")
    if out.exists() and not out.is_dir():
        raise UserError(f"Invalid --out {str(out)!r}: it is a file, not a folder")
    missing = [a for a in (out.absolute(), *out.absolute().parents) if not a.exists()]
    created = min(missing, key=lambda a: len(a.parts)) if missing else None  # the top folder mkdir will make
    _check_writable(out)  # before loading the experiments (seconds): an unwritable --out fails at once
    try:
        experiments = [(m, m.load()) for m in infos]
        for _, exp in experiments:  # config errors and folders holding other runs surface before any work
            cfg = resolve_config(exp, args.mode, args.set)
            names = [a.name for a in exp.arms(cfg)]
            if only_arms is not None and (not only_arms or set(only_arms) - set(names)):
                raise UserError(f"Invalid --arms {args.arms!r}; expected a comma-separated subset of: "
                                f"{', '.join(names)}")
            if not args.fresh:
                check_compatible(out / exp.name, args.mode, fingerprint(cfg, args.mode),
                                 args.seeds or exp.seeds[args.mode], args.threads)
    except BaseException:
        if created is not None:  # a failed check leaves no folder behind: remove what the writability check made
            shutil.rmtree(created, ignore_errors=True)
        raise
    from tenfold.common.device import default_device

    device = default_device()
    stop = _Stop()
    rows = []
    try:
        for info, exp in experiments:
            path = run_experiment(exp, info.paper(), mode=args.mode, seeds=args.seeds, out_dir=out, fresh=args.fresh,
                                  overrides=args.set, device=device, progress=not args.no_progress,
                                  paper_results=info.paper_results(), workers=args.jobs, threads=args.threads,
                                  keep_work=args.keep_work, only_arms=only_arms)
            print(f"{info.name}: {path}")
            rows.append((info.name, args.mode, *_counts(path)))
        print(_summary(rows))
        if not args.no_report:
            md, page = write_report(out, catalog())
            print(f"report: {md.resolve()}")
            print(f"report (html): {page.resolve()}")
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished units are kept under {out}, and the unit in progress resumes from its last "
              "checkpoint; rerun the same command to go on", file=sys.stderr)
        return stop.code
    finally:
        stop.restore()
    return 0


def cmd_report(args) -> int:
    from tenfold.experiments import catalog
    from tenfold.harness.report import write_report

    out = Path(args.dir)
    if not out.is_dir():
        raise UserError(f"Invalid DIR {str(out)!r}: no such folder")
    ref = "auto" if args.full is None else None if args.full == "none" else Path(args.full)
    if isinstance(ref, Path) and not ref.is_dir():
        raise UserError(f"Invalid --full {str(ref)!r}: no such folder (or 'none')")
    md, page = write_report(out, catalog(), ref)
    print(f"report: {md.resolve()}")
    print(f"report (html): {page.resolve()}")
    return 0


def cmd_rejudge(args) -> int:
    import json

    from tenfold.common.atomic import atomic_write_json
    from tenfold.experiments import METHODS, catalog
    from tenfold.harness.report import write_report
    from tenfold.harness.schema import SCHEMA_IDS, rejudge, validate_results

    root = Path(args.dir)
    if not root.is_dir():
        raise UserError(f"Invalid DIR {str(root)!r}: no such folder")
    paths = sorted(root.glob("**/results.json"))
    if not paths:
        raise UserError(f"Invalid DIR {str(root)!r}: no results.json below it")
    stored = {path: json.loads(path.read_text()) for path in paths}
    for path, obj in stored.items():  # check every file before rewriting any
        if obj.get("schema") not in SCHEMA_IDS or obj.get("method") not in METHODS:
            raise UserError(f"Invalid results file {path}: schema {obj.get('schema')!r}, method {obj.get('method')!r}")
    folders = set()
    for path, obj in stored.items():
        info = METHODS.get(obj["method"])
        new = rejudge(obj, info.load(), info.paper_results())
        validate_results(new)
        atomic_write_json(path, new, indent=None)
        changed = [f"{a['id']}: {a['verdict']} -> {b['verdict']}" for a, b in zip(obj["claims"], new["claims"])
                   if a["verdict"] != b["verdict"]]
        print(f"{path}: {obj['schema']} -> {new['schema']}" + (f"; {', '.join(changed)}" if changed else ""))
        folders.add(path.parent.parent)
    for folder in sorted(folders):
        md, _ = write_report(folder, catalog())
        print(f"report: {md}")
    return 0


def benchmarks_dir() -> Path:
    """The repository's benchmarks/ folder (benchmarks are scripts beside the package, not installed)."""
    return Path(__file__).resolve().parents[2] / "benchmarks"


def _benchmarks() -> dict[str, Path]:
    folder = benchmarks_dir()
    if not folder.is_dir():
        raise UserError(f"no benchmarks folder at {folder}: `tenfold bench` needs a source checkout "
                        "(pip install -e .)")
    return {f.stem: f for f in sorted(folder.glob("*.py")) if not f.name.startswith("_")}


def cmd_bench(args) -> int:
    import ast
    import runpy

    scripts = _benchmarks()
    if args.name == "list":
        for name, path in scripts.items():
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            print(f"{name:20} {doc.splitlines()[0] if doc else ''}")
        return 0
    check_choice("NAME", args.name, ("list", *scripts))
    argv = sys.argv
    sys.argv = [str(scripts[args.name]), *args.args]
    try:
        runpy.run_path(str(scripts[args.name]), run_name="__main__")
    except SystemExit as e:  # argparse inside the script: --help or bad arguments
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return 0


def cmd_merge(args) -> int:
    from tenfold.merging.config import load_merge_config, run_merge_config

    if not args.out.strip():
        raise UserError("Invalid --out '': expected a folder path")
    spec = load_merge_config(args.config)
    out = run_merge_config(spec, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"merged {len(spec.experts)} models with {spec.merge_method} ({spec.method}) into {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "list":
            return cmd_list()
        if args.cmd == "reproduce":
            return cmd_reproduce(args)
        if args.cmd == "bench":
            return cmd_bench(args)
        if args.cmd == "rejudge":
            return cmd_rejudge(args)
        if args.cmd == "merge":
            return cmd_merge(args)
        return cmd_report(args)
    except UserError as e:
        print(f"tenfold: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `tenfold list | head`
        os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
