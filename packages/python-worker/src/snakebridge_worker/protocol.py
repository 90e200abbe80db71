"""Framing: a 4-byte big-endian length, then the body."""
from __future__ import annotations

import _thread
import os
import struct

_LEN = struct.Struct(">I")
DEFAULT_MAX_FRAME = 1 << 30


class FrameError(Exception):
    """The byte stream is not a sequence of valid frames."""


class FrameReader:
    """Reads a channel and yields complete frame bodies.

    Reads go into one buffer made once (`chunk` bytes): `os.read` would allocate a fresh
    megabyte for every read, which glibc maps and unmaps, three system calls per request. A
    frame of at least `big` bytes gets a buffer of its own (a `bytearray`, writable), read
    straight from the channel: its payloads are then decoded in place, without a copy.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, big: int = 64 * 1024, chunk: int = 64 * 1024) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self._big_min = big
        self._big: bytearray | None = None
        self._got = 0
        chunk_buffer = bytearray(chunk)
        self._view = memoryview(chunk_buffer)
        self._into = [chunk_buffer]

    def read(self, fd: int) -> list[bytes | bytearray] | None:
        """One read of `fd`: the frames it completes, in order, or None at the end of the channel.
        A non-blocking `fd` with nothing to read raises BlockingIOError."""
        big = self._big
        if big is not None:
            n = os.readv(fd, [memoryview(big)[self._got :]])
            return None if n == 0 else self._filled(n)
        n = os.readv(fd, self._into)
        if n == 0:
            return None
        view = self._view
        if not self._buf and n > 4:
            # The common read: one whole small request and nothing pending.
            (length,) = _LEN.unpack_from(view)
            if n == 4 + length and length < self._big_min and length <= self._max:
                return [bytes(view[4:n])]
        return self.feed(view[:n])

    def _filled(self, n: int) -> list[bytes | bytearray]:
        """`n` bytes were read into the big frame's buffer."""
        self._got += n
        big = self._big
        if big is not None and self._got == len(big):
            self._big = None
            return [big]
        return []

    def feed(self, chunk: bytes | memoryview) -> list[bytes | bytearray]:
        """The frames `chunk` completes, in order (copied out of it: its memory may be reused)."""
        frames: list[bytes | bytearray] = []
        buf = self._buf
        buf += chunk
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length > self._max:
                raise FrameError(f"a frame claims {length} bytes, above the limit of {self._max}")
            available = n - pos - 4
            if length >= self._big_min:
                big = bytearray(length)
                got = min(length, available)
                big[:got] = memoryview(buf)[pos + 4 : pos + 4 + got]
                pos += 4 + got
                if got == length:
                    frames.append(big)
                    continue
                self._big, self._got = big, got
                break
            if available < length:
                break
            frames.append(bytes(buf[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        if pos:
            del buf[:pos]
        return frames


# A frame whose body is one buffer under this size is written as one joined buffer, and may be held.
_SMALL_BODY = 1 << 16


def _small_frame(parts: list) -> bytes | None:
    """The whole frame (length and body) of a small one-part body, joined; None for any other."""
    if len(parts) == 1 and len(parts[0]) < _SMALL_BODY:
        return _LEN.pack(len(parts[0])) + parts[0]
    return None


# At most this many buffers per writev (the system's IOV_MAX is at least 1024 on Linux).
_IOV_MAX = 1024


class FrameWriter:
    """Writes whole frames to a file descriptor; safe to share between threads.

    Small frames can be held (`hold`) to leave together with the next write or `flush`, in one
    system call: the replies to a batch of requests read together.
    """

    # Held frames leave once they reach this many bytes.
    HOLD_BYTES = 64 * 1024

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = _thread.allocate_lock()
        self._held: list[bytes] = []
        self._held_bytes = 0

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def write(self, body: bytes) -> None:
        """One frame (after any held ones)."""
        self.write_parts([body])

    def hold(self, parts: list) -> bool:
        """Keeps the frame whose body is `parts` to leave with the next write or `flush`; False,
        keeping nothing, for a frame too big to hold."""
        frame = _small_frame(parts)
        if frame is None:
            return False
        self._lock.acquire()
        try:
            self._held.append(frame)
            self._held_bytes += len(frame)
            if self._held_bytes >= self.HOLD_BYTES:
                self._write_held(b"")
        finally:
            self._lock.release()
        return True

    def flush(self) -> None:
        """Sends the held frames."""
        if self._held:
            self._lock.acquire()
            try:
                if self._held:
                    self._write_held(b"")
            finally:
                self._lock.release()

    def _write_held(self, after: bytes) -> None:
        """Writes the held frames, then `after`, in one call (the lock is held)."""
        held = self._held
        held.append(after)
        data = b"".join(held)
        held.clear()
        self._held_bytes = 0
        self._write_all(data)

    def _write_all(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        if written < len(data):
            rest = memoryview(data)[written:]
            while rest:
                rest = rest[os.write(self._fd, rest) :]

    def write_parts(self, parts: list) -> None:
        """One frame whose body is `parts` in order, written without joining them (writev)."""
        data = _small_frame(parts)
        if data is not None:
            # A small frame, a reply's usual shape: one write. The lock is taken with
            # acquire/release rather than `with`: half the cost, on every reply.
            self._lock.acquire()
            try:
                if self._held:
                    self._write_held(data)
                else:
                    self._write_all(data)
            finally:
                self._lock.release()
            return
        views = [memoryview(p).cast("B") for p in parts]
        views.insert(0, memoryview(_LEN.pack(sum(v.nbytes for v in views))))
        with self._lock:
            if self._held:
                self._write_held(b"")
            while views:
                written = os.writev(self._fd, views[:_IOV_MAX])
                while written:
                    head = views[0]
                    if written >= head.nbytes:
                        written -= head.nbytes
                        views.pop(0)
                    else:
                        views[0] = head[written:]
                        written = 0
                while views and views[0].nbytes == 0:
                    views.pop(0)
