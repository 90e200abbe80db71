"""Helpers for Python code running inside a snakebridge drop: `import snakebridge`."""
from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_registry: Any = None
_emit: Callable[[Any], None] | None = None


def _attach(registry: Any, emit: Callable[[Any], None]) -> None:
    """Called by the worker at start-up."""
    global _registry, _emit
    _registry = registry
    _emit = emit


def emit(value: Any) -> None:
    """Sends a progress event of the running drop to TypeScript (see `Drop.onProgress`).

    The value crosses like a drop's result; events arrive in order, before the drop's result.
    """
    if _emit is None:
        raise RuntimeError("snakebridge.emit() works inside a drop run by a snakebridge worker")
    _emit(value)


def worker_id() -> str | None:
    """The id of the worker running this code (as the Node side numbers workers), or None outside one."""
    return os.environ.get("SNAKEBRIDGE_WORKER_ID")


def live_handles() -> int:
    """How many objects this worker's registry holds for handles."""
    return 0 if _registry is None else len(_registry)
