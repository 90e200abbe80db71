from __future__ import annotations

import os
import select
import signal
import socket
import struct
import time

import pytest
from conftest import WorkerProcess

from snakebridge_worker import codec


# A drop computing in stretches of 2 ms, a system call between: the GIL is released only for the
# call, and never for long enough that a thread waiting for it wins it.
STRETCHES = (
    "import os, time\n"
    "while True:\n"
    "    until = time.perf_counter() + 0.002\n"
    "    while time.perf_counter() < until:\n"
    "        pass\n"
    "    os.stat('.')"
)


def test_handshake(worker: WorkerProcess):
    assert worker.hello["t"] == "hello" and worker.hello["protocol"] == 1
    assert worker.hello["pid"] == worker.proc.pid


def test_msgpack_comes_in_on_a_thread_of_its_own_once_the_first_request_is_answered(worker: WorkerProcess):
    pytest.importorskip("msgpack")
    probe = "import sys\nfrom snakebridge_worker import codec\nreturn ['msgpack' in sys.modules, codec._msgpack is not None]"
    # The first request is read and answered by the reference codec: nothing was imported for it.
    assert worker.run(1, probe)["value"] == [False, False]
    deadline = time.monotonic() + 10
    rid = 2
    while (seen := worker.run(rid, probe)["value"]) != [True, True]:
        assert seen[1] is False, "the C codec was taken before its module was in"
        assert time.monotonic() < deadline, "msgpack never came in"
        rid += 1
        time.sleep(0.005)
    # Values of every kind read the same through it.
    assert worker.run(rid + 1, "return _sb_0", [1, 2.5, "é", None, True, b"x", {"k": [2**63 - 1]}])["value"] == [
        1, 2.5, "é", None, True, b"x", {"k": [2**63 - 1]}
    ]


def test_run_and_call(worker: WorkerProcess):
    assert worker.run(1, "return _sb_0 + 1", 41) == {"t": "ok", "id": 1, "value": 42}
    worker.send({"t": "call", "id": 2, "target": "builtins.sorted", "args": [[3, 1, 2]], "kwargs": {"reverse": True}, "mode": "value"})
    assert worker.recv() == {"t": "ok", "id": 2, "value": [3, 2, 1]}


def test_handles_bind_release_and_count(worker: WorkerProcess):
    made = worker.run(1, "return {'k': _sb_0}", 5, mode="handle")
    hid = made["value"]
    assert isinstance(hid, int)
    body = {"t": "run", "id": 2, "hash": "use", "code": "import snakebridge\nreturn [_sb_0['k'], snakebridge.live_handles(), snakebridge.worker_id()]", "mode": "value", "args": [_Ref(hid)]}
    worker.send(body)
    assert worker.recv()["value"] == [5, 1, "7"]
    worker.send({"t": "release", "ids": [hid]})
    assert worker.run(3, "import snakebridge\nreturn snakebridge.live_handles()") ["value"] == 0
    worker.send({**body, "id": 4})
    reply = worker.recv()
    assert reply["kind"] == "handle" and reply["handle"] == hid


class _Ref:
    """A handle reference (ext 3, payload the id as a MessagePack int) as Node sends it.

    The worker's codec only decodes references, so the test teaches its encoder to write one.
    """

    def __init__(self, hid: int) -> None:
        self.hid = hid


def _encode_ref_patch():
    from snakebridge_worker import codec

    original = codec._Encoder.value

    def value(self, v, path, seen):
        if isinstance(v, _Ref):
            inner = codec._Encoder(bytearray())
            inner.int_(v.hid)
            self.ext(codec.EXT_HANDLE, bytes(inner.out))
        else:
            original(self, v, path, seen)

    codec._Encoder.value = value


_encode_ref_patch()


def test_need_code_when_the_hash_is_unknown(worker: WorkerProcess):
    worker.send({"t": "run", "id": 1, "hash": "never-sent", "code": None, "args": [], "mode": "value"})
    assert worker.recv()["kind"] == "need_code"
    assert worker.run(2, "return 'x'", hash_="known")["value"] == "x"
    worker.send({"t": "run", "id": 3, "hash": "known", "code": None, "args": [], "mode": "value"})
    assert worker.recv()["value"] == "x"


def test_code_and_mode_may_be_left_out(worker: WorkerProcess):
    # What Node sends once a worker has the code: no code, and no mode for a plain value.
    assert worker.run(1, "return _sb_0 * 2", 1, hash_="double")["value"] == 2
    worker.send({"t": "run", "id": 2, "hash": "double", "args": [21]})
    assert worker.recv() == {"t": "ok", "id": 2, "value": 42}
    worker.send({"t": "run", "id": 3, "hash": "unknown", "args": []})
    assert worker.recv()["kind"] == "need_code"
    worker.send({"t": "call", "id": 4, "target": "builtins.abs", "args": [-3]})
    assert worker.recv() == {"t": "ok", "id": 4, "value": 3}


def test_print_goes_to_stdout_and_never_into_replies(worker: WorkerProcess):
    reply = worker.run(1, "print('hello'); print('x' * 1000); return 'ok'")
    assert reply == {"t": "ok", "id": 1, "value": "ok"}
    assert worker.proc.stdout is not None
    assert worker.proc.stdout.readline() == b"hello\n"
    assert worker.proc.stdout.readline() == b"x" * 1000 + b"\n"


def test_cancel_interrupts_a_sleep_and_a_busy_loop_and_the_worker_serves_on(worker: WorkerProcess):
    for rid, code in ((1, "import time\ntime.sleep(60)"), (2, "while True:\n    pass")):
        worker.send({"t": "run", "id": rid, "hash": f"c{rid}", "code": code, "args": [], "mode": "value"})
        time.sleep(0.2)
        start = time.monotonic()
        worker.cancel(rid)
        reply = worker.recv(timeout=5)
        assert reply["id"] == rid and reply["kind"] == "interrupted"
        assert time.monotonic() - start < 2
    assert worker.run(3, "return 'alive'")["value"] == "alive"


def test_cancel_of_a_queued_request_skips_it(worker: WorkerProcess):
    worker.send({"t": "run", "id": 1, "hash": "slow", "code": "import time\ntime.sleep(0.3)\nreturn 1", "args": [], "mode": "value"})
    worker.send({"t": "run", "id": 2, "hash": "side", "code": "import builtins\nbuiltins.ran = True", "args": [], "mode": "value"})
    worker.cancel(2)
    assert worker.recv()["value"] == 1
    assert worker.recv() == {"t": "err", "id": 2, "kind": "interrupted", "message": "cancelled before it ran"}
    assert worker.run(3, "import builtins\nreturn getattr(builtins, 'ran', False)")["value"] is False


def test_cancels_racing_their_requests_stop_each_one_once_and_nothing_else(worker: WorkerProcess):
    # Batches of requests of a few milliseconds each, every other one cancelled while the batch
    # runs: a cancel lands before its request runs, while it runs, or after it finished. Each
    # request gets one reply, and the ones never cancelled are never interrupted (no stray
    # signal reaches them).
    spin = "n = 0\nfor _ in range(_sb_0):\n    n += 1\nreturn n"
    assert worker.run(0, spin, 10, hash_="spin")["value"] == 10
    outcomes: dict[int, str] = {}
    for batch in range(40):
        ids = range(batch * 10 + 1, batch * 10 + 11)
        for rid in ids:
            worker.send({"t": "run", "id": rid, "hash": "spin", "args": [(rid % 5) * 20000]})
        for rid in ids[::2]:
            worker.cancel(rid)
            time.sleep(0.0005 * (rid % 3))
        while len(outcomes) < ids[-1]:
            reply = worker.recv()
            assert reply["id"] not in outcomes
            outcomes[reply["id"]] = "ok" if reply["t"] == "ok" else reply["kind"]
    assert all(outcomes[rid] == "ok" for rid in range(2, 401, 2))
    assert {outcomes[rid] for rid in range(1, 401, 2)} <= {"ok", "interrupted"}
    assert "interrupted" in {outcomes[rid] for rid in range(1, 401, 2)}
    assert worker.run(401, "return 'alive'")["value"] == "alive"


def test_a_cancel_reaches_a_drop_that_computes_in_stretches_between_system_calls(worker: WorkerProcess):
    # Stretches of 2 ms holding the GIL, a system call between: a thread other than the main
    # one waiting for the GIL loses it at every call and is never owed a switch, so a cancel read
    # there waited 0.3 to 2.4 s. Read on the main thread, it stops the drop within milliseconds.
    for rid in range(1, 4):
        worker.send({"t": "run", "id": rid, "hash": "stretches", "code": STRETCHES if rid == 1 else None, "args": [], "mode": "value"})
        time.sleep(0.1)
        start = time.monotonic()
        worker.cancel(rid)
        assert worker.recv(timeout=5) == {"t": "err", "id": rid, "kind": "interrupted", "message": "interrupted"}
        assert time.monotonic() - start < 0.25
    assert worker.run(4, "return 'alive'")["value"] == "alive"


@pytest.mark.parametrize("how", ["emit", "log"])
def test_a_cancel_never_tears_a_frame_the_drop_is_writing(worker: WorkerProcess, how: str):
    # Nothing reads the replies: the channel fills and the worker blocks in the middle of a
    # 4 MiB frame. The cancel's signal then cuts the write short; the frame must still be finished
    # before the drop is interrupted, or every frame after it is read from the wrong offset.
    send = "snakebridge.emit(big)" if how == "emit" else "logging.getLogger('drop').warning(big)"
    code = f"import logging, snakebridge\nbig = 'x' * (4 << 20)\nwhile True:\n    {send}"
    worker.send({"t": "run", "id": 1, "hash": how, "code": code, "args": [], "mode": "value"})
    time.sleep(0.5)
    worker.cancel(1)
    frames = 0
    while (msg := worker.recv(timeout=10))["t"] in ("emit", "log"):
        assert len(msg["value" if how == "emit" else "message"]) == 4 << 20
        frames += 1
    assert msg == {"t": "err", "id": 1, "kind": "interrupted", "message": "interrupted"}
    assert frames >= 1
    assert worker.run(2, "return 'alive'")["value"] == "alive"


def test_a_sigint_without_a_cancel_interrupts_nothing(worker: WorkerProcess):
    # Ctrl-C in a terminal reaches the workers too: with no cancel on the channel, nothing stops.
    worker.send({"t": "run", "id": 1, "hash": "nap", "code": "import time\ntime.sleep(0.3)\nreturn 'slept'", "args": [], "mode": "value"})
    time.sleep(0.1)
    worker.proc.send_signal(signal.SIGINT)
    assert worker.recv()["value"] == "slept"


def test_a_malformed_control_frame_ends_the_worker_with_a_message():
    # Sent while a drop runs, as cancels are: the handler then runs at the drop's next step. (A
    # SIGINT that lands as an idle worker enters its read is handled when the read returns.)
    w = WorkerProcess()
    try:
        w.send({"t": "run", "id": 1, "hash": "spin", "code": "while True:\n    pass", "args": [], "mode": "value"})
        time.sleep(0.1)
        os.write(w.w5, b"\x00\x00\x00\x02\xc1\xc1")
        w.proc.send_signal(signal.SIGINT)
        assert w.proc.wait(5) == 2
        assert w.proc.stderr is not None and b"protocol error on the control channel" in w.proc.stderr.read()
    finally:
        w.close()


def test_a_storm_of_cancels_loses_none(worker: WorkerProcess):
    # 300 cancels, each with its SIGINT, while one drop sleeps: signals coalesce and come while
    # the handler reads, which must read the channel until it is empty every time.
    worker.send_all(
        [
            {"t": "run", "id": 1, "hash": "nap", "code": "import time\ntime.sleep(0.5)\nreturn 'slept'", "args": [], "mode": "value"},
            {"t": "run", "id": 2, "hash": "one", "code": "return 1", "args": [], "mode": "value"},
            *({"t": "run", "id": rid, "hash": "one", "args": [], "mode": "value"} for rid in range(3, 303)),
        ]
    )
    for rid in range(2, 302):
        worker.cancel(rid)
    assert worker.recv()["value"] == "slept"
    for rid in range(2, 302):
        assert worker.recv() == {"t": "err", "id": rid, "kind": "interrupted", "message": "cancelled before it ran"}
    assert worker.recv()["value"] == 1  # 302, never cancelled


def test_a_late_cancel_does_not_hit_the_next_request(worker: WorkerProcess):
    assert worker.run(1, "return 1")["value"] == 1
    worker.cancel(1)
    assert worker.run(2, "import time\ntime.sleep(0.2)\nreturn 2")["value"] == 2


def test_encode_error_reply_names_the_path(worker: WorkerProcess):
    reply = worker.run(1, "return {'rows': [1, object()]}")
    assert reply["kind"] == "encode" and reply["path"] == ["rows", 1]


def test_exceptions_become_typed_replies(worker: WorkerProcess):
    reply = worker.run(1, "x = 1\nraise RuntimeError('boom')")
    assert reply["kind"] == "exception" and reply["type"] == "RuntimeError" and reply["line"] == 2
    reply = worker.run(2, "import sys\nsys.exit(3)")
    assert reply["kind"] == "exception" and reply["type"] == "SystemExit"


def test_eof_on_the_control_channel_ends_the_worker_even_mid_drop(worker: WorkerProcess):
    worker.send({"t": "run", "id": 1, "hash": "spin", "code": "while True:\n    pass", "args": [], "mode": "value"})
    time.sleep(0.2)
    os.close(worker.w5)
    assert worker.proc.wait(5) == 0


def end_writing(fd: int) -> None:
    """Shuts a socketpair end for writing, as Node's `end()` does, keeping the fd open."""
    sock = socket.socket(fileno=os.dup(fd))
    sock.shutdown(socket.SHUT_WR)
    sock.close()


def test_the_end_of_writing_on_the_control_channel_ends_the_worker_even_mid_drop(worker: WorkerProcess):
    # Node's `end()` shuts its side for writing and keeps the socket: no hang-up, only POLLRDHUP.
    worker.send({"t": "run", "id": 1, "hash": "spin", "code": "while True:\n    pass", "args": [], "mode": "value"})
    time.sleep(0.2)
    end_writing(worker.w5)
    assert worker.proc.wait(5) == 0


def test_shutdown_with_sigint_ends_a_drop_computing_in_stretches_at_once(worker: WorkerProcess):
    # As Node shuts a worker down: the channels ended, then SIGINT. The control thread alone
    # would wait for the GIL that such a drop keeps from it (64 ms to 14 s in four tries).
    worker.send({"t": "run", "id": 1, "hash": "stretches", "code": STRETCHES, "args": [], "mode": "value"})
    time.sleep(0.1)
    start = time.monotonic()
    end_writing(worker.w3)
    end_writing(worker.w5)
    worker.proc.send_signal(signal.SIGINT)
    assert worker.proc.wait(5) == 0
    assert time.monotonic() - start < 0.25


def test_eof_on_the_request_channel_ends_an_idle_worker(worker: WorkerProcess):
    assert worker.run(1, "return 1")["value"] == 1
    os.close(worker.w3)
    assert worker.proc.wait(5) == 0


def test_a_cancel_may_overtake_its_request(worker: WorkerProcess):
    # The control channel is separate: a cancel can arrive before the request it names.
    worker.cancel(5)
    time.sleep(0.1)
    worker.send({"t": "run", "id": 5, "hash": "one", "code": "return 1", "args": [], "mode": "value"})
    assert worker.recv() == {"t": "err", "id": 5, "kind": "interrupted", "message": "cancelled before it ran"}
    assert worker.run(6, "return 2")["value"] == 2


def test_a_malformed_request_frame_ends_the_worker_with_a_message():
    w = WorkerProcess()
    try:
        os.write(w.w3, b"\x00\x00\x00\x02\xc1\xc1")
        assert w.proc.wait(5) == 2
        assert w.proc.stderr is not None and b"protocol error" in w.proc.stderr.read()
    finally:
        w.close()


def test_unknown_messages_get_a_protocol_reply(worker: WorkerProcess):
    worker.send({"t": "frobnicate", "id": 9})
    assert worker.recv()["kind"] == "protocol"
    ready, _, _ = select.select([], [], [], 0)
    assert ready == []


def test_stream_pulls_items_on_demand_and_close_runs_finally(worker: WorkerProcess):
    code = (
        "import builtins\nbuiltins.closed = False\n"
        "def gen():\n    try:\n        for i in range(100):\n            yield i\n    finally:\n        builtins.closed = True\n"
        "return gen()"
    )
    opened = worker.run(1, code, mode="stream")
    assert opened == {"t": "ok", "id": 1, "value": 1}
    worker.send({"t": "pull", "id": 2, "stream": 1, "n": 3})
    assert worker.recv() == {"t": "ok", "id": 2, "value": {"items": [0, 1, 2], "done": False}}
    worker.send({"t": "close", "stream": 1})
    assert worker.run(3, "import builtins\nreturn builtins.closed")["value"] is True
    worker.send({"t": "pull", "id": 4, "stream": 1, "n": 3})
    assert worker.recv()["kind"] == "protocol"


def test_stream_ends_with_done(worker: WorkerProcess):
    worker.run(1, "return iter([1, 2])", mode="stream")
    worker.send({"t": "pull", "id": 2, "stream": 1, "n": 5})
    assert worker.recv()["value"] == {"items": [1, 2], "done": True}


def test_emit_and_logging_frames_come_before_the_reply(worker: WorkerProcess):
    worker.send({"t": "run", "id": 1, "hash": "em", "code": "import logging, snakebridge\nsnakebridge.emit({'p': 1})\nlogging.getLogger('x').warning('careful %s', 'now')\nreturn 'done'", "args": [], "mode": "value"})
    assert worker.recv() == {"t": "emit", "id": 1, "value": {"p": 1}}
    assert worker.recv() == {"t": "log", "level": 30, "name": "x", "message": "careful now"}
    assert worker.recv() == {"t": "ok", "id": 1, "value": "done"}


def test_a_waiting_worker_polls_for_twice_its_last_wait_within_the_limit_and_sleeps_after_a_longer_one():
    from snakebridge_worker.__main__ import Patience

    p = Patience(250e-6)
    assert p.window == Patience.FLOOR  # before any wait: the floor
    p.waited(80e-6)
    assert p.window == pytest.approx(160e-6)
    p.waited(5e-6)  # the next request was there already (pipelined)
    assert p.window == Patience.FLOOR
    p.waited(200e-6)
    assert p.window == 250e-6  # twice the wait, but no more than the limit
    p.waited(3e-3)  # the caller went quiet: sleep at once next time
    assert p.window == 0
    p.waited(90e-6)  # requests close together again: poll again
    assert p.window == pytest.approx(180e-6)
    never = Patience(0.0)
    never.waited(1e-6)
    assert never.window == 0


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads CPU time from /proc")
@pytest.mark.parametrize("spin", ["0", "5000"])
def test_a_worker_with_nothing_to_do_sleeps_rather_than_polls(worker_factory, spin):
    worker = worker_factory({"SNAKEBRIDGE_WORKER_SPIN_US": spin})
    for rid in range(1, 50):  # requests close together: a worker allowed to poll polls between them
        assert worker.run(rid, "return 1")["value"] == 1
    before = _cpu_seconds(worker.proc.pid)
    time.sleep(0.5)
    # Polling all along would be ≈ 0.5 s; a worker asleep in its read takes none.
    assert _cpu_seconds(worker.proc.pid) - before < 0.05
    assert worker.run(50, "return 2")["value"] == 2


@pytest.mark.parametrize("spin", ["0", "50", "5000"])
def test_requests_are_served_whether_they_come_at_once_or_after_the_worker_went_to_sleep(worker_factory, spin):
    # After a reply the worker tries for the next request for a while (at most
    # SNAKEBRIDGE_WORKER_SPIN_US), then sleeps until one comes: both paths, and a frame split across the two, must read alike.
    w = worker_factory({"SNAKEBRIDGE_WORKER_SPIN_US": spin})
    assert w.run(1, "return 1")["value"] == 1
    time.sleep(0.02)  # past the spin: the worker is asleep
    assert w.run(2, "return 2")["value"] == 2
    body = codec.encode({"t": "run", "id": 3, "hash": "h3", "code": "return 3", "args": [], "mode": "value"})
    frame = struct.pack(">I", len(body)) + body
    os.write(w.w3, frame[:5])
    time.sleep(0.01)
    os.write(w.w3, frame[5:])
    assert w.recv()["value"] == 3
