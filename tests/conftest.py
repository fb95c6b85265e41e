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
    """The method registry with the test-only toy experiment added as method 'toy'."""
    import tenfold.experiments as ex
    from tenfold.common.registry import Registry

    reg = Registry("method")
    for name in ex.METHODS:
        reg.register(name, ex.METHODS.get(name))
    reg.register("toy", ex.MethodInfo("toy", 0, "Toy", "0000.00000", "test", "tests", "harness.toy_experiment:TOY"))
    monkeypatch.setattr(ex, "METHODS", reg)
    return reg
