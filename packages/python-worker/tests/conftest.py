from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from snakebridge_worker import codec

SRC = Path(__file__).resolve().parent.parent / "src"

# Moves the pipe ends to fds 3, 4 and 5 (via fresh copies, so they cannot clobber each
# other), then becomes the worker exactly as Node starts it.
_EXEC_ON_FDS = (
    "import fcntl, os, sys\n"
    "r, w, c = (fcntl.fcntl(int(a), fcntl.F_DUPFD_CLOEXEC, 10) for a in sys.argv[1:4])\n"
    "os.dup2(r, 3); os.dup2(w, 4); os.dup2(c, 5)\n"
    "os.execv(sys.executable, [sys.executable, '-u', '-m', 'snakebridge_worker'])\n"
)


def _channel() -> tuple[int, int]:
    """A channel as libuv makes one for a child: a socketpair, its two ends as raw fds."""
    a, b = socket.socketpair()
    return a.detach(), b.detach()


class WorkerProcess:
    """A real worker subprocess with its protocol on fds 3, 4 and 5, as Node starts it: each a
    socketpair, as libuv makes a child's pipes (one end closed is a hang-up there, but one end
    shut for writing is not)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        r3, self.w3 = _channel()
        self.r4, w4 = _channel()
        r5, self.w5 = _channel()
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, **(env or {})}
        env["PYTHONPATH"] = str(SRC)
        env["SNAKEBRIDGE_WORKER_ID"] = "7"

        self.proc = subprocess.Popen(
            [sys.executable, "-c", _EXEC_ON_FDS, str(r3), str(w4), str(r5)],
            env=env,
            pass_fds=(r3, w4, r5),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(r3)
        os.close(w4)
        os.close(r5)
        self.buf = b""
        self.hello = self.recv()

    def send(self, msg: dict[str, Any]) -> None:
        self.send_all([msg])

    def send_all(self, msgs: list[dict[str, Any]]) -> None:
        """Requests in one write, as Node sends those of one turn. (Each write is a buffer of its
        own in a socketpair, with its overhead: a few hundred small ones fill it.)"""
        frames = []
        for msg in msgs:
            body = codec.encode(msg)
            frames.append(struct.pack(">I", len(body)) + body)
        os.write(self.w3, b"".join(frames))

    def cancel(self, rid: int) -> None:
        """A cancel, as Node sends it: on the control channel, then SIGINT."""
        body = codec.encode({"t": "cancel", "id": rid})
        os.write(self.w5, struct.pack(">I", len(body)) + body)
        self.proc.send_signal(signal.SIGINT)

    def recv(self, timeout: float = 10.0, handles: codec.Handles | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                    return codec.decode(body, handles)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the worker")
            ready, _, _ = select.select([self.r4], [], [], left)
            if ready:
                chunk = os.read(self.r4, 1 << 16)
                if not chunk:
                    err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else b""
                    raise EOFError(f"the worker closed its reply channel: {err.decode(errors='replace')}")
                self.buf += chunk

    def run(self, rid: int, code: str, *args: Any, mode: str = "value", hash_: str | None = None) -> Any:
        self.send({"t": "run", "id": rid, "hash": hash_ or f"h{abs(hash(code))}", "code": code, "args": list(args), "mode": mode})
        return self.recv()

    def close(self) -> None:
        for fd in (self.w3, self.w5):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.r4)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def worker() -> Iterator[WorkerProcess]:
    w = WorkerProcess()
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def worker_factory() -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    """Workers started with extra environment variables, closed after the test."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        started.append(WorkerProcess(env))
        return started[-1]

    try:
        yield start
    finally:
        for w in started:
            w.close()
