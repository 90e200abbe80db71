"""Replies to requests read together leave together, unless that would keep one waiting."""
from __future__ import annotations

import os
import select
import struct
from collections.abc import Iterator

import pytest
from conftest import WorkerProcess

import snakebridge
import snakebridge_worker.__main__ as main
from snakebridge_worker import codec
from snakebridge_worker.protocol import FrameWriter

# A drop that says whether anything could be read on the reply channel while it ran.
PROBE = "import select\nreturn bool(select.select([_sb_0], [], [], 0)[0])"


class InProcess:
    """The worker's request handling on this thread, its replies on a real pipe."""

    def __init__(self) -> None:
        self.r, w = os.pipe()
        self.writer = FrameWriter(w)
        self.worker = main.Worker(self.writer)
        snakebridge._attach(self.worker.registry, self.worker.emit)
        self.next_id = 1

    def run(self, hash_: str, code: str, *args: object) -> dict:
        rid, self.next_id = self.next_id, self.next_id + 1
        return {"t": "run", "id": rid, "hash": hash_, "code": code, "args": list(args), "mode": "value"}

    def replies(self) -> list:
        data = b""
        while select.select([self.r], [], [], 0)[0]:
            data += os.read(self.r, 1 << 16)
        out = []
        while data:
            (n,) = struct.unpack(">I", data[:4])
            out.append(codec.decode(data[4 : 4 + n]))
            data = data[4 + n :]
        return out

    def close(self) -> None:
        os.close(self.r)
        os.close(self.writer._fd)


@pytest.fixture
def here() -> Iterator[InProcess]:
    h = InProcess()
    try:
        yield h
    finally:
        h.close()


def test_a_reply_waits_behind_a_request_known_to_be_quick(here: InProcess, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(main, "QUICK", 0.05)  # generous: a loaded machine must not make the probe slow
    # The probe's first batch: its duration is unknown, so the reply before it leaves first.
    here.worker.handle_batch([here.run("one", "return 1"), here.run("probe", PROBE, here.r)])
    assert [r["value"] for r in here.replies()] == [1, True]
    # Its first run compiled it: the second is the one to learn from.
    here.worker.handle_batch([here.run("probe", PROBE, here.r), here.run("probe", PROBE, here.r)])
    here.replies()
    assert here.worker.took["probe"] < main.QUICK
    # Now the probe is known to be quick: the reply before it is held, and both leave together.
    here.worker.handle_batch([here.run("one", "return 1"), here.run("probe", PROBE, here.r)])
    assert [r["value"] for r in here.replies()] == [1, False]


def test_a_reply_leaves_before_a_request_that_was_slow_last_time(here: InProcess):
    slow_then_probe = "import time, select\ntime.sleep(_sb_1)\nreturn bool(select.select([_sb_0], [], [], 0)[0])"
    here.worker.handle_batch([here.run("one", "return 1"), here.run("slow", slow_then_probe, here.r, 0.001)])
    assert [r["value"] for r in here.replies()] == [1, True]
    assert here.worker.took["slow"] >= main.QUICK
    here.worker.handle_batch([here.run("one", "return 1"), here.run("slow", slow_then_probe, here.r, 0)])
    assert [r["value"] for r in here.replies()] == [1, True]


def test_held_replies_leave_once_the_oldest_has_waited_its_time(here: InProcess, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(main, "QUICK", 10.0)  # every request counts as quick: only the age decides
    monkeypatch.setattr(main, "HOLD_FOR", 0.05)  # long enough that a loaded machine cannot overrun it
    busy = "import time\nend = time.perf_counter() + _sb_0\nwhile time.perf_counter() < end: pass\nreturn 0"
    batch = [here.run("one", "return 1"), here.run("busy", busy, main.HOLD_FOR / 4), here.run("probe", PROBE, here.r)]
    here.worker.handle_batch(batch)
    assert [r["value"] for r in here.replies()] == [1, 0, True]  # first run of each: nothing was known
    batch = [here.run("one", "return 1"), here.run("busy", busy, main.HOLD_FOR / 4), here.run("probe", PROBE, here.r)]
    here.worker.handle_batch(batch)
    assert [r["value"] for r in here.replies()] == [1, 0, False]  # held: younger than HOLD_FOR
    batch = [here.run("one", "return 1"), here.run("busy", busy, main.HOLD_FOR * 2), here.run("probe", PROBE, here.r)]
    here.worker.handle_batch(batch)
    assert [r["value"] for r in here.replies()] == [1, 0, True]  # the oldest waited past HOLD_FOR


def test_errors_releases_and_emits_in_a_batch_keep_their_order(here: InProcess):
    made = here.worker.registry.put(object())
    emitting = "import snakebridge\nsnakebridge.emit('tick')\nreturn 3"
    for _ in range(2):  # the second time, every duration is known
        batch = [
            here.run("one", "return 1"),
            here.run("raise", "raise ValueError('no')"),
            {"t": "release", "ids": [made]},
            here.run("emit", emitting),
        ]
        here.worker.handle_batch(batch)
        got = [(r["t"], r.get("value", r.get("type"))) for r in here.replies()]
        assert got == [("ok", 1), ("err", "ValueError"), ("emit", "tick"), ("ok", 3)]
    assert len(here.worker.registry) == 0


def test_a_quick_reply_is_not_held_behind_a_slow_request_sent_with_it(worker: WorkerProcess):
    # Both requests in one write, so the worker reads them together.
    frames = b""
    for rid, hash_, code in [(1, "quick", "return 1"), (2, "sleepy", "import time\ntime.sleep(0.5)\nreturn 2")]:
        body = codec.encode({"t": "run", "id": rid, "hash": hash_, "code": code, "args": [], "mode": "value"})
        frames += struct.pack(">I", len(body)) + body
    os.write(worker.w3, frames)
    assert worker.recv(timeout=5)["id"] == 1
    # Nothing more has come: the quick reply left while the slow request ran.
    assert not worker.buf and not select.select([worker.r4], [], [], 0)[0]
    assert worker.recv(timeout=5) == {"t": "ok", "id": 2, "value": 2}
