"""Runs code right after a module is imported, by anyone, without importing it ourselves.

The worker wires Python `logging` to Node and registers drop sources with `linecache`, but
importing those modules (and `re`, `enum`, `tokenize` behind them) at start-up would cost about
a third of the worker's start. Instead the wiring happens when user code, or the worker's own
error path, first imports them.
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType


class _Loader:
    """The module's own loader, then the callback."""

    def __init__(self, loader: object, callback: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: object) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[attr-defined, no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        self._callback(module)

    def __getattr__(self, name: str) -> object:  # get_source, is_package, ...: the real loader's
        return getattr(self._loader, name)


class _AfterImport:
    """A meta path finder that finds nothing itself: it wraps the real spec of the modules it watches."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callable[[ModuleType], None]] = {}

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        callback = self.callbacks.pop(name, None)
        if callback is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None and getattr(spec, "loader", None) is not None:
                spec.loader = _Loader(spec.loader, callback)
                return spec
        return None


_finder = _AfterImport()
sys.meta_path.insert(0, _finder)


def after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Calls `callback(module)` once `name` is imported: now if it already is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
    else:
        _finder.callbacks[name] = callback
