"""Turn a results folder into `REPORT.md` and a self-contained `report.html` (plots embedded as base64).

Both are rendered from one list of blocks, so the two always say the same thing. The report opens with a
verdict matrix (methods x claims). Beside every claim it shows what the paper reports, the committed full-mode
evidence (`docs/results/<method>/full/` in a source checkout, or any folder given as `reference_dir`), this
run's numbers, the verdict and the regime check; a quick or smoke run's verdicts are labelled with their mode.
Files in the older schema `tenfold.results/1` are read too (upgraded in memory: no regime checks recorded).

Input: every file named `results.json` anywhere below the folder (`DIR/<method>/results.json` as `reproduce`
writes it, or nested layouts such as `docs/results/<method>/full/<method>/results.json`). Each is validated
against the schema it declares and its method against the catalogue before anything is rendered; a folder with
no results file, or any file that cannot be used, is refused with a `UserError` that names every bad file. In the
plain layout (one `DIR/<method>/results.json` per method) the report shows one section per method; otherwise
every file gets its own matrix row and section, labelled with its mode and its folder below DIR.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import re
from pathlib import Path
from typing import Any, Sequence

from tenfold.common.atomic import atomic_write_text
from tenfold.common.errors import UserError
from tenfold.harness.schema import CURRENT, SCHEMA_IDS, upgrade_v1, validate_results

VERDICT_MARK = {"held": "held", "not_held": "NOT held", "inconclusive": "inconclusive", "untestable": "untestable"}
VERDICT_SHORT = {"held": "held", "not_held": "not held", "inconclusive": "inconcl.", "untestable": "untestable"}
VERDICT_COLOUR = {"held": "#1a7f37", "not_held": "#cf222e", "inconclusive": "#7d7d7d", "untestable": "#8250df"}


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _pm(mean, std) -> str:
    if mean is None:
        return "n/a"
    return f"{_fmt(mean)} ± {_fmt(std, 2)}" if std else _fmt(mean)


def default_reference_dir() -> Path | None:
    """`docs/results` of the source checkout this package runs from, where committed full runs live."""
    root = Path(__file__).resolve().parents[3] / "docs" / "results"
    return root if root.is_dir() else None


def _clip(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def _read(path: Path, known: Sequence[str] | None = None) -> tuple[dict | None, str | None]:
    """(results in the `/2` shape, None), or (None, what is wrong with the file in one line)."""
    import jsonschema

    try:
        obj = json.loads(path.read_text())
    except OSError as e:
        return None, f"cannot be read: {e.strerror or e}"
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, f"not valid JSON (truncated?): {_clip(e)}"
    if not isinstance(obj, dict):
        return None, f"not a results object (the file holds a JSON {type(obj).__name__})"
    if obj.get("schema", CURRENT) not in SCHEMA_IDS:
        return None, f"unknown schema {_clip(repr(obj['schema']), 60)}; expected one of {', '.join(SCHEMA_IDS)}"
    try:
        validate_results(obj, schema_id=None)  # against the version the file declares
    except jsonschema.ValidationError as e:
        where = "/" + "/".join(map(str, e.absolute_path))
        return None, f"does not match {obj.get('schema', CURRENT)}: {_clip(e.message)} at {where}"
    if known is not None and obj["method"] not in known:
        return None, f"method {obj['method']!r} is not in the catalogue (known methods: {', '.join(known)})"
    r = upgrade_v1(obj)
    r["_path"] = str(path.resolve())
    return r, None


def _refuse(bad: list[tuple[Path, str]], total: int, out_dir: Path) -> UserError:
    """One error for every unusable file, one line each."""
    lines = [f"{path}: {problem}" for path, problem in bad]
    if len(lines) == 1:
        return UserError(lines[0])
    return UserError(f"{len(lines)} of the {total} results.json files below {out_dir} cannot be used:\n  "
                     + "\n  ".join(lines))


def load_results(out_dir: Path, known: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """method name -> its runs (results dicts in the `/2` shape), for every `results.json` below `out_dir`.

    Files are searched recursively and ordered by depth, then path, so `DIR/<method>/results.json` comes first.
    Each run carries `_path` (resolved) and `_dir` (its folder relative to `out_dir`, POSIX, "." for `out_dir`).
    Raises `UserError` when there is no file, or naming every file that is not valid JSON, does not match the
    schema it declares, or (given `known`, the catalogue's names) holds an unknown method.
    """
    out_dir = Path(out_dir)
    paths = sorted((p for p in out_dir.rglob("results.json") if p.is_file()),
                   key=lambda p: (len(p.relative_to(out_dir).parts), p.relative_to(out_dir).as_posix()))
    if not paths:
        raise UserError(f"{out_dir}: no results.json below it (run `tenfold reproduce NAME --out {out_dir}` first)")
    found: dict[str, list[dict]] = {}
    bad = []
    for path in paths:
        r, problem = _read(path, known)
        if problem is not None:
            bad.append((path, problem))
            continue
        r["_dir"] = path.parent.relative_to(out_dir).as_posix()
        found.setdefault(r["method"], []).append(r)
    if bad:
        raise _refuse(bad, len(paths), out_dir)
    return found


def load_reference(reference_dir: Path | None, method: str) -> dict | None:
    """The committed full-mode results of `method` under `reference_dir` (`<method>/full/<method>/results.json`).

    None when there is no such file; `UserError` when there is one that cannot be used.
    """
    if reference_dir is None:
        return None
    path = Path(reference_dir) / method / "full" / method / "results.json"
    if not path.exists():
        return None
    r, problem = _read(path)
    if r is not None and r["method"] != method:
        problem = f"method {r['method']!r}, expected {method!r}"
    if problem is not None:
        raise UserError(f"{path}: {problem} (a committed full run, read as the reference)")
    return r


def _same_file(r: dict | None, ref: dict | None) -> bool:
    """True when the reference (committed full run) is the very run being reported: the same file, or a copy."""
    if r is None or ref is None:
        return False
    if ref.get("_path") == r.get("_path"):
        return True
    public = [{k: v for k, v in x.items() if not k.startswith("_")} for x in (r, ref)]
    return public[0] == public[1]


def _plain(results: dict[str, list[dict]]) -> bool:
    """The layout `reproduce` writes: one `DIR/<folder>/results.json` per method (rendered as it always was)."""
    return all(len(runs) == 1 and runs[0]["_dir"].count("/") == 0 and runs[0]["_dir"] != "."
               for runs in results.values())


def _label_runs(results: dict[str, list[dict]]) -> None:
    """Give every run a unique section anchor (`_anchor`) and, outside the plain layout, a label (`_label`)."""
    plain, used = _plain(results), set()
    for name, runs in results.items():
        for i, r in enumerate(runs):
            parts = [x for x in r["_dir"].split("/") if x != "."]
            if parts and parts[-1] == name:  # `.../full/gce` -> "full"; the method is in the anchor already
                parts = parts[:-1]
            anchor = f"m-{name}" if i == 0 else f"m-{name}--" + "-".join(re.sub(r"[^A-Za-z0-9_]+", "-", x)
                                                                       for x in parts)
            if anchor in used or anchor.endswith("--"):
                anchor = f"m-{name}--{i + 1}"
            used.add(anchor)
            r["_anchor"] = anchor
            r["_label"] = None if plain else f"{r['mode']}, " + ("top level" if r["_dir"] == "." else f"{r['_dir']}/")


def _verdict_label(verdict: str, mode: str) -> str:
    return VERDICT_MARK[verdict] + ("" if mode == "full" else f" ({mode})")


def _evidence(c: dict) -> str:
    e = c["evidence"]
    return (f"{_fmt(e['method_mean'])} vs {_fmt(e['baseline_mean'])}; diff {_fmt(e['diff_mean'])} ± "
            f"{_fmt(e['diff_se'], 2)} (n={e['n']})")


def _paper(c: dict) -> str:
    p = c.get("paper") or {}
    if not p.get("reported"):
        return f"not reported ({p.get('source', '')})" if p.get("source") else "not reported"
    bits = [str(p["value"])] + [x for x in (p.get("metric"), p.get("setting")) if x]
    return "; ".join(bits) + (f" [{p['source']}]" if p.get("source") else "")


def _regime(c: dict) -> str:
    if not c.get("regime"):
        return "none declared"
    out = []
    for r in c["regime"]:
        state = {True: "passed", False: "FAILED", None: "not measured"}[r["passed"]]
        out.append(f"{r['name']}: {r['description']}; measured {_fmt(r['value'])}: {state}")
    return "; ".join(out)


def _method_blocks(r: dict, ref: dict | None, embed_plots: bool = True) -> list[tuple]:
    name, paper, mode = r["method"], r["paper"], r["mode"]
    same = _same_file(r, ref)
    label, where = r.get("_label"), ""
    if label:  # several runs per method, or a nested layout: say which file this section is
        where = f" (`{r['_dir']}/results.json`)" if r["_dir"] != "." else " (`results.json`)"
    title = f"{paper.get('title', '')} (arXiv {paper.get('arxiv', '?')})"
    b: list[tuple] = [("h2", f"{paper.get('number', '?')}. {name}{f' ({label})' if label else ''}: {title}",
                       r.get("_anchor", f"m-{name}"))]
    budget = f", declared budget {_fmt(r['budget_s'] / 60, 3)} min" if r.get("budget_s") else ""
    b.append(("p", f"This run{where}: mode **{mode}**, seeds {len(r['seeds'])}, status {r['status']}, "
                   f"total unit time {_fmt(r['wall_time_s'] / 60, 3)} min{budget}."))
    if mode != "full":
        if ref is None:
            b.append(("p", f"No committed full-mode run was found for {name}: this {mode} run is the only evidence "
                           "here, and a " + mode + " run is a small demonstration, not the comparison."))
        else:
            b.append(("p", f"The evidence is the committed **full** run ({len(ref['seeds'])} seeds, "
                           f"{_fmt(ref['wall_time_s'] / 60, 3)} min of units, `{_short(ref['_path'])}`); this "
                           f"{mode} run is a small demonstration of the same comparison and its verdicts are "
                           f"labelled *{mode}*."))
    if r.get("summary"):
        b.append(("p", r["summary"]))
    b.append(("h3", "Claims"))
    ref_claims = {c["id"]: c for c in (ref or {}).get("claims", [])}
    rows = []
    for c in r["claims"]:
        sign = ">" if c["direction"] == "higher" else "<"
        test = f"{c['metric']} [{c['unit']}]: {c['method_arm']} {sign} {c['baseline_arm']}"
        test += f" (margin {c['margin']:g})" if c["margin"] else ""
        rc = ref_claims.get(c["id"])
        if same:
            full = "(this run)"
        elif rc is None:
            full = "no committed full run" if ref is None else "not in the committed full run"
        else:
            full = f"**{VERDICT_MARK[rc['verdict']]}**: {_evidence(rc)}"
            if rc["verdict"] == "untestable":
                full += f"; {rc['reason']}"
        rows.append([c["id"], c["statement"], test, _paper(c), full, _evidence(c),
                     f"**{_verdict_label(c['verdict'], mode)}**: {c['reason']}", _regime(c)])
    b.append(("table", ["id", "claim", "test", "the paper", "ours, committed full mode", f"this run ({mode})",
                        "verdict (this run)", "regime check"], rows))
    metrics = r["metrics"]
    b.append(("h3", "Arms (mean ± std over seeds)"))
    header = ["arm", "role"] + [f"{m['name']} [{m['unit']}] {'↑' if m['higher_is_better'] else '↓'}" for m in metrics]
    header += ["time/unit [s]", "peak RSS [MiB]"]
    rows = []
    for a in r["arms"]:
        rows.append([a["label"], a["role"]] + [_pm(a["mean"].get(m["name"]), a["std"].get(m["name"])) for m in metrics]
                    + [_pm(a["wall_time_s"]["mean"], a["wall_time_s"]["std"]),
                       _pm(a["peak_rss_mib"]["mean"], a["peak_rss_mib"]["std"])])
    b.append(("table", header, rows))
    notes = sorted({n for a in r["arms"] for n in a.get("notes", [])})
    if notes:
        b.append(("h3", "Notes"))
        b.extend(("p", n) for n in notes)
    if r.get("plots"):
        b.append(("h3", "Plots"))
        folder = r.get("_dir", name)
        if embed_plots:
            b.extend(("img", p if folder == "." else f"{folder}/{p}") for p in r["plots"])
        else:  # the committed reference run inside a larger folder: its own report embeds them; do not copy them again
            own = Path(folder).parent.as_posix()
            b.append(("p", f"The plots of this run ({', '.join(r['plots'])}) are in `{folder}/`, embedded in its "
                           f"own report `{own}/report.html`."))
    env = r["environment"]
    pk = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())
    b.append(("p", f"*Environment:* Python {env['python']}, {env.get('cpu', '?')} ({env['cpu_count']} cores, "
                   f"{env['threads']} threads), device {env['device']}, git {env.get('git_commit')}; {pk}."))
    return b


def _short(path: str) -> str:
    """A committed file's path from the repository root (docs/results/...), else the path as given."""
    i = path.find("docs/results")
    return path[i:] if i >= 0 else path


def _matrix(catalog: Sequence[dict], results: dict[str, list[dict]], refs: dict) -> tuple:
    """The verdict matrix block: per run (one row per method in the plain layout), each claim's evidence verdict
    (full where committed) and this run's."""
    rows = []
    for m in catalog:
        runs, ref = results.get(m["name"], []), refs.get(m["name"])
        if not runs:
            cells = [(c["id"], None, None, c["verdict"]) for c in ref["claims"]] if ref is not None else []
            state = "no results in this folder" if m["implemented"] else "not implemented"
            rows.append((m["number"], m["name"], f"m-{m['name']}", state, cells))
        for r in runs:
            ref_claims = {c["id"]: c for c in (ref or {}).get("claims", [])}
            skip = _same_file(r, ref) or r["mode"] == "full"  # no second verdict beside a full run
            cells = []
            for c in r["claims"]:
                rc = ref_claims.get(c["id"])
                full = None if rc is None or skip else rc["verdict"]
                cells.append((c["id"], c["verdict"], r["mode"], full))
            state = f"{r['mode']}, {len(r['seeds'])} seeds" if m["implemented"] else "not implemented"
            if r.get("_label"):
                state += ", " + r["_label"].split(", ", 1)[1]
            rows.append((m["number"], m["name"], r["_anchor"], state, cells))
    return ("matrix", rows)


def report_blocks(out_dir: Path, catalog: Sequence[dict], reference_dir: Path | None = None) -> list[tuple]:
    """catalog: [{"name", "number", "title", "arxiv", "implemented"}] in paper order.

    reference_dir: where committed full runs live (`<method>/full/<method>/results.json`); None = none shown.
    Raises `UserError` when `out_dir` holds no usable results (see `load_results`) or a reference file is bad.
    """
    results = load_results(out_dir, [m["name"] for m in catalog])
    _label_runs(results)
    refs = {m["name"]: load_reference(reference_dir, m["name"]) for m in catalog}
    refs = {k: v for k, v in refs.items() if v is not None}
    runs = [r for m in catalog for r in results.get(m["name"], [])]
    modes = sorted({r["mode"] for r in runs})
    ref_text = _short(str(Path(reference_dir).resolve())) if reference_dir else "none"
    files = "" if _plain(results) else (
        f" It holds {len(runs)} results files below it: each is shown as its own row and section, labelled with "
        "its mode and folder.")
    b: list[tuple] = [("h1", "tenfold reproduction report"),
                      ("p", f"Results folder `{out_dir}` (mode {', '.join(modes) or 'none'}), written "
                            f"{_dt.datetime.now().isoformat(timespec='seconds')}. Committed full-mode evidence "
                            f"from `{ref_text}`.{files}"),
                      ("p", "Verdict rule: *untestable* when a claim's declared regime check (a precondition measured "
                            "in the same run, with a threshold fixed before any run) fails; otherwise *held* when the "
                            "paired mean difference over >= 3 seeds is in the claimed direction by more than 2 "
                            "standard errors, *not held* when it is beyond that the other way, and *inconclusive* "
                            "otherwise. Smoke runs are always inconclusive. Quick and smoke runs are small "
                            "demonstrations: their verdicts are labelled with the mode.")]
    b.append(("h2", "Verdict matrix", "verdict-matrix"))
    b.append(("p", "Per method, each claim's verdict. Where a committed full run exists and this folder holds a "
                   "quick or smoke run, the colour and first word are the full run's verdict (the evidence) and "
                   "the second is this run's, labelled with its mode."))
    b.append(_matrix(catalog, results, refs))
    rows = []
    for m in catalog:
        if m["name"] not in results:
            state = "implemented; no results in this folder" if m["implemented"] else "not implemented yet"
            rows.append([str(m["number"]), m["name"], m["title"], state, "", ""])
        for r in results.get(m["name"], []):
            counts = {v: sum(c["verdict"] == v for c in r["claims"]) for v in VERDICT_MARK}
            run = f"{r['mode']}, {len(r['seeds'])} seeds, {r['status']}"
            run += f", `{r['_dir']}/`" if r.get("_label") and r["_dir"] != "." else ""
            rows.append([str(m["number"]), m["name"], m["title"], run,
                         " / ".join(f"{counts[v]} {VERDICT_SHORT[v]}" for v in VERDICT_MARK),
                         _fmt(r["wall_time_s"] / 60, 3)])
    b.append(("h2", "Summary", "summary"))
    b.append(("table", ["#", "method", "paper", "run", "claims (this run)", "minutes"], rows))
    for r in runs:
        b.extend(_method_blocks(r, refs.get(r["method"]), embed_plots=len(runs) == 1 or not _same_file(
            r, refs.get(r["method"]))))
    missing = [m for m in catalog if not m["implemented"]]
    if missing:
        b.append(("h2", "Missing methods", "missing"))
        b.append(("p", "Not implemented yet, so not reproduced: " + ", ".join(f"{m['name']} ({m['number']})" for m in missing) + "."))
    return b


def _esc_md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _md(blocks) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            if len(rest) > 1:  # an explicit anchor, so that the matrix's links work in any Markdown viewer
                out.append(f'<a id="{rest[1]}"></a>\n')
            out.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "img":
            out.append(f"![{rest[0]}]({rest[0]})")
        elif kind == "table":
            header, rows = rest
            out.append("| " + " | ".join(map(_esc_md, header)) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(map(_esc_md, row)) + " |" for row in rows)
        elif kind == "matrix":
            out.append("| # | method | this folder | claims: verdict |")
            out.append("|---|---|---|---|")
            for number, name, anchor, state, cells in rest[0]:
                text = "; ".join(_cell_text(*cell) for cell in cells) or "–"
                out.append(f"| {number} | [{name}](#{anchor}) | {_esc_md(state)} | {_esc_md(text)} |")
        out.append("")
    return "\n".join(out)


def _cell_text(cid: str, verdict: str | None, mode: str | None, full: str | None) -> str:
    if verdict is None:  # only the committed full run
        return f"{cid}: {VERDICT_SHORT[full]} (full)"
    if full is None:
        return f"{cid}: {VERDICT_SHORT[verdict]}" + ("" if mode == "full" else f" ({mode})")
    return f"{cid}: {VERDICT_SHORT[full]} (full), {VERDICT_SHORT[verdict]} ({mode})"


def _inline(text: str) -> str:
    """Escape, then render **bold**, *italic* and `code` spans."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"\*(.+?)\*", r"<i>\1</i>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;color:#222;"
       "line-height:1.4}.scroll{overflow-x:auto;max-width:100%}"
       "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.82em}td,th{border:1px solid #ccc;"
       "padding:3px 6px;vertical-align:top}th{background:#f3f3f3;position:sticky;top:0}"
       "td{min-width:4em;max-width:28em;overflow-wrap:anywhere}"
       "img{max-width:100%;height:auto;border:1px solid #eee;margin:.3em 0}"
       "h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}"
       "#verdict-matrix+p+.scroll table{font-size:.78em}.chip{display:inline-block;margin:1px 2px;padding:0 5px;"
       "border-radius:3px;color:#fff;white-space:nowrap}.chip small{opacity:.85}"
       ".legend .chip{margin-right:.6em}nav a{margin-right:.8em}#matrix td{max-width:none}")


def _chip(cid: str, verdict: str | None, mode: str | None, full: str | None) -> str:
    lead = full if full is not None else verdict
    colour = VERDICT_COLOUR[lead]
    text = html.escape(_cell_text(cid, verdict, mode, full))
    second = ""
    if full is not None and verdict is not None and full != verdict:  # the quick verdict differs: a second colour
        second = f";box-shadow:inset -6px 0 0 {VERDICT_COLOUR[verdict]}"
    return f"<span class='chip v-{lead}' style='background:{colour}{second}' title='{text}'>{text}</span>"


def _html(blocks, out_dir: Path) -> str:
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'><title>tenfold report</title>",
           f"<style>{CSS}</style></head><body>"]
    anchors = [(rest[1], rest[0]) for kind, *rest in blocks if kind == "h2" and len(rest) > 1]
    in_section = False
    for kind, *rest in blocks:
        if kind == "h1":
            out.append(f"<h1>{_inline(rest[0])}</h1>")
            out.append("<nav>" + "".join(f"<a href='#{a}'>{html.escape(t.split(':')[0])}</a>" for a, t in anchors)
                       + "</nav>")
        elif kind == "h2":
            if in_section:
                out.append("</section>")
            anchor = rest[1] if len(rest) > 1 else ""
            in_section = anchor.startswith("m-")
            if in_section:
                out.append(f"<section class='method' id='{anchor}'><h2>{_inline(rest[0])}</h2>")
            else:
                out.append(f"<h2{f' id={chr(39)}{anchor}{chr(39)}' if anchor else ''}>{_inline(rest[0])}</h2>")
        elif kind == "h3":
            out.append(f"<h3>{_inline(rest[0])}</h3>")
        elif kind == "p":
            out.append(f"<p>{_inline(rest[0])}</p>")
        elif kind == "img":
            path = out_dir / rest[0]
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                out.append(f"<img alt='{html.escape(rest[0])}' src='data:image/png;base64,{data}'>")
        elif kind == "table":
            header, rows = rest
            out.append("<div class='scroll'><table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            out.append("</table></div>")
        elif kind == "matrix":
            out.append("<p class='legend'>" + "".join(
                f"<span class='chip' style='background:{VERDICT_COLOUR[v]}'>{VERDICT_SHORT[v]}</span>"
                for v in VERDICT_COLOUR) + "</p>")
            out.append("<div class='scroll'><table id='matrix'><tr><th>#</th><th>method</th><th>this folder</th>"
                       "<th>claims</th></tr>")
            for number, name, anchor, state, cells in rest[0]:
                chips = "".join(_chip(*cell) for cell in cells) or "–"
                out.append(f"<tr><td>{number}</td><td><a href='#{anchor}'>{html.escape(name)}</a></td>"
                           f"<td>{html.escape(state)}</td><td>{chips}</td></tr>")
            out.append("</table></div>")
    if in_section:
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(out_dir: str | Path, catalog: Sequence[dict], reference_dir: str | Path | None = "auto") -> tuple[Path, Path]:
    """Write `REPORT.md` and `report.html` into `out_dir`; returns their paths.

    reference_dir: committed full runs to place beside this folder's numbers; "auto" (default) takes the
    checkout's `docs/results` when there is one, None shows none.
    Every `results.json` below `out_dir` is read (recursively) and validated first; `UserError` names each file
    that cannot be used, and nothing is written then.
    """
    out_dir = Path(out_dir)
    ref = default_reference_dir() if reference_dir == "auto" else Path(reference_dir) if reference_dir else None
    blocks = report_blocks(out_dir, catalog, ref)
    md = atomic_write_text(out_dir / "REPORT.md", _md(blocks))
    page = atomic_write_text(out_dir / "report.html", _html(blocks, out_dir))
    return md, page
