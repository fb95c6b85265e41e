"""The report: verdict matrix, the paper | committed full | this run columns, quick labels, and the page as a
browser renders it (headless Chromium, installed by scripts/setup.sh so that CI always runs it)."""

import json
import shutil
import subprocess

import pytest
from harness.toy_experiment import PAPER, TOY

from tenfold.harness import PaperResult
from tenfold.harness.report import write_report
from tenfold.harness.runner import run_experiment

CATALOG = [{"name": "toy", "number": 0, "title": "Toy", "arxiv": "0", "implemented": True},
           {"name": "other", "number": 1, "title": "Other", "arxiv": "1", "implemented": True},
           {"name": "later", "number": 11, "title": "Later", "arxiv": "2", "implemented": False}]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A quick toy run in `run/`, and a committed-style full run in `ref/toy/full/toy/`."""
    root = tmp_path_factory.mktemp("report")
    paper = {"faster": PaperResult("0.1 nats lower", metric="train loss", setting="toy", source="Table 9")}
    run_experiment(TOY, PAPER, mode="quick", out_dir=root / "run", progress=False, paper_results=paper)
    run_experiment(TOY, PAPER, mode="full", out_dir=root / "ref" / "toy" / "full", progress=False, seeds=3)
    md, page = write_report(root / "run", CATALOG, root / "ref")
    return root, md.read_text(), page


def test_markdown_has_matrix_columns_and_labels(folders):
    _, md, _ = folders
    assert md.index("## Verdict matrix") < md.index("## Summary") < md.index("0. toy")
    assert "[toy](#m-toy)" in md and '<a id="m-toy"></a>' in md
    # the committed full run's verdict leads, this run's is labelled quick
    assert "faster: held (full), held (quick)" in md
    row = next(line for line in md.splitlines() if line.startswith("| faster |"))
    assert "0.1 nats lower; train loss; toy [Table 9]" in row and "**held**:" in row and "held (quick)" in row
    assert "| the paper | ours, committed full mode | this run (quick) |" in md
    acc = next(line for line in md.splitlines() if line.startswith("| acc |"))
    assert "not reported" in acc and "none declared" in acc
    assert "| 1 | [other](#m-other) | no results in this folder |" in md


def test_report_without_reference_says_so(tmp_path):
    run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False)
    md, _ = write_report(tmp_path, CATALOG, None)
    text = md.read_text()
    assert "No committed full-mode run was found for toy" in text and "no committed full run" in text


def test_report_reads_v1_files(tmp_path):
    path = run_experiment(TOY, PAPER, mode="quick", out_dir=tmp_path, progress=False)
    res = json.loads(path.read_text())
    res["schema"] = "tenfold.results/1"
    res.pop("budget_s")
    for c in res["claims"]:
        c.pop("regime"), c.pop("paper")
    path.write_text(json.dumps(res))
    md, _ = write_report(tmp_path, CATALOG, None)
    assert "not recorded (tenfold.results/1 file)" in md.read_text()


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: scripts/setup.sh installs the Debian package (run `make test`)")
    return exe


def test_page_renders_in_headless_chromium(folders, tmp_path):
    root, _, page = folders
    exe = _chromium()
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1366,768"]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "id=\"matrix\"" in html and "id=\"verdict-matrix\"" in html
    assert html.count("<tr>") >= 4  # header + one row per catalogue entry
    for name in ("toy", "other", "later"):
        assert f"href=\"#m-{name}\"" in html
    assert "<section class=\"method\" id=\"m-toy\">" in html  # every method with results has its section
    assert "class=\"chip v-held\"" in html and "data:image/png;base64," in html
    shot = tmp_path / "page.png"
    out = subprocess.run(flags + [f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and shot.stat().st_size > 10_000, out.stderr[-2000:]
