"""The Python side of snakebridge: a worker process that runs drops for a Node parent."""
from __future__ import annotations

PROTOCOL_VERSION = 1
__version__ = "0.1.0"
