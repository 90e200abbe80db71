"""Helpers for Python code running inside a snakebridge drop: `import snakebridge`."""
from __future__ import annotations

import os
from typing import Any

_registry: Any = None


def _attach(registry: Any) -> None:
    """Called by the worker at start-up."""
    global _registry
    _registry = registry


def worker_id() -> str | None:
    """The id of the worker running this code (as the Node side numbers workers), or None outside one."""
    return os.environ.get("SNAKEBRIDGE_WORKER_ID")


def live_handles() -> int:
    """How many objects this worker's registry holds for handles."""
    return 0 if _registry is None else len(_registry)
