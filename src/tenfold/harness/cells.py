"""Work shared by parallel units: named cells computed once per folder under a file lock (e.g. tuning runs)."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Callable, Mapping

from tenfold.common.atomic import atomic_write_json


def locked_cells(folder: Path, cells: Mapping[str, Callable[[], dict]]) -> dict[str, dict]:
    """Each cell's JSON record, computed at most once per `folder` even when units run side by side.

    A cell `name` is stored as `folder/name.json` and computed under an exclusive lock on `folder/name.lock`.
    The first pass takes only cells no other worker is computing (non-blocking locks); the second waits for the
    rest, so two workers split a grid instead of computing it twice.

    Parameters
    ----------
    folder : Path
        Where the cells live (created if missing); one folder per config, so a changed config recomputes.
    cells : mapping of str to callable
        Cell name -> a function computing its record (a JSON-serialisable dict).

    Returns
    -------
    dict of str to dict
        Every cell's record, in the order of `cells`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    for blocking in (False, True):
        for name, compute in cells.items():
            if name in done:
                continue
            path = folder / f"{name}.json"
            with open(folder / f"{name}.lock", "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    continue
                if not path.exists():
                    atomic_write_json(path, compute())
                done[name] = json.loads(path.read_text())
    return {name: done[name] for name in cells}
