"""Shared memory for big typed arrays and bytes (ext 6 in PROTOCOL.md), Linux only.

Each side writes into segments it owns and the other side opens them through `/proc/<pid>/fd`,
so a segment has no name to leak: it lives while one of the two processes holds it.

- Node lends a segment to one request (`Lent`): the worker maps it for that request only, and
  numpy wraps the mapping without a copy. After the request the mapping is closed, unless the
  drop kept an array over it (stored in a handle or a global): then the mapping lives as long as
  that array, and the worker tells Node the segment is kept, so that Node never writes into it
  again. Bytes in a lent segment are read out (`read`), never mapped.
- The worker's own segments (`Outbox`) carry big arrays of replies: a memfd, mapped once and
  reused; each is busy from the reply that names it until Node has read it and says so (`free`).
"""
from __future__ import annotations

import mmap
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def available() -> bool:
    """memfd and /proc: Linux, and a parent whose descriptors this process may open."""
    return hasattr(os, "memfd_create") and os.access(f"/proc/{os.getppid()}/fd", os.R_OK)


class SegmentError(Exception):
    """A segment named in a request could not be mapped."""


def _open(pid: int, fd: int, flags: int) -> int:
    """Opens segment `fd` of process `pid` through /proc."""
    try:
        return os.open(f"/proc/{pid}/fd/{fd}", flags)
    except OSError as e:
        raise SegmentError(f"cannot open shared memory segment {fd} of process {pid}: {e}") from None


def read(pid: int, fd: int, nbytes: int) -> bytes:
    """A copy of the first `nbytes` of a segment of process `pid`, read without mapping it: one
    copy straight into the bytes object (a mapping would fault in every page first)."""
    f = _open(pid, fd, os.O_RDONLY)
    try:
        data = os.pread(f, nbytes, 0)
        if len(data) < nbytes:  # a regular file gives it all at once; the rest just in case
            parts = [data]
            got = len(data)
            while got < nbytes:
                part = os.pread(f, nbytes - got, got)
                if not part:
                    raise SegmentError(f"shared memory segment {fd} of process {pid} ends at {got} of {nbytes} bytes")
                parts.append(part)
                got += len(part)
            data = b"".join(parts)
        return data
    except OSError as e:
        raise SegmentError(f"cannot read shared memory segment {fd} of process {pid}: {e}") from None
    finally:
        os.close(f)


class Lent:
    """The segments Node lent to one request, mapped for as long as it runs."""

    __slots__ = ("pid", "mapped")

    def __init__(self) -> None:
        self.pid = 0
        self.mapped: list[tuple[int, mmap.mmap, memoryview]] = []

    def map(self, pid: int, fd: int, nbytes: int) -> memoryview:
        f = _open(pid, fd, os.O_RDWR)
        try:
            mm = mmap.mmap(f, nbytes, mmap.MAP_SHARED)
        except (OSError, ValueError) as e:
            raise SegmentError(f"cannot map {nbytes} bytes of shared memory segment {fd} of process {pid}: {e}") from None
        finally:
            os.close(f)
        view = memoryview(mm)
        self.pid = pid
        self.mapped.append((fd, mm, view))
        return view

    def holding(self, address: int, nbytes: int, address_of: Any) -> int | None:
        """The lent segment whose mapping starts at `address` and holds `nbytes`, if any (its fd):
        an array of a result that is still where Node wrote it, which Node can take back as it is."""
        for fd, _, view in self.mapped:
            if nbytes <= view.nbytes and address_of(view) == address:
                return fd
        return None

    def mapping(self, fd: int) -> mmap.mmap:
        return next(mm for f, mm, _ in self.mapped if f == fd)

    def close(self) -> list[int]:
        """Unmaps every segment nothing holds any more; returns those something still holds."""
        kept = []
        for fd, mm, view in self.mapped:
            try:
                view.release()
                mm.close()
            except BufferError:  # an array over it outlived the request: the mapping lives with it
                kept.append(fd)
        self.mapped.clear()
        return kept


class Outbox:
    """The worker's segments for big arrays in replies, reused once Node has read them."""

    # Free segments kept mapped for reuse: at most 4 and 256 MiB, the least recently used closed
    # first, but always the last one freed, so that one big array sent again and again reuses it.
    KEEP_FREE = 4
    KEEP_FREE_BYTES = 256 << 20

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.pid = os.getpid()
        self.free_segments: list[tuple[int, int, mmap.mmap]] = []  # (size, fd, mapping)
        self.busy: dict[int, tuple[int, int, mmap.mmap]] = {}

    def put(self, data: memoryview) -> tuple[int, int] | None:
        """Copies `data` into a free segment; (pid, fd) to name it, or None when none can be had."""
        n = data.nbytes
        segment = self._take(n)
        if segment is None:
            return None
        size, fd, mm = segment
        mm[:n] = data
        self.busy[fd] = segment
        return self.pid, fd

    def _take(self, n: int) -> tuple[int, int, mmap.mmap] | None:
        fitting = [s for s in self.free_segments if s[0] >= n]
        if fitting:
            best = min(fitting, key=lambda s: s[0])
            self.free_segments.remove(best)
            return best
        try:
            fd = os.memfd_create("snakebridge", os.MFD_CLOEXEC)
        except OSError:
            return None
        try:
            os.posix_fallocate(fd, 0, n)  # the memory now or an error, never a SIGBUS on first touch
            return n, fd, mmap.mmap(fd, n, mmap.MAP_SHARED)
        except OSError:
            os.close(fd)
            return None

    def free(self, fds: Any) -> None:
        """Node has read these segments: they may be written again."""
        for fd in fds:
            segment = self.busy.pop(fd, None) if isinstance(fd, int) else None
            if segment is None:
                continue
            self.free_segments.append(segment)
            kept = sum(s[0] for s in self.free_segments)
            while len(self.free_segments) > 1 and (len(self.free_segments) > self.KEEP_FREE or kept > self.KEEP_FREE_BYTES):
                size, oldest, mm = self.free_segments.pop(0)
                kept -= size
                mm.close()
                os.close(oldest)
