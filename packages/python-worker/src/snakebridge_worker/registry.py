"""Handles: objects kept in this worker, named by integer ids."""
from __future__ import annotations

import _thread
import itertools
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class HandleNotFound(Exception):
    def __init__(self, handle: int) -> None:
        super().__init__(f"handle {handle} is not in this worker's registry (released, or never made here)")
        self.handle = handle


class Registry:
    """id → object. Ids start at 1 and are never reused within a worker's life."""

    def __init__(self) -> None:
        self._objects: dict[int, Any] = {}
        self._ids = itertools.count(1)
        self._lock = _thread.allocate_lock()

    def put(self, obj: Any) -> int:
        with self._lock:
            hid = next(self._ids)
            self._objects[hid] = obj
            return hid

    def get(self, hid: int) -> Any:
        try:
            return self._objects[hid]
        except KeyError:
            raise HandleNotFound(hid) from None

    def release(self, ids: Iterable[int]) -> None:
        with self._lock:
            for hid in ids:
                self._objects.pop(hid, None)

    def __len__(self) -> int:
        return len(self._objects)
