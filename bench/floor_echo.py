"""The benchmark floor: a minimal length-prefixed frame echo over fds 3 (in) and 4 (out).

Standard library only. Every frame is a 4-byte big-endian length and a body; the
body's first byte says what to do with it:

  b"e..."  echo: the whole frame is written back unchanged
  b"s..."  sink: consumed, no reply (bulk Node -> Python)
  b"g" + 8-byte total + 4-byte chunk   generate: `total` bytes back in frames of `chunk`
           bytes each (bulk Python -> Node), each body starting with b"d"
  b"j..."  exec + JSON: the rest is UTF-8 JSON [code, args]; `code` is compiled once
           (cached by its text), run with `args` bound to `_a`, and the value of `_r`
           is written back as b"j" + JSON

Reads take whatever is available, into one buffer made once (`os.read` would allocate a
fresh megabyte per call: three system calls of memory mapping on every read), and every
complete frame in it is answered in one write, as any sane pipelined server does. EOF on
fd 3 ends the process.
"""

import json
import os
import struct
import sys

IN, OUT = 3, 4
HEADER = struct.Struct(">I")
GEN = struct.Struct(">QI")


def write_all(data):
    view = memoryview(data)
    while view:
        n = os.write(OUT, view)
        view = view[n:]


def main():
    buf = bytearray()
    chunk = bytearray(1 << 20)
    view = memoryview(chunk)
    cache = {}
    while True:
        n = os.readv(IN, [chunk])
        if not n:
            return
        buf += view[:n]
        out = bytearray()
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (length,) = HEADER.unpack_from(buf, pos)
            if end - pos - 4 < length:
                break
            op = buf[pos + 4]
            if op == 0x65:  # e
                out += buf[pos : pos + 4 + length]
            elif op == 0x73:  # s
                pass
            elif op == 0x67:  # g
                total, size = GEN.unpack_from(buf, pos + 5)
                if out:
                    write_all(out)
                    out = bytearray()
                body = b"d" * size
                frame = HEADER.pack(size) + body
                sent = 0
                while sent < total:
                    if total - sent < size:
                        last = total - sent
                        write_all(HEADER.pack(last) + body[:last])
                        sent = total
                    else:
                        write_all(frame)
                        sent += size
            elif op == 0x6A:  # j
                code, args = json.loads(buf[pos + 5 : pos + 4 + length].decode())
                compiled = cache.get(code)
                if compiled is None:
                    compiled = cache[code] = compile(code, "<floor>", "exec")
                scope = {"_a": args}
                exec(compiled, scope)
                reply = b"j" + json.dumps(scope.get("_r")).encode()
                out += HEADER.pack(len(reply)) + reply
            pos += 4 + length
        if pos:
            del buf[:pos]
        if out:
            write_all(out)


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    sys.exit(0)
