"""The command line: listing, user errors (exit 2, one line, no traceback), and a smoke run end to end."""

import json
import subprocess
import sys

import pytest

from tenfold.cli import main
from tenfold.experiments import METHODS
from tenfold.harness.schema import validate_results


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_has_ten_methods(capsys):
    code, out, _ = _run(["list"], capsys)
    assert code == 0
    rows = [line for line in out.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 10 and len(METHODS) == 10
    for name in ("fedmitr", "mols", "elas", "adalezo", "fedinit", "gce", "blae", "tapgpt", "lightmoe", "ssr"):
        assert name in out


@pytest.mark.parametrize("argv, fragment", [
    (["reproduce", "nosuch"], "Unknown method 'nosuch'; valid names: fedmitr, mols"),
    (["reproduce", "all", "--mode", "huge"], "Invalid --mode: 'huge'"),
    (["reproduce", "all", "--seeds", "0"], "Invalid --seeds: 0"),
    (["reproduce", "all", "--out", "/proc/forbidden"], "Invalid --out"),
    (["reproduce", "all", "gce"], "'all' cannot be combined"),
    (["report", "/no/such/dir"], "Invalid DIR"),
    (["reproduce", "gce", "--out", ""], "Invalid --out ''"),  # issue 21: used to write into the current folder
    (["reproduce", "gce", "--out", "/etc/hostname"], "it is a file, not a folder"),
    (["reproduce", "gce", "--seeds", "100000"], "Invalid --seeds: 100000; expected an integer between 1 and 50"),
    (["reproduce", "gce", "--jobs", "0"], "Invalid --jobs: 0"),
    (["reproduce", "gce", "--threads", "0"], "Invalid --threads: 0"),
    (["reproduce", "gce", "--arms", "nosuch"], "Invalid --arms 'nosuch'; expected a comma-separated subset of: fmnist__ce__raw"),
    (["reproduce", "gce", "blae", "--arms", "fmnist__ce__raw"], "--set and --arms apply to one method"),
])
def test_user_errors_exit_2_with_one_line(argv, fragment, capsys):
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_unimplemented_method_exits_2(toy_registry, capsys):
    code, _, err = _run(["reproduce", "later"], capsys)
    assert code == 2 and "not implemented yet" in err


def test_bad_override_is_refused_before_work(toy_registry, tmp_path, capsys):
    code, _, err = _run(["reproduce", "toy", "--out", str(tmp_path / "new"), "--set", "steps=many"], capsys)
    assert code == 2 and "Invalid steps" in err
    assert not (tmp_path / "new").exists()  # issue 21: no empty output folder is left behind


def test_another_mode_or_config_never_replaces_results(toy_registry, tmp_path, capsys):
    """Issue 21: a smoke run over complete quick results used to exit 0 and overwrite them."""
    code, out, _ = _run(["reproduce", "toy", "--mode", "quick", "--out", str(tmp_path), "--no-progress",
                         "--no-report"], capsys)
    assert code == 0
    assert "toy       quick" in out and "held" in out  # the per-method summary line: mode, time, verdicts
    results = tmp_path / "toy" / "results.json"
    before = results.read_text()
    for extra in (["--mode", "smoke"], ["--set", "steps=21"], ["--seeds", "1"]):
        code, _, err = _run(["reproduce", "toy", "--out", str(tmp_path), "--no-progress", *extra], capsys)
        assert code == 2 and "--fresh" in err and str(tmp_path / "toy") in err, (extra, err)
    assert results.read_text() == before
    code, _, _ = _run(["reproduce", "toy", "--mode", "smoke", "--out", str(tmp_path), "--fresh", "--no-progress",
                       "--no-report"], capsys)
    assert code == 0 and json.loads(results.read_text())["mode"] == "smoke"


def test_default_out_folder_depends_on_the_mode(toy_registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(["reproduce", "toy", "--mode", "smoke", "--no-progress", "--no-report"], capsys)[0] == 0
    assert (tmp_path / "results-smoke" / "toy" / "results.json").exists() and not (tmp_path / "results").exists()


def test_smoke_reproduce_writes_valid_results_and_report(toy_registry, tmp_path, capsys):
    code, out, _ = _run(["reproduce", "toy", "--mode", "smoke", "--out", str(tmp_path), "--no-progress"], capsys)
    assert code == 0
    validate_results(json.loads((tmp_path / "toy" / "results.json").read_text()))
    assert "report:" in out and (tmp_path / "REPORT.md").exists()
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "not implemented yet" in (tmp_path / "REPORT.md").read_text()


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "tenfold", "reproduce", "nosuch"], capture_output=True, text=True)
    assert out.returncode == 2 and "valid names" in out.stderr


def test_bench_list_names_every_script(capsys):
    from tenfold.cli import benchmarks_dir

    code, out, _ = _run(["bench", "list"], capsys)
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(p.stem for p in benchmarks_dir().glob("*.py")) and "mols_step_time" in names


def test_bench_unknown_name_exits_2(capsys):
    code, _, err = _run(["bench", "nosuch"], capsys)
    assert code == 2 and "Invalid NAME: 'nosuch'" in err and "mols_step_time" in err


def test_bench_runs_a_script_with_its_arguments(tmp_path, capsys):
    out = tmp_path / "b.json"
    code, _, _ = _run(["bench", "mols_step_time", "--size", "debug", "--steps", "1", "--repeats", "1",
                       "--out", str(out)], capsys)
    res = json.loads(out.read_text())
    assert code == 0 and res["size"] == "debug" and res["ratio_vs_adamw_foreach"] > 0
    assert res["state_bytes"]["mols"] == res["state_bytes"]["adamw"]
    assert res["kernel_calls_per_step"]["mols"] == 5 and out.with_suffix(".png").stat().st_size > 0


def test_bench_blae_fit_time_smallest_run(tmp_path, capsys):
    out = tmp_path / "blae.json"
    code, text, _ = _run(["bench", "blae_fit_time", "--n", "60", "--epochs", "1", "--repeats", "1", "--hidden", "8",
                          "--jac-fractions", "0.3", "--baselines", "spae,topoae", "--out", str(out)], capsys)
    res = json.loads(out.read_text())
    assert code == 0 and res["benchmark"] == "blae_fit_time" and res["config"]["n"] == 60 and res["geodesic_s"] > 0
    rows = {r["arm"]: r for r in res["rows"]}
    assert set(rows) == {"ae", "blae_jac0.3", "blae_nobilip", "spae", "topoae"} and "blae_jac0.3" in text
    for r in rows.values():
        assert r["ratio_vs_ae"] > 0 and r["cpu_ratio_vs_ae"] > 0 and len(r["runs_wall_cpu_s"]) == 1
    assert rows["ae"]["ratio_vs_ae"] == rows["ae"]["cpu_ratio_vs_ae"] == 1.0


def test_version_matches_the_installed_package(capsys):
    from importlib.metadata import version

    import tenfold

    assert tenfold.__version__ == version("tenfold")
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"tenfold {tenfold.__version__}"


def test_oversubscribed_jobs_and_threads_warn(capsys, monkeypatch):
    """--jobs 2 with the default --threads 2 on a 2-core machine runs 4 threads: the user is told before any work."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code, _, err = _run(["reproduce", "gce", "--jobs", "2", "--threads", "2", "--out", "/proc/forbidden"], capsys)
    assert "4 threads on 2 cores" in err and "--threads 1" in err
    code, _, err = _run(["reproduce", "gce", "--jobs", "2", "--threads", "1", "--out", "/proc/forbidden"], capsys)
    assert "threads on" not in err
