"""A small name -> entry registry with helpful errors; entries are usually frozen dataclasses."""

from __future__ import annotations

import fnmatch
from typing import Generic, Iterator, TypeVar

from tenfold.common.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Ordered mapping of short names to entries.

    Examples
    --------
    >>> r = Registry("loss"); _ = r.register("ce", 1); r.get("ce")
    1
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UserError(f"Unknown {self.kind} {name!r}; valid names: {', '.join(self._entries)}")
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        return [n for n in self._entries if fnmatch.fnmatch(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self):
        return self._entries.items()

    def __len__(self) -> int:
        return len(self._entries)
