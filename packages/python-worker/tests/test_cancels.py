"""The worker's record of cancels, read from a real control channel in this process."""
from __future__ import annotations

import os
import struct

import snakebridge_worker.__main__ as main
from snakebridge_worker import codec
from snakebridge_worker.protocol import FrameWriter


def test_cancels_that_raced_their_replies_never_pile_up():
    # A cancel that comes after its request's reply names a request that is gone; a long-lived
    # worker under many racing timeouts must not keep them all.
    r, w = os.pipe()
    os.set_blocking(r, False)
    out = os.open(os.devnull, os.O_WRONLY)
    worker = main.Worker(FrameWriter(out))
    try:
        for start in range(0, 20_000, 1_000):
            frames = b""
            for rid in range(start, start + 1_000):
                body = codec.encode({"t": "cancel", "id": rid})
                frames += struct.pack(">I", len(body)) + body
            os.write(w, frames)
            worker.read_cancels(r)
            assert len(worker.cancelled) <= main.CANCELS_KEPT
        # The last ones, those of requests that may still be queued, are all kept.
        assert all(rid in worker.cancelled for rid in range(20_000 - main.CANCELS_KEPT // 2, 20_000))
    finally:
        for fd in (r, w, out):
            os.close(fd)
