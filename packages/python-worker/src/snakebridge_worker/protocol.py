"""Framing: a 4-byte big-endian length, then the body."""
from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator

_LEN = struct.Struct(">I")
DEFAULT_MAX_FRAME = 1 << 30


class FrameError(Exception):
    """The byte stream is not a sequence of valid frames."""


class FrameReader:
    """Accumulates bytes and yields complete frame bodies."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        buf = self._buf
        buf += chunk
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length > self._max:
                raise FrameError(f"a frame claims {length} bytes, above the limit of {self._max}")
            if n - pos - 4 < length:
                break
            yield bytes(buf[pos + 4 : pos + 4 + length])
            pos += 4 + length
        if pos:
            del buf[:pos]


def frame(body: bytes) -> bytes:
    return _LEN.pack(len(body)) + body


class FrameWriter:
    """Writes whole frames to a file descriptor; safe to share between threads."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def write(self, *bodies: bytes) -> None:
        data = memoryview(b"".join(frame(b) for b in bodies))
        with self._lock:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
