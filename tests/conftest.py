"""Test-wide settings: one thread (the suite must fit 2 cores), and the tests folder importable so that
tests can share `harness.toy_experiment`."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TENFOLD_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def _threads():
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def toy_registry(monkeypatch):
    """The method registry plus a test-only toy experiment ('toy') and an unimplemented entry ('later')."""
    import tenfold.experiments as ex
    from tenfold.common.registry import Registry

    reg = Registry("method")
    for name in ex.METHODS:
        reg.register(name, ex.METHODS.get(name))
    reg.register("toy", ex.MethodInfo("toy", 0, "Toy", "0000.00000", "test", "tests", "harness.toy_experiment:TOY"))
    # a catalogue entry without an experiment: every paper is implemented now, but the not-implemented paths stay
    reg.register("later", ex.MethodInfo("later", 0, "Later", "0000.00001", "test", "tests"))
    monkeypatch.setattr(ex, "METHODS", reg)
    return reg
