"""What `tenfold report DIR` reads (issue 21, item 4): every `results.json` below DIR, validated against its schema,
in the plain and in nested layouts (docs/results); broken input is refused with the file named, exit status 2."""

import json
import re
import shutil
from pathlib import Path

import pytest
from harness.toy_experiment import PAPER, TOY

from tenfold.cli import main
from tenfold.common.errors import UserError
from tenfold.experiments import METHODS
from tenfold.harness.report import write_report
from tenfold.harness.runner import run_experiment

CATALOG = [{"name": "toy", "number": 0, "title": "Toy", "arxiv": "0", "implemented": True},
           {"name": "later", "number": 11, "title": "Later", "arxiv": "2", "implemented": False}]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    """One quick toy run (results dict, plots beside it in `folder`)."""
    root = tmp_path_factory.mktemp("quick")
    path = run_experiment(TOY, PAPER, mode="quick", out_dir=root, progress=False)
    return {"folder": path.parent, "results": json.loads(path.read_text())}


def _place(quick: dict, folder: Path, **changes) -> Path:
    """Copy the quick run (results.json and plots) into `folder`, with top-level keys changed."""
    shutil.copytree(quick["folder"], folder, ignore=shutil.ignore_patterns("units", "work"))
    path = folder / "results.json"
    path.write_text(json.dumps({**quick["results"], **changes}))
    return path


def _as_full(quick: dict) -> dict:
    """The same numbers as a full-mode run whose first claim's verdict differs (so the two are told apart)."""
    claims = [dict(c) for c in quick["results"]["claims"]]
    claims[0]["verdict"] = "not_held"
    return {"mode": "full", "budget_s": None, "claims": claims}


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- broken input is refused, naming the file ------------------------------------------------------------------

def _truncate(path):
    path.write_text(path.read_text()[:5000])


def _drop_claims(path):
    obj = json.loads(path.read_text())
    del obj["claims"]
    path.write_text(json.dumps(obj))


def _bad_verdict(path):
    obj = json.loads(path.read_text())
    obj["claims"][1]["verdict"] = "maybe"
    path.write_text(json.dumps(obj))


def _v1_without_arms(path):
    obj = json.loads(path.read_text())
    obj["schema"] = "tenfold.results/1"
    del obj["arms"]
    path.write_text(json.dumps(obj))


def _future_schema(path):
    obj = json.loads(path.read_text())
    obj["schema"] = "tenfold.results/9"
    path.write_text(json.dumps(obj))


def _a_list(path):
    path.write_text("[1, 2, 3]")


BROKEN = [  # (breakage, what the message must say)
    (_truncate, "not valid JSON (truncated?): "),
    (_drop_claims, "does not match tenfold.results/2: 'claims' is a required property at /"),
    (_bad_verdict, "does not match tenfold.results/2: 'maybe' is not one of"),
    (_v1_without_arms, "does not match tenfold.results/1: 'arms' is a required property at /"),
    (_future_schema, "unknown schema 'tenfold.results/9'; expected one of tenfold.results/2, tenfold.results/1"),
    (_a_list, "not a results object (the file holds a JSON list)"),
]


@pytest.mark.parametrize("breakage, message", BROKEN, ids=[b.__name__.strip("_") for b, _ in BROKEN])
def test_broken_file_is_refused_by_the_cli(breakage, message, quick, tmp_path, toy_registry, capsys):
    path = _place(quick, tmp_path / "toy")
    breakage(path)
    code, out, err = _cli(["report", str(tmp_path), "--full", "none"], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"tenfold: error: {path}: {message}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "REPORT.md").exists() and not (tmp_path / "report.html").exists()


def test_bad_verdict_message_says_where(quick, tmp_path):
    path = _place(quick, tmp_path / "toy")
    _bad_verdict(path)
    with pytest.raises(UserError, match=r"results\.json: does not match tenfold\.results/2: 'maybe' is not one of "
                                        r"\['held', .*\] at /claims/1/verdict$"):
        write_report(tmp_path, CATALOG, None)


def test_every_bad_file_is_listed_together(quick, tmp_path, capsys):
    good = _place(quick, tmp_path / "toy")
    bad_a = _place(quick, tmp_path / "a" / "toy")
    bad_b = _place(quick, tmp_path / "b" / "toy", method="nosuch")
    _truncate(bad_a)
    with pytest.raises(UserError) as e:
        write_report(tmp_path, CATALOG, None)
    lines = str(e.value).splitlines()
    assert lines[0] == f"2 of the 3 results.json files below {tmp_path} cannot be used:"
    assert lines[1].startswith(f"  {bad_a}: not valid JSON (truncated?): ")
    assert lines[2] == f"  {bad_b}: method 'nosuch' is not in the catalogue (known methods: toy, later)"
    assert len(lines) == 3 and str(good) not in str(e.value)


def test_unknown_method_is_refused_by_the_cli(quick, tmp_path, capsys):
    path = _place(quick, tmp_path / "toy")  # 'toy' is not in the real catalogue (no toy_registry here)
    code, _, err = _cli(["report", str(tmp_path), "--full", "none"], capsys)
    assert code == 2
    assert err == (f"tenfold: error: {path}: method 'toy' is not in the catalogue (known methods: "
                   f"{', '.join(METHODS)})\n")


@pytest.mark.parametrize("stray", [None, "toy/toy_step_time.json"])
def test_folder_without_results_is_refused(stray, tmp_path, capsys):
    if stray is not None:  # a json file that is not a results file does not count (nor is it read)
        (tmp_path / stray).parent.mkdir(parents=True)
        (tmp_path / stray).write_text("{not json")
    code, _, err = _cli(["report", str(tmp_path)], capsys)
    assert code == 2
    assert err == (f"tenfold: error: {tmp_path}: no results.json below it (run `tenfold reproduce NAME --out "
                   f"{tmp_path}` first)\n")


def test_broken_reference_is_refused(quick, tmp_path):
    _place(quick, tmp_path / "run" / "toy")
    ref = _place(quick, tmp_path / "ref" / "toy" / "full" / "toy", **_as_full(quick))
    _drop_claims(ref)
    with pytest.raises(UserError, match=re.escape(f"{ref}: does not match tenfold.results/2: 'claims' is a required "
                                                  "property at / (a committed full run, read as the reference)")):
        write_report(tmp_path / "run", CATALOG, tmp_path / "ref")


# ---- nested layouts ---------------------------------------------------------------------------------------------

def _ids(page: str) -> list[str]:
    return re.findall(r"\bid='([^']+)'", page)


@pytest.fixture
def docs_like(quick, tmp_path) -> Path:
    """docs/results in small: `toy/toy/` (quick), `toy/full/toy/` (full) and a stray benchmark json."""
    docs = tmp_path / "docs"
    _place(quick, docs / "toy" / "toy")
    _place(quick, docs / "toy" / "full" / "toy", **_as_full(quick))
    (docs / "toy" / "toy_step_time.json").write_text('{"ratio": 1.5}')
    return docs


def test_nested_layout_shows_every_file_labelled(docs_like, quick):
    md_path, page_path = write_report(docs_like, CATALOG, docs_like)  # the report run on docs/results itself
    md, page = md_path.read_text(), page_path.read_text()
    assert md_path == docs_like / "REPORT.md" and page_path == docs_like / "report.html"
    assert "It holds 2 results files below it" in md
    # one matrix row per file, each linking its own section; the quick row leads with the full run's verdict
    first = quick["results"]["claims"][0]["id"]
    assert (f"| 0 | [toy](#m-toy) | quick, 3 seeds, toy/toy/ | {first}: not held (full), held (quick);" in md)
    assert f"| 0 | [toy](#m-toy--toy-full) | full, 3 seeds, toy/full/toy/ | {first}: not held;" in md
    assert "| 11 | [later](#m-later) | not implemented | – |" in md
    # one section per file, labelled with mode and folder; the full run is not shown as its own reference
    assert '<a id="m-toy"></a>\n\n## 0. toy (quick, toy/toy/): ' in md
    assert '<a id="m-toy--toy-full"></a>\n\n## 0. toy (full, toy/full/toy/): ' in md
    assert "This run (`toy/toy/results.json`): mode **quick**" in md
    assert "This run (`toy/full/toy/results.json`): mode **full**" in md
    full_section = md[md.index("## 0. toy (full"):]
    assert f"| {first} |" in full_section and "| (this run) |" in full_section.split("### Arms")[0]
    quick_section = md[md.index("## 0. toy (quick"):md.index("## 0. toy (full")]
    assert "**NOT held**:" in quick_section  # the committed full run's verdict beside the quick one
    # plots by their own folders; the committed full run's are embedded in its own report, not copied again
    plot = quick["results"]["plots"][0]
    assert f"](toy/toy/{plot})" in md and f"](toy/full/toy/{plot})" not in md
    assert "embedded in its own report `toy/full/report.html`" in md
    assert page.count("data:image/png;base64,") == len(quick["results"]["plots"])
    ids = _ids(page)
    assert len(ids) == len(set(ids)) and {"m-toy", "m-toy--toy-full", "verdict-matrix", "matrix"} <= set(ids)
    assert "href='#m-toy--toy-full'" in page and "<section class='method' id='m-toy--toy-full'>" in page


def test_nested_layout_through_the_cli(docs_like, toy_registry, capsys):
    code, out, err = _cli(["report", str(docs_like / "toy"), "--full", str(docs_like)], capsys)
    assert code == 0 and err == ""
    assert out.splitlines()[0] == f"report: {(docs_like / 'toy' / 'REPORT.md').resolve()}"
    md = (docs_like / "toy" / "REPORT.md").read_text()
    assert "## 0. toy (quick, toy/): " in md and "## 0. toy (full, full/toy/): " in md
    assert "[toy](#m-toy)" in md and "[toy](#m-toy--full)" in md


def test_plain_layout_is_not_labelled(quick, tmp_path):
    _place(quick, tmp_path / "toy")
    md = write_report(tmp_path, CATALOG, None)[0].read_text()
    assert "It holds" not in md and "This run:" in md and "(quick, " not in md
    assert "| 0 | [toy](#m-toy) | quick, 3 seeds | " in md and "\n## 0. toy: " in md


def test_committed_docs_results_copy(tmp_path, capsys):
    """The real committed layout (a copy: the committed reports are not rewritten)."""
    copy = tmp_path / "results"
    shutil.copytree(DOCS, copy, ignore=shutil.ignore_patterns("*.png", "*.html", "REPORT.md"))
    files = sorted(copy.rglob("results.json"))
    assert len(files) > len(METHODS)  # quick and full runs of every method, and more
    code, _, err = _cli(["report", str(copy)], capsys)
    assert code == 0 and err == ""
    md = (copy / "REPORT.md").read_text()
    sections = re.findall(r'<a id="(m-[^"]+)"></a>', md)
    assert len(sections) == len(files) == len(set(sections))
    for name in METHODS:
        assert f'<a id="m-{name}"></a>' in md and f"## {METHODS.get(name).number}. {name} (quick, {name}/{name}/)" in md
        assert f"## {METHODS.get(name).number}. {name} (full, {name}/full/{name}/)" in md
        assert f"[{name}](#m-{name}--{name}-full)" in md
    gce_full = md[md.index("## 6. gce (full"):]
    assert "| (this run) |" in gce_full.split("### Arms")[0]  # the copy of the committed full run is that run
    ids = _ids((copy / "report.html").read_text())
    assert len(ids) == len(set(ids))


def test_the_committed_reference_run_is_not_embedded_twice(tmp_path, capsys):
    """docs/results/<method>/report.html holds the quick run and the committed full run; the full run's plots are
    already embedded in full/report.html, so the combined page points there instead of copying them (blae's page
    reached 5.9 MB)."""
    folder = tmp_path / "gce"
    shutil.copytree(DOCS / "gce", folder, ignore=shutil.ignore_patterns("*.html", "REPORT.md"))
    code, _, err = _cli(["report", str(folder)], capsys)
    assert code == 0, err
    page = (folder / "report.html").read_text()
    full = json.loads((folder / "full" / "gce" / "results.json").read_text())
    others = [json.loads(p.read_text()) for p in folder.rglob("results.json") if "full" not in p.parts]
    assert page.count("<img ") == sum(len(r["plots"]) for r in others)
    assert "embedded in its own report <code>full/report.html</code>" in page
    code, _, _ = _cli(["report", str(folder / "full")], capsys)  # alone, the full run embeds its own plots
    assert code == 0 and (folder / "full" / "report.html").read_text().count("<img ") == len(full["plots"])
