"""Turn a results folder into `REPORT.md` and a self-contained `report.html` (plots embedded as base64).

Both are rendered from one list of blocks, so the two always say the same thing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any, Sequence

from tenfold.common.atomic import atomic_write_text

VERDICT_MARK = {"held": "held", "not_held": "NOT held", "inconclusive": "inconclusive"}


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


def load_results(out_dir: Path) -> dict[str, dict]:
    """method name -> results dict, for every `*/results.json` under `out_dir`."""
    found = {}
    for path in sorted(Path(out_dir).glob("*/results.json")):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return found


def _method_blocks(r: dict) -> list[tuple]:
    name, paper = r["method"], r["paper"]
    b: list[tuple] = [("h2", f"{paper.get('number', '?')}. {name}: {paper.get('title', '')} (arXiv {paper.get('arxiv', '?')})")]
    b.append(("p", f"Mode **{r['mode']}**, seeds {len(r['seeds'])}, status {r['status']}, "
                   f"total unit time {_fmt(r['wall_time_s'] / 60, 3)} min."))
    if r.get("summary"):
        b.append(("p", r["summary"]))
    b.append(("h3", "Claims"))
    rows = []
    for c in r["claims"]:
        e = c["evidence"]
        sign = ">" if c["direction"] == "higher" else "<"
        test = f"{c['method_arm']} {sign} {c['baseline_arm']}" + (f" (margin {c['margin']:g})" if c["margin"] else "")
        rows.append([c["id"], c["statement"], f"{c['metric']} [{c['unit']}]", test,
                     f"{_fmt(e['method_mean'])} vs {_fmt(e['baseline_mean'])}",
                     f"{_fmt(e['diff_mean'])} ± {_fmt(e['diff_se'], 2)} (n={e['n']})",
                     f"**{VERDICT_MARK[c['verdict']]}**: {c['reason']}"])
    b.append(("table", ["id", "claim (paper)", "metric", "test", "method vs baseline", "diff ± SE", "verdict"], rows))
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
        b.extend(("img", f"{name}/{p}") for p in r["plots"])
    env = r["environment"]
    pk = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())
    b.append(("p", f"*Environment:* Python {env['python']}, {env['cpu']} ({env['cpu_count']} cores, "
                   f"{env['threads']} threads), device {env['device']}, git {env.get('git_commit')}; {pk}."))
    return b


def report_blocks(out_dir: Path, catalog: Sequence[dict]) -> list[tuple]:
    """catalog: [{"name", "number", "title", "arxiv", "implemented"}] in paper order."""
    results = load_results(out_dir)
    b: list[tuple] = [("h1", "tenfold reproduction report"),
                      ("p", f"Results folder `{out_dir}`, written {_dt.datetime.now().isoformat(timespec='seconds')}. "
                            "Verdict rule: *held* when the paired mean difference over >= 3 seeds is in the claimed "
                            "direction by more than 2 standard errors, *not_held* when it is beyond that the other "
                            "way, otherwise *inconclusive*; smoke runs are always inconclusive.")]
    rows = []
    for m in catalog:
        r = results.get(m["name"])
        if r is None:
            state = "implemented; no results in this folder" if m["implemented"] else "not implemented yet"
            rows.append([str(m["number"]), m["name"], m["title"], state, "", ""])
            continue
        counts = {v: sum(c["verdict"] == v for c in r["claims"]) for v in VERDICT_MARK}
        rows.append([str(m["number"]), m["name"], m["title"], f"{r['mode']}, {len(r['seeds'])} seeds, {r['status']}",
                     f"{counts['held']} held / {counts['not_held']} not held / {counts['inconclusive']} inconclusive",
                     _fmt(r["wall_time_s"] / 60, 3)])
    b.append(("h2", "Summary"))
    b.append(("table", ["#", "method", "paper", "run", "claims", "minutes"], rows))
    for m in catalog:
        if m["name"] in results:
            b.extend(_method_blocks(results[m["name"]]))
    missing = [m for m in catalog if not m["implemented"]]
    if missing:
        b.append(("h2", "Missing methods"))
        b.append(("p", "Not implemented yet, so not reproduced: " + ", ".join(f"{m['name']} ({m['number']})" for m in missing) + "."))
    return b


def _md(blocks) -> str:
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "img":
            out.append(f"![{rest[0]}]({rest[0]})")
        elif kind == "table":
            header, rows = rest
            esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
            out.append("| " + " | ".join(map(esc, header)) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(map(esc, row)) + " |" for row in rows)
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then render **bold**, *italic* and `code` spans."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"\*(.+?)\*", r"<i>\1</i>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}td,th{border:1px solid #ccc;padding:3px 6px;"
       "vertical-align:top}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.3em 0}"
       "h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}")


def _html(blocks, out_dir: Path) -> str:
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>tenfold report</title>",
           f"<style>{CSS}</style></head><body>"]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{_inline(rest[0])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{_inline(rest[0])}</p>")
        elif kind == "img":
            path = out_dir / rest[0]
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                out.append(f"<img alt='{html.escape(rest[0])}' src='data:image/png;base64,{data}'>")
        elif kind == "table":
            header, rows = rest
            out.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(out_dir: str | Path, catalog: Sequence[dict]) -> tuple[Path, Path]:
    """Write `REPORT.md` and `report.html` into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    blocks = report_blocks(out_dir, catalog)
    md = atomic_write_text(out_dir / "REPORT.md", _md(blocks))
    page = atomic_write_text(out_dir / "report.html", _html(blocks, out_dir))
    return md, page
