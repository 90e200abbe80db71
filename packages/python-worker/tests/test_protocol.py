from __future__ import annotations

import pytest

from snakebridge_worker.protocol import FrameError, FrameReader, frame


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
