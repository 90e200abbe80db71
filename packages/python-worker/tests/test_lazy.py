"""Start-up stays lean: what the worker wires up lazily, and its own dedent."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from hypothesis import given
from hypothesis import strategies as st

from conftest import SRC
from snakebridge_worker.runner import dedent


@given(st.lists(st.sampled_from(["", " ", "  ", "\t", "    x = 1", "  y", "\tz", " \t w", "a"]), max_size=8))
def test_dedent_matches_textwrap(lines):
    text = "\n".join(lines)
    assert dedent(text) == textwrap.dedent(text)


def run_worker_code(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=True
    ).stdout


def test_the_worker_imports_nothing_at_start_that_it_can_do_without():
    # Each of these costs a worker's start milliseconds here: `threading` and `collections` (through
    # `functools`, `array`, `collections.abc`) ≈ 7 ms, msgpack ≈ 8 ms, `datetime` ≈ 3 ms.
    out = run_worker_code(
        "import sys\n"
        "there = set(sys.modules)\n"
        "import snakebridge_worker.__main__\n"
        "lean = ('logging', 're', 'typing', 'traceback', 'linecache', 'asyncio', 'threading', 'collections',\n"
        "        'functools', 'datetime', 'msgpack', 'array', 'importlib')\n"
        "print(sorted(m for m in lean if m in sys.modules and m not in there))"
    )
    assert out.strip() == "[]"


def test_after_import_runs_when_the_module_is_imported_and_at_once_when_it_already_is():
    out = run_worker_code(
        "from snakebridge_worker import lazy\n"
        "seen = []\n"
        "lazy.after_import('json', lambda m: seen.append(m.__name__))\n"
        "print(seen)\n"
        "import json\n"
        "print(seen, json.loads('[1]'))\n"
        "lazy.after_import('json', lambda m: seen.append('again'))\n"
        "print(seen)\n"
        "import inspect; print(inspect.getsource(json.loads)[:8])\n"  # the real loader still answers
    )
    assert out.splitlines() == ["[]", "['json'] [1]", "['json', 'again']", "def load"]
