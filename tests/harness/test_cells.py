"""locked_cells: a cell is computed once per folder even when two processes ask for the same grid at once."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

from tenfold.harness.cells import locked_cells


def _worker(folder, log):
    def compute(name):
        with open(log, "a") as fh:
            fh.write(name + "\n")
        time.sleep(0.2)  # long enough that the other worker meets the lock
        return {"value": name}

    out = locked_cells(folder, {n: (lambda n=n: compute(n)) for n in ("a", "b", "c", "d")})
    assert [r["value"] for r in out.values()] == ["a", "b", "c", "d"]


def test_two_processes_compute_each_cell_once(tmp_path):
    log = tmp_path / "log.txt"
    ctx = mp.get_context("fork")  # the worker lives in this test module
    procs = [ctx.Process(target=_worker, args=(tmp_path / "cells", log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    computed = log.read_text().split()
    assert sorted(computed) == ["a", "b", "c", "d"]  # once each, split between the workers
    assert json.loads((tmp_path / "cells" / "c.json").read_text()) == {"value": "c"}
    # a later call reads the stored records without computing
    again = locked_cells(tmp_path / "cells", {"a": lambda: {"value": "recomputed"}})
    assert again == {"a": {"value": "a"}}


def test_best_lr_picks_the_lowest_tuning_loss_and_runs_each_cell_once(tmp_path):
    from tenfold.experiments._lm import best_lr

    calls = []

    def final_loss(lr):
        calls.append(lr)
        return (lr - 3e-3) ** 2

    grid = (1e-3, 3e-3, 1e-2)
    assert best_lr("adamw", grid, tmp_path, final_loss) == (3e-3, {"0.001": (1e-3 - 3e-3) ** 2, "0.003": 0.0,
                                                                   "0.01": (1e-2 - 3e-3) ** 2})
    best_lr("adamw", grid, tmp_path, final_loss)  # a second unit: the cells are on disk
    assert sorted(calls) == sorted(grid)
    assert best_lr("mols", (5e-3,), tmp_path, final_loss) == (5e-3, {}) and len(calls) == 3  # one point: no run
