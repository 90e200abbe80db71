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
