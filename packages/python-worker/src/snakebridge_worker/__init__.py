"""The Python side of snakebridge: a worker process that runs drops for a Node parent."""
# No `from __future__` here and nothing newer than Python 2's syntax: this module runs first,
# and refuses an interpreter too old for the rest with a message Node can report.
import sys

PROTOCOL_VERSION = 1
__version__ = "0.1.0"
MIN_PYTHON = (3, 10)
# The exit status of a refused interpreter: Node reports it as WorkerStartupError (Version).
EXIT_TOO_OLD = 78

if sys.version_info < MIN_PYTHON:
    sys.stderr.write(
        "Python %d.%d.%d at %s is too old: snakebridge needs %d.%d or newer; point it at a newer"
        " interpreter (a virtual environment made with one, the `python` option or SNAKEBRIDGE_PYTHON)\n"
        % (tuple(sys.version_info[:3]) + (sys.executable,) + MIN_PYTHON)
    )
    sys.exit(EXIT_TOO_OLD)
