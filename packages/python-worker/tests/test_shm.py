"""Shared memory for big typed arrays (ext 6): segments lent by Node, the worker's own outbox."""
from __future__ import annotations

import os
import struct
import sys

import pytest

from snakebridge_worker import codec, shm

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.skipif(not shm.available(), reason="shared memory needs Linux (memfd, /proc)")

MiB = 1 << 20


def node_segment(data: bytes) -> int:
    """A segment as Node makes one: a file in /dev/shm, unlinked at once, open in this process."""
    path = f"/dev/shm/snakebridge-test-{os.getpid()}-{len(data)}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.unlink(path)
    os.write(fd, data)
    return fd


def mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum("snakebridge-test-" in line for line in maps)


def test_a_lent_segment_is_mapped_writable_and_unmapped_after_the_request():
    fd = node_segment(np.arange(MiB // 8, dtype="<f8").tobytes())
    lent = shm.Lent()
    a = np.frombuffer(lent.map(os.getpid(), fd, MiB), dtype="<f8")
    a *= 2  # writable: the mapping is shared with the writer
    assert os.pread(fd, 8, 8 * 3) == np.float64(6).tobytes()
    del a
    assert lent.close() == []
    assert mappings() == 0
    os.close(fd)


def test_a_segment_the_drop_kept_is_reported_and_lives_as_long_as_its_array():
    fd = node_segment(bytes(range(256)) * (MiB // 256))
    lent = shm.Lent()
    kept = np.frombuffer(lent.map(os.getpid(), fd, MiB), dtype=np.uint8)[10:20]  # even a view of a view
    assert lent.close() == [fd]
    os.close(fd)  # Node closes its end: the mapping still holds the memory
    assert list(kept) == list(range(10, 20))
    assert mappings() == 1
    del kept
    assert mappings() == 0


def test_a_segment_that_cannot_be_opened_is_a_clear_error():
    with pytest.raises(shm.SegmentError, match="cannot open shared memory segment 999999"):
        shm.Lent().map(os.getpid(), 999999, 8)


def test_outbox_segments_are_busy_until_freed_then_reused_and_bounded():
    out = shm.Outbox(MiB)
    data = memoryview(np.arange(MiB, dtype=np.uint8)).cast("B")
    pid, fd = out.put(data)
    assert pid == os.getpid() and os.pread(fd, 4, 100) == bytes([100, 101, 102, 103])
    _, second = out.put(data)
    assert second != fd  # the first is busy until Node frees it
    out.free([fd, second, 12345, "x"])  # unknown ids are ignored
    assert out.put(memoryview(bytes(MiB // 2)))[1] in (fd, second)  # the smallest that fits
    taken = [out.put(data)[1] for _ in range(8)]
    out.free(taken + [fd, second])
    assert len(out.free_segments) == shm.Outbox.KEEP_FREE and not out.busy
    # Past the byte budget the oldest go, but the last freed stays, however big.
    out.KEEP_FREE_BYTES = MiB
    (_, big) = out.put(memoryview(bytes(3 * MiB)))
    out.free([big])
    assert [s[1] for s in out.free_segments] == [big]


def test_encoding_puts_big_arrays_in_the_outbox_and_decoding_maps_them():
    out = shm.Outbox(MiB)
    codec.use_outbox(out)
    try:
        body = codec.encode({"small": np.arange(3.0), "big": np.arange(MiB // 4, dtype=np.int32).reshape(2, -1)})
        assert len(body) < 200 and len(out.busy) == 1
        lent = shm.Lent()
        decoded = codec.decode(body, codec.Handles(lambda h: h, lent))
        assert decoded["big"].shape == (2, MiB // 8) and decoded["big"][1, -1] == MiB // 4 - 1
        assert list(decoded["small"]) == [0.0, 1.0, 2.0]
        del decoded
        assert lent.close() == []
        # A value that fails to encode after a big array frees what was put for it.
        with pytest.raises(codec.EncodeError):
            codec.encode([np.zeros(MiB), object()])
        assert len(out.busy) == 1
    finally:
        codec.use_outbox(None)


def test_an_array_changed_in_place_is_named_in_the_lent_segment_and_a_view_of_it_is_copied():
    out = shm.Outbox(MiB // 2)
    codec.use_outbox(out)
    try:
        fd = node_segment(np.arange(MiB // 8, dtype="<f8").tobytes())
        lent = shm.Lent()
        a = codec.decode(shared_ext("d", (MiB // 8,), fd, MiB), codec.Handles(lambda h: h, lent))
        a *= 2
        shared = codec.Shared()
        body = b"".join(codec.encode_parts({"whole": a, "view": a[1:]}, lent, shared))
        assert [b.fd for b in shared.borrowed] == [fd] and len(out.busy) == 1 == len(shared.segments)  # the view went to the outbox
        decoded = codec.decode(body, codec.Handles(lambda h: h, shm.Lent()))
        assert decoded["whole"][3] == 6.0 and decoded["view"][0] == 2.0
        del decoded
        # Without the request's segments at hand, it is copied like any other.
        assert codec.encode_parts(a, None, codec.Shared()) and len(out.busy) == 2
        # Moved: the encoding names another segment that holds the same bytes.
        shared = codec.Shared()
        parts = codec.encode_parts(a, lent, shared)
        assert struct.unpack(">IIQ", b"".join(parts)[-16:]) == (os.getpid(), fd, MiB)
        shared.borrowed[0].move(4321, 77)
        assert struct.unpack(">IIQ", b"".join(parts)[-16:]) == (4321, 77, MiB)
        del a
        assert lent.close() == []
        os.close(fd)
    finally:
        codec.use_outbox(None)


def test_big_arrow_tables_go_through_shared_memory_both_ways():
    pa = pytest.importorskip("pyarrow")
    from snakebridge_worker import arrays

    t = pa.table({"x": np.arange(MiB // 4, dtype=np.float64), "n": np.arange(MiB // 4, dtype=np.int32) % 7})
    out = shm.Outbox(MiB)
    codec.use_outbox(out)
    try:
        body = codec.encode({"t": t})
        # ext 6 with the Arrow code and one dimension, the stream's length: the segment holds it.
        assert len(body) < 200 and len(out.busy) == 1 and b"\x06a\x01" in body
        ((_, (_, _, mm)),) = out.busy.items()
        n = arrays.table_ipc(t).nbytes
        ipc = bytes(mm[:n])
    finally:
        codec.use_outbox(None)
    assert pa.ipc.open_stream(ipc).read_all().equals(t)
    # From Node: a table over the mapping of the segment it lent, not a copy.
    fd = node_segment(ipc)
    lent = shm.Lent()
    got = codec.decode(shared_ext("a", (n,), fd, n), codec.Handles(lambda h: h, lent))
    assert got.equals(t) and mappings() == 1
    assert lent.close() == [fd]  # a table still held keeps its segment, as an array does
    os.close(fd)
    assert got.column("n")[12].as_py() == 12 % 7
    del got
    assert mappings() == 0
    with pytest.raises(codec.DecodeError, match="an Arrow stream of shape"):
        codec.decode(shared_ext("a", (2, n // 2), 999999, n), codec.Handles(lambda h: h, shm.Lent()))
    inline = codec.encode(np.zeros(8, dtype=np.uint8))
    with pytest.raises(codec.DecodeError, match="Arrow streams travel as ext 5"):
        codec.decode(inline.replace(b"\x04B", b"\x04a"))


def shared_ext(code: str, shape: tuple[int, ...], fd: int, nbytes: int) -> bytes:
    """ext 6 as Node writes it: the head of ext 4 (pad 0), then pid, fd and byte length."""
    head = bytes((ord(code), len(shape), 0)) + b"".join(struct.pack(">I", d) for d in shape)
    payload = head + struct.pack(">IIQ", os.getpid(), fd, nbytes)
    return b"\xc7" + bytes([len(payload)]) + b"\x06" + payload


def test_big_bytes_from_node_arrive_as_bytes_copied_out_of_a_segment_that_is_not_kept():
    data = bytes(range(256)) * (MiB // 256)
    fd = node_segment(data)
    lent = shm.Lent()
    got = codec.decode(shared_ext("s", (MiB,), fd, MiB), codec.Handles(lambda h: h, lent))
    assert type(got) is bytes and got == data
    assert lent.close() == [] and mappings() == 0
    with pytest.raises(codec.DecodeError, match="bytes of shape"):
        codec.decode(shared_ext("s", (2, MiB // 2), fd, MiB), codec.Handles(lambda h: h, shm.Lent()))
    os.close(fd)
    inline = codec.encode(np.zeros(8, dtype=np.uint8))
    assert inline.count(b"\x04B") == 1
    with pytest.raises(codec.DecodeError, match="bytes travel as bin"):
        codec.decode(inline.replace(b"\x04B", b"\x04s"))


def test_big_bytes_go_out_through_the_outbox_and_a_failed_encoding_frees_them_even_inside_a_set():
    out = shm.Outbox(MiB)
    codec.use_outbox(out)
    try:
        data = bytes(range(256)) * (MiB // 256)
        body = codec.encode({"b": data, "small": b"xyz"})
        assert len(body) < 200 and len(out.busy) == 1
        # Node reads element code B as a Uint8Array, what it makes of any bytes.
        decoded = codec.decode(body, codec.Handles(lambda h: h, shm.Lent()))
        assert decoded["small"] == b"xyz" and decoded["b"].dtype == np.uint8 and decoded["b"].tobytes() == data
        del decoded
        with pytest.raises(codec.EncodeError):
            codec.encode([frozenset([data]), object()])
        with pytest.raises(codec.EncodeError):
            codec.encode([data, object()])
        assert len(out.busy) == 1
    finally:
        codec.use_outbox(None)


def test_shared_arrays_need_a_request_to_map_them():
    out = shm.Outbox(8)
    codec.use_outbox(out)
    try:
        body = codec.encode(np.zeros(4))
    finally:
        codec.use_outbox(None)
    with pytest.raises(codec.DecodeError, match="shared memory where none is allowed"):
        codec.decode(body)


def test_the_worker_maps_lent_segments_tells_what_it_kept_and_replies_through_its_outbox(worker_factory):
    w = worker_factory({"SNAKEBRIDGE_SHM_THRESHOLD": str(MiB)})
    assert w.hello["shm"] is True
    # This process lends its segments as Node does (a memfd here rather than a file in /dev/shm).
    mine = shm.Outbox(MiB)

    def run(rid, code, mode="value"):
        codec.use_outbox(mine)
        try:
            w.send({"t": "run", "id": rid, "hash": code, "code": code, "args": [np.arange(MiB // 8, dtype="<f8")], "mode": mode})
        finally:
            codec.use_outbox(None)
        (fd,) = mine.busy
        mine.free([fd])
        return fd

    # A drop that lets go of its array: no "kept"; the reply's big array is in the worker's segment.
    run(1, "return _sb_0 * 2")
    lent = shm.Lent()
    reply = w.recv(handles=codec.Handles(lambda h: h, lent))
    assert reply["t"] == "ok" and reply["value"][3] == 6.0
    theirs = lent.mapped[0][0]
    del reply
    lent.close()
    w.send({"t": "free", "fds": [theirs]})
    run(2, "return _sb_0 * 2")
    lent = shm.Lent()
    reply = w.recv(handles=codec.Handles(lambda h: h, lent))
    assert reply["value"][5] == 10.0 and lent.mapped[0][0] == theirs  # freed, so reused
    del reply
    lent.close()

    # A drop that keeps it (a handle): "kept" names the segment, before the reply.
    fd = run(3, "return _sb_0", mode="handle")
    assert w.recv() == {"t": "kept", "fds": [fd]}
    assert w.recv()["t"] == "ok"


def test_without_the_threshold_the_worker_replies_through_the_pipe(worker):
    assert worker.hello["shm"] is shm.available()
    reply = worker.run(1, "import numpy as np; return np.ones(1 << 18)")
    assert reply["t"] == "ok" and reply["value"].sum() == 1 << 18
