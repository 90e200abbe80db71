from __future__ import annotations

import fcntl
import os
import select
import tracemalloc

import pytest

from snakebridge_worker.protocol import FrameError, FrameReader, FrameWriter


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def test_frames_split_across_reads_are_reassembled():
    data = frame(b"abc") + frame(b"") + frame(b"xyz" * 100)
    reader = FrameReader()
    out = []
    for i in range(0, len(data), 3):
        out.extend(reader.feed(data[i : i + 3]))
    assert out == [b"abc", b"", b"xyz" * 100]


def test_several_frames_in_one_chunk():
    reader = FrameReader()
    assert list(reader.feed(frame(b"1") + frame(b"22") + frame(b"333")[:4])) == [b"1", b"22"]
    assert list(reader.feed(b"333")) == [b"333"]


def test_an_oversized_claim_is_rejected_before_allocating():
    reader = FrameReader(max_frame=1024)
    with pytest.raises(FrameError, match="above the limit"):
        list(reader.feed(b"\xff\xff\xff\xff"))


def test_a_chunk_that_is_one_whole_frame_is_its_body_and_leaves_nothing_behind():
    reader = FrameReader(max_frame=1024, big=64)
    assert reader.feed(frame(b"abc")) == [b"abc"]
    # Nothing was kept: the next frame, split, comes whole from its two halves.
    assert reader.feed(frame(b"defg")[:3]) == []
    assert reader.feed(frame(b"defg")[3:]) == [b"defg"]
    # Whole frames after a split one, and one too big for a whole chunk of its own.
    assert reader.feed(frame(b"h")) == [b"h"]
    with pytest.raises(FrameError, match="above the limit"):
        reader.feed(frame(b"x" * 2000))


def test_a_whole_big_frame_in_one_chunk_gets_a_writable_buffer_of_its_own():
    reader = FrameReader(big=64)
    (body,) = reader.feed(frame(b"y" * 100))
    assert isinstance(body, bytearray) and body == b"y" * 100


def test_frames_read_from_a_channel_outlive_the_buffer_they_were_read_into():
    r, w = os.pipe()
    reader = FrameReader(chunk=64)
    try:
        os.write(w, frame(b"first"))
        (first,) = reader.read(r)
        os.write(w, frame(b"second") + frame(b"third")[:5])
        second = reader.read(r)
        os.write(w, frame(b"third")[5:])
        third = reader.read(r)
        assert (first, second, third) == (b"first", [b"second"], [b"third"])
        os.close(w)
        assert reader.read(r) is None  # the end of the channel
    finally:
        os.close(r)


def test_a_read_allocates_about_what_it_read():
    # A read of a small request must not allocate a big buffer for it (os.read(fd, 1 << 20) did:
    # glibc mapped, shrank and unmapped a fresh megabyte on every read of the worker).
    r, w = os.pipe()
    reader = FrameReader()
    try:
        tracemalloc.start()
        for i in range(100):
            os.write(w, frame(b"x" * 40))
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            assert reader.read(r) == [b"x" * 40]
            assert tracemalloc.get_traced_memory()[1] - before < 4096
    finally:
        tracemalloc.stop()
        os.close(r)
        os.close(w)


F_SETPIPE_SZ = 1031  # Linux's fcntl, not in Python 3.11's module


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_held_frames_leave_together_in_order_with_the_next_write_or_a_flush():
    r, w = os.pipe()
    writer = FrameWriter(w)
    try:
        assert writer.hold([b"one"]) and writer.hold([b"two"])
        assert writer.holding and not _readable(r)
        writer.write(b"three")  # another frame takes the held ones with it, ahead of it
        assert not writer.holding
        assert os.read(r, 1 << 16) == frame(b"one") + frame(b"two") + frame(b"three")
        assert writer.hold([b"four"]) and not _readable(r)
        writer.flush()
        assert os.read(r, 1 << 16) == frame(b"four")
        writer.flush()  # nothing held: nothing written
        assert not _readable(r)
        assert writer.hold([b"five"])
        writer.write_parts([b"six", b"seven"])  # a frame in parts, too
        assert os.read(r, 1 << 16) == frame(b"five") + frame(b"sixseven")
    finally:
        os.close(r)
        os.close(w)


def test_a_frame_too_big_to_hold_is_refused_and_held_bytes_leave_at_the_bound():
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)  # room for the bound's worth of frames, unread
    writer = FrameWriter(w)
    try:
        assert not writer.hold([b"x" * FrameWriter.HOLD_BYTES])
        assert not writer.hold([b"a", b"b"])  # parts are written as they are
        assert not writer.holding and not _readable(r)
        body = b"y" * (FrameWriter.HOLD_BYTES // 4)
        for _ in range(3):
            assert writer.hold([body])
        assert not _readable(r)
        assert writer.hold([body])  # the fourth takes the held bytes past the bound: all leave
        assert not writer.holding
        got = b""
        while _readable(r):
            got += os.read(r, 1 << 20)
        assert got == frame(body) * 4
    finally:
        os.close(r)
        os.close(w)
