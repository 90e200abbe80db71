"""Values: MessagePack with the extension types of PROTOCOL.md, standard library only."""
from __future__ import annotations

import struct
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import Callable
    from typing import Any

    import msgpack

from . import arrays, shm

# msgpack's C codec for small frames, once `accelerate` has imported it (when installed); the
# reference codec below until then, and without it.
_msgpack: Any = None
# One packer for every small reply (`packb` makes one per call, a third of its cost). Its `pack`
# runs in C under the GIL and calls no Python code for scalar values: threads can share it.
_packer: msgpack.Packer | None = None


def accelerate() -> None:
    """Uses msgpack's C codec from now on, if it is installed (any thread may call this: the
    reference codec and msgpack's read and write every message alike)."""
    global _msgpack, _packer
    try:
        import msgpack
    except ImportError:
        return
    _packer = msgpack.Packer(use_bin_type=True, strict_types=True)
    _msgpack = msgpack

EXT_TIMESTAMP = -1
EXT_BIGINT = 1
EXT_SET = 2
EXT_HANDLE = 3
EXT_NDARRAY = 4
EXT_ARROW = 5
EXT_SHARED_NDARRAY = 6
# The element code of ext 6 that carries bytes (a big Uint8Array from Node), not an array.
BYTES_CODE = "s"
# The element code of ext 6 that carries an Arrow IPC stream (a big table, either way).
ARROW_CODE = "a"

# Binary payloads at least this long are not copied into the encoding: they become parts of it,
# written to the channel from where they are (one writev).
BIG_BYTES = 64 * 1024

_B = struct.Struct(">B")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_Q = struct.Struct(">Q")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_i = struct.Struct(">i")
_q = struct.Struct(">q")
_d = struct.Struct(">d")
_f = struct.Struct(">f")
_TS96 = struct.Struct(">Iq")
_TS64 = struct.Struct(">Q")
_SEGMENT = struct.Struct(">IIQ")  # ext 6: pid, fd, byte length

Path = list  # list[str | int]


class EncodeError(Exception):
    """A value has no mapping; `path` names it."""

    def __init__(self, path: list[str | int], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class DecodeError(Exception):
    """The bytes are not a valid value."""


class Handles:
    """Resolves handle references while decoding a request, and maps the shared memory it names
    (into `lent`, made when the first segment is met). One serves request after request (`reset`)."""

    __slots__ = ("resolve", "lent", "met")

    def __init__(self, resolve: Callable[[int], Any], lent: shm.Lent | None = None) -> None:
        self.resolve = resolve
        self.lent = lent
        self.met = False  # whether a handle reference was read

    def reset(self) -> None:
        """Ready for the next request (the last one's `lent` now belongs to its message)."""
        self.lent = None
        self.met = False

    def handle(self, hid: int) -> Any:
        self.met = True
        return self.resolve(hid)

    def __call__(self, code: int, payload: bytes) -> Any:
        """msgpack's ext_hook (the object itself: nothing to make per request)."""
        return _extension(code, payload, self)


# The worker's segments for big arrays in replies; None: every payload goes through the pipe.
_outbox: shm.Outbox | None = None


def use_outbox(outbox: shm.Outbox | None) -> None:
    global _outbox
    _outbox = outbox


def encode(value: Any) -> bytes:
    return b"".join(encode_parts(value))


# Values msgpack's C encoder writes exactly as ours does (a str it cannot encode, or an int
# beyond 64 bits, makes it raise, and ours takes over).
_SCALARS = (type(None), bool, int, float, str)


class Borrowed:
    """A big array of a reply that is still in the segment Node lent: the reply names that
    segment (ext 6 with Node's pid), where `at` in the bytearray `part` holds its pid and fd."""

    __slots__ = ("fd", "nbytes", "part", "at")

    def __init__(self, fd: int, nbytes: int, part: bytearray, at: int) -> None:
        self.fd, self.nbytes, self.part, self.at = fd, nbytes, part, at

    def move(self, pid: int, fd: int) -> None:
        """Names another segment that holds the same bytes instead."""
        self.part[self.at : self.at + 8] = _SEGMENT.pack(pid, fd, self.nbytes)[:8]


class Shared:
    """What an encoding put in shared memory: arrays named where Node lent them (`borrowed`),
    and the outbox segments it wrote (`segments`)."""

    __slots__ = ("borrowed", "segments")

    def __init__(self) -> None:
        self.borrowed: list[Borrowed] = []
        self.segments: list[int] = []


def encode_parts(value: Any, lent: shm.Lent | None = None, shared: Shared | None = None) -> list[Any]:
    """The encoding as buffers to write in order; big payloads are included by reference. A big
    numpy array still where Node lent it (`lent`) is named in place; `shared` says what went where."""
    if _packer is not None and type(value) is dict and "value" in value and type(value["value"]) in _SCALARS:
        # A reply with a scalar value, the common small reply: its other fields are a str and an int.
        try:
            return [_packer.pack(value)]
        except Exception:  # noqa: BLE001 - ours decides
            _packer.reset()
    e = _Encoder(bytearray())
    if shared is not None:
        e.borrowed, e.segments = shared.borrowed, shared.segments
        if lent is not None and lent.mapped:
            e.lent = lent
    try:
        e.value(value, [], set())
    except BaseException:
        if _outbox is not None:
            _outbox.free(e.segments)  # nobody will read what was put there
        raise
    return e.finish()


class _Encoder:
    __slots__ = ("out", "parts", "base", "segments", "lent", "borrowed")

    def __init__(self, out: bytearray) -> None:
        self.out = out
        self.parts: list[Any] = []
        self.base = 0  # bytes already moved to parts
        self.segments: list[int] = []  # outbox segments written by this encoding
        self.lent: shm.Lent | None = None
        self.borrowed: list[Borrowed] = []

    def finish(self) -> list[Any]:
        if self.out or not self.parts:
            self.parts.append(self.out)
        return self.parts

    def bulk(self, data: Any) -> None:
        """Appends raw bytes: copied when small, by reference when big."""
        n = data.nbytes if isinstance(data, memoryview) else len(data)
        if n < BIG_BYTES:
            self.out += data
            return
        self.parts.append(self.out)
        self.parts.append(data)
        self.base += len(self.out) + n
        self.out = bytearray()

    def int_(self, n: int) -> None:
        out = self.out
        if 0 <= n:
            if n < 0x80:
                out.append(n)
            elif n < 0x100:
                out += b"\xcc" + _B.pack(n)
            elif n < 0x10000:
                out += b"\xcd" + _H.pack(n)
            elif n < 0x100000000:
                out += b"\xce" + _I.pack(n)
            elif n < 0x10000000000000000:
                out += b"\xcf" + _Q.pack(n)
            else:
                self.ext(EXT_BIGINT, str(n).encode("ascii"))
        else:
            if n >= -32:
                out.append(n & 0xFF)
            elif n >= -0x80:
                out += b"\xd0" + _b.pack(n)
            elif n >= -0x8000:
                out += b"\xd1" + _h.pack(n)
            elif n >= -0x80000000:
                out += b"\xd2" + _i.pack(n)
            elif n >= -0x8000000000000000:
                out += b"\xd3" + _q.pack(n)
            else:
                self.ext(EXT_BIGINT, str(n).encode("ascii"))

    def str_(self, s: str) -> None:
        b = s.encode("utf-8", "surrogatepass")
        n = len(b)
        out = self.out
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += b"\xd9" + _B.pack(n)
        elif n < 0x10000:
            out += b"\xda" + _H.pack(n)
        else:
            out += b"\xdb" + _I.pack(n)
        out += b

    def bin_(self, b: bytes | bytearray | memoryview) -> None:
        n = len(b) if not isinstance(b, memoryview) else b.nbytes
        if _outbox is not None and n >= _outbox.threshold:
            # Node reads big bytes as the Uint8Array it makes of any bytes, out of shared memory.
            return self.ndarray("B", (n,), memoryview(b).cast("B"))
        out = self.out
        if n < 0x100:
            out += b"\xc4" + _B.pack(n)
        elif n < 0x10000:
            out += b"\xc5" + _H.pack(n)
        else:
            out += b"\xc6" + _I.pack(n)
        self.bulk(b if not isinstance(b, memoryview) else b.cast("B"))

    def ndarray(self, code: str, shape: tuple[int, ...], data: memoryview) -> None:
        """ext 4, as PROTOCOL.md: the elements start at a multiple of 8 from the start of the encoding.
        A big one goes through shared memory instead when it can (ext 6)."""
        if self.shared(code, shape, data):
            return
        head = 3 + 4 * len(shape)
        pad = -(self.base + len(self.out) + 6 + head) % 8
        out = self.out
        out += b"\xc9" + _I.pack(head + pad + data.nbytes) + _b.pack(EXT_NDARRAY)
        out += bytes((ord(code), len(shape), pad))
        for d in shape:
            out += _I.pack(d)
        out += bytes(pad)
        self.bulk(data)

    def shared(self, code: str, shape: tuple[int, ...], data: memoryview) -> bool:
        """ext 6, when `data` is big enough and a segment of the outbox takes it: the head of ext 4
        (pad 0), then pid, fd and byte length. False when it goes through the pipe instead."""
        # An array still where Node lent it is named there whatever its size (Node lends small
        # ones too: its shared arrays).
        fd = self.lent_segment(data) if self.lent is not None and code not in (ARROW_CODE, BYTES_CODE) else None
        if fd is None and (_outbox is None or data.nbytes < _outbox.threshold):
            return False
        head = bytes((ord(code), len(shape), 0)) + b"".join(_I.pack(d) for d in shape)
        if fd is not None:
            self.ext_header(EXT_SHARED_NDARRAY, len(head) + _SEGMENT.size)
            self.out += head
            self.borrowed.append(Borrowed(fd, data.nbytes, self.out, len(self.out)))
            self.out += _SEGMENT.pack(self.lent.pid, fd, data.nbytes)  # type: ignore[union-attr]
            return True
        ref = _outbox.put(data)  # type: ignore[union-attr]
        if ref is None:
            return False
        self.segments.append(ref[1])
        self.ext(EXT_SHARED_NDARRAY, head + _SEGMENT.pack(ref[0], ref[1], data.nbytes))
        return True

    def lent_segment(self, data: memoryview) -> int | None:
        """The lent segment `data` still lies at the start of (a numpy array changed in place), if any."""
        np = sys.modules.get("numpy")
        if np is None:
            return None
        address_of = _address_of(np)
        return self.lent.holding(address_of(data), data.nbytes, address_of)  # type: ignore[union-attr]

    def table(self, ipc: memoryview) -> None:
        """ext 5; a big one goes through shared memory instead when it can (ext 6, ARROW_CODE)."""
        if self.shared(ARROW_CODE, (ipc.nbytes,), ipc):
            return
        self.out += b"\xc9" + _I.pack(ipc.nbytes) + _b.pack(EXT_ARROW)
        self.bulk(ipc)

    def array_header(self, n: int) -> None:
        if n < 16:
            self.out.append(0x90 | n)
        elif n < 0x10000:
            self.out += b"\xdc" + _H.pack(n)
        else:
            self.out += b"\xdd" + _I.pack(n)

    def map_header(self, n: int) -> None:
        if n < 16:
            self.out.append(0x80 | n)
        elif n < 0x10000:
            self.out += b"\xde" + _H.pack(n)
        else:
            self.out += b"\xdf" + _I.pack(n)

    def ext_header(self, code: int, n: int) -> None:
        out = self.out
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(n)
        if fixed is not None:
            out.append(fixed)
        elif n < 0x100:
            out += b"\xc7" + _B.pack(n)
        elif n < 0x10000:
            out += b"\xc8" + _H.pack(n)
        else:
            out += b"\xc9" + _I.pack(n)
        out += _b.pack(code)

    def ext(self, code: int, payload: bytes) -> None:
        self.ext_header(code, len(payload))
        self.out += payload

    def value(self, v: Any, path: list[str | int], seen: set[int]) -> None:
        t = type(v)
        if v is None:
            self.out.append(0xC0)
        elif t is bool:
            self.out.append(0xC3 if v else 0xC2)
        elif t is int:
            self.int_(v)
        elif t is float:
            self.out += b"\xcb" + _d.pack(v)
        elif t is str:
            self.str_(v)
        elif t is bytes or t is bytearray:
            self.bin_(v)
        elif t is list or t is tuple:
            self.container(v, path, seen, self.seq)
        elif t is dict:
            self.container(v, path, seen, self.dict_)
        elif t is set or t is frozenset:
            self.container(v, path, seen, self.set_)
        elif isinstance(v, bool):
            self.out.append(0xC3 if v else 0xC2)
        elif isinstance(v, int):
            self.int_(int(v))
        elif isinstance(v, float):
            self.out += b"\xcb" + _d.pack(float(v))
        elif isinstance(v, str):
            self.str_(str(v))
        elif isinstance(v, (list, tuple)):
            self.container(v, path, seen, self.seq)
        elif isinstance(v, dict):
            self.container(v, path, seen, self.dict_)
        elif isinstance(v, (set, frozenset)):
            self.container(v, path, seen, self.set_)
        elif _is_datetime(v):
            self.datetime_(v)
        else:
            self.other(v, t, path, seen)

    def other(self, v: Any, t: type, path: list[str | int], seen: set[int]) -> None:
        """Arrays, tables and numpy scalars; anything else has no mapping."""
        try:
            parts = arrays.ndarray_parts(v)
            if parts is not None:
                return self.ndarray(*parts)
            if t is memoryview:  # of bytes
                return self.bin_(v)
            ipc = arrays.table_ipc(v)
        except arrays.Unsupported as e:
            raise EncodeError(list(path), str(e)) from None
        if ipc is not None:
            return self.table(ipc)
        np = sys.modules.get("numpy")
        if np is not None and isinstance(v, np.generic):
            return self.value(v.item(), path, seen)
        raise EncodeError(list(path), f"a {t.__module__}.{t.__qualname__} has no mapping to TypeScript")

    def container(self, v: Any, path: list[str | int], seen: set[int], write: Callable[..., None]) -> None:
        key = id(v)
        if key in seen:
            raise EncodeError(list(path), "a cycle cannot cross to TypeScript")
        seen.add(key)
        try:
            write(v, path, seen)
        finally:
            seen.discard(key)

    def seq(self, v: list[Any] | tuple[Any, ...], path: list[str | int], seen: set[int]) -> None:
        self.array_header(len(v))
        value = self.value
        for i, x in enumerate(v):
            path.append(i)
            value(x, path, seen)
            path.pop()

    def dict_(self, v: dict[Any, Any], path: list[str | int], seen: set[int]) -> None:
        self.map_header(len(v))
        value = self.value
        for k, x in v.items():
            path.append(k if isinstance(k, (str, int)) and not isinstance(k, bool) else repr(k))
            value(k, path, seen)
            value(x, path, seen)
            path.pop()

    def set_(self, v: set[Any] | frozenset[Any], path: list[str | int], seen: set[int]) -> None:
        inner = _Encoder(bytearray())
        try:
            inner.array_header(len(v))
            for i, x in enumerate(v):
                path.append(i)
                inner.value(x, path, seen)
                path.pop()
        finally:
            self.segments += inner.segments  # freed with the encoding's own if it fails
        self.ext(EXT_SET, b"".join(inner.finish()))

    def datetime_(self, v: _dt.datetime) -> None:
        epoch = _epoch()
        if v.tzinfo is None:
            v = v.replace(tzinfo=epoch.tzinfo)
        delta = v - epoch
        seconds = delta.days * 86400 + delta.seconds
        self.ext(EXT_TIMESTAMP, _TS96.pack(delta.microseconds * 1000, seconds))


def decode(data: bytes | bytearray | memoryview, handles: Handles | None = None) -> Any:
    if _msgpack is not None and type(data) is bytes:
        try:
            return _fast_decode(data, handles)
        except Exception:  # noqa: BLE001 - whatever msgpack reads otherwise, the reference decoder decides
            pass
    return _decode(data, handles)


def _fast_decode(data: bytes, handles: Handles | None) -> Any:
    """msgpack's C decoder with our extension types; raises on anything it reads differently."""
    return _msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3, ext_hook=_plain if handles is None else handles)


def _extension(code: int, payload: bytes, handles: Handles | None) -> Any:
    """Our extension types, as msgpack's ext_hook reads them."""
    if code == EXT_BIGINT:
        return int(payload.decode("ascii"))
    if code == EXT_SET:
        hook = _plain if handles is None else handles
        elements = _msgpack.unpackb(payload, raw=False, strict_map_key=False, timestamp=3, ext_hook=hook)
        if not isinstance(elements, list):
            raise DecodeError("invalid set payload")
        return {_hashable(e) if isinstance(e, list) else e for e in elements}
    if code == EXT_HANDLE:
        hid = _msgpack.unpackb(payload)
        if not isinstance(hid, int) or isinstance(hid, bool) or handles is None:
            raise DecodeError("invalid handle payload")
        return handles.handle(hid)
    if code in _BUFFER_EXTS:
        return _buffer_ext(code, payload, handles)
    raise DecodeError(f"unknown extension type {code}")


def _plain(code: int, payload: bytes) -> Any:
    """The ext_hook of a message without handles (replies, control frames)."""
    return _extension(code, payload, None)


_BUFFER_EXTS = frozenset((EXT_NDARRAY, EXT_SHARED_NDARRAY, EXT_ARROW))


def _buffer_ext(code: int, payload: Any, handles: Handles | None) -> Any:
    """The extensions both decoders read alike: typed arrays and Arrow tables over their payload."""
    if code == EXT_NDARRAY:
        return _ndarray(payload)
    if code == EXT_SHARED_NDARRAY:
        return _shared_ndarray(payload, handles)
    return arrays.table_from(memoryview(payload))


def _decode(data: bytes | bytearray | memoryview, handles: Handles | None = None) -> Any:
    # A bytearray frame (a big one, read in place) is decoded through a memoryview, so that its
    # typed arrays and tables are views of it, writable and not copied.
    d = _Decoder(memoryview(data).cast("B") if not isinstance(data, bytes) else data, handles)
    v = d.value()
    if d.pos != len(d.buf):
        raise DecodeError(f"{len(d.buf) - d.pos} trailing bytes after the value")
    return v


class _Decoder:
    __slots__ = ("buf", "pos", "handles")

    def __init__(self, buf: Any, handles: Handles | None) -> None:
        self.buf = buf
        self.pos = 0
        self.handles = handles

    def take(self, n: int) -> Any:
        start = self.pos
        end = start + n
        if end > len(self.buf):
            raise DecodeError("truncated MessagePack value")
        self.pos = end
        return self.buf[start:end]

    def unpack(self, s: struct.Struct) -> Any:
        start = self.pos
        if start + s.size > len(self.buf):
            raise DecodeError("truncated MessagePack value")
        self.pos = start + s.size
        return s.unpack_from(self.buf, start)[0]

    def value(self) -> Any:
        if self.pos >= len(self.buf):
            raise DecodeError("truncated MessagePack value")
        b = self.buf[self.pos]
        self.pos += 1
        if b < 0x80:
            return b
        if b >= 0xE0:
            return b - 0x100
        if b <= 0x8F:
            return self.map_(b & 0x0F)
        if b <= 0x9F:
            return self.array(b & 0x0F)
        if b <= 0xBF:
            return self.str_(b & 0x1F)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        handler = _DISPATCH.get(b)
        if handler is None:
            raise DecodeError(f"invalid MessagePack type byte 0x{b:02x}")
        return handler(self)

    def str_(self, n: int) -> str:
        try:
            return bytes(self.take(n)).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise DecodeError(f"invalid UTF-8 in a string: {e}") from None

    def bin_(self, n: int) -> bytes:
        return bytes(self.take(n))

    def array(self, n: int) -> list[Any]:
        if self.pos + n > len(self.buf):
            raise DecodeError("truncated MessagePack value")
        value = self.value
        return [value() for _ in range(n)]

    def map_(self, n: int) -> dict[Any, Any]:
        if self.pos + 2 * n > len(self.buf):
            raise DecodeError("truncated MessagePack value")
        out: dict[Any, Any] = {}
        value = self.value
        for _ in range(n):
            k = value()
            if isinstance(k, list):
                k = _hashable(k)
            try:
                out[k] = value()
            except TypeError:
                raise DecodeError(f"a map key of type {type(k).__name__} is not hashable in Python") from None
        return out

    def ext(self, n: int) -> Any:
        code = self.unpack(_b)
        start = self.pos
        payload = self.take(n)
        if code == EXT_TIMESTAMP:
            return _timestamp(bytes(payload))
        if code == EXT_BIGINT:
            text = bytes(payload).decode("ascii", "replace")
            try:
                return int(text)
            except ValueError:
                raise DecodeError(f"invalid bigint payload {text!r}") from None
        if code == EXT_SET:
            self.pos = start
            elements = self.value()
            if self.pos != start + n or not isinstance(elements, list):
                raise DecodeError("invalid set payload")
            try:
                return {_hashable(e) if isinstance(e, list) else e for e in elements}
            except TypeError:
                raise DecodeError("a set element is not hashable in Python") from None
        if code in _BUFFER_EXTS:
            return _buffer_ext(code, payload, self.handles)
        if code == EXT_HANDLE:
            self.pos = start
            hid = self.value()
            if self.pos != start + n or not isinstance(hid, int):
                raise DecodeError("invalid handle payload")
            if self.handles is None:
                raise DecodeError("a handle reference where none is allowed")
            return self.handles.handle(hid)
        raise DecodeError(f"unknown extension type {code}")


def _ndarray_head(view: memoryview) -> tuple[str, tuple[int, ...], int, int]:
    """The type code, shape, byte length and end of the head (pad included) of ext 4 and 6."""
    if len(view) < 3:
        raise DecodeError("invalid typed array payload")
    code, ndim, pad = chr(view[0]), view[1], view[2]
    if code not in arrays.ITEMSIZE and code != BYTES_CODE and code != ARROW_CODE:
        raise DecodeError(f"unknown typed array code {code!r}")
    at = 3 + 4 * ndim
    if len(view) < at + pad:
        raise DecodeError("invalid typed array payload")
    shape = tuple(_I.unpack_from(view, 3 + 4 * i)[0] for i in range(ndim))
    count = 1
    for d in shape:
        count *= d
    return code, shape, count * arrays.ITEMSIZE.get(code, 1), at + pad


def _ndarray(payload: Any) -> Any:
    view = memoryview(payload)
    code, shape, nbytes, at = _ndarray_head(view)
    data = view[at:]
    if len(data) != nbytes:
        raise DecodeError(f"an array of shape {shape} does not match its {len(data)} bytes")
    if code == BYTES_CODE:
        raise DecodeError("bytes travel as bin, or in shared memory (ext 6)")
    if code == ARROW_CODE:
        raise DecodeError("Arrow streams travel as ext 5, or in shared memory (ext 6)")
    return arrays.ndarray_from(code, shape, data)


def _shared_ndarray(payload: Any, handles: Handles | None) -> Any:
    """ext 6: a typed array in a segment of shared memory that Node lent to this request."""
    view = memoryview(payload)
    code, shape, nbytes, at = _ndarray_head(view)
    if len(view) != at + _SEGMENT.size:
        raise DecodeError("invalid shared typed array payload")
    pid, fd, length = _SEGMENT.unpack_from(view, at)
    if length != nbytes:
        raise DecodeError(f"an array of shape {shape} does not match its {length} bytes")
    if handles is None:
        raise DecodeError("shared memory where none is allowed")
    if code == ARROW_CODE and len(shape) != 1:
        raise DecodeError(f"an Arrow stream of shape {shape}")
    try:
        if code == BYTES_CODE:
            if len(shape) != 1:
                raise DecodeError(f"bytes of shape {shape}")
            return shm.read(pid, fd, nbytes)
        if handles.lent is None:
            handles.lent = shm.Lent()
        data = handles.lent.map(pid, fd, nbytes)
    except shm.SegmentError as e:
        raise DecodeError(str(e)) from None
    if code == ARROW_CODE:
        # A table over the mapping, not a copy: kept by the drop, it keeps the segment as an array does.
        return arrays.table_from(data)
    return arrays.ndarray_from(code, shape, data)


def _address_of(np: Any) -> Callable[[memoryview], int]:
    return lambda view: np.frombuffer(view, np.uint8).__array_interface__["data"][0]


def _hashable(v: list[Any]) -> tuple[Any, ...]:
    return tuple(_hashable(x) if isinstance(x, list) else x for x in v)


_EPOCH: _dt.datetime | None = None


def _epoch() -> _dt.datetime:
    """1970-01-01 UTC, made the first time a datetime crosses (importing `datetime` then)."""
    global _EPOCH
    if _EPOCH is None:
        import datetime as dt

        _EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return _EPOCH


def _is_datetime(v: Any) -> bool:
    """Whether `v` is a datetime, without importing `datetime` (≈ 3 ms of a worker's start): none
    can exist before something has imported it."""
    dt = sys.modules.get("datetime")
    return dt is not None and isinstance(v, dt.datetime)


def _timestamp(p: bytes) -> _dt.datetime:
    import datetime as dt

    if len(p) == 4:
        sec, nsec = _I.unpack(p)[0], 0
    elif len(p) == 8:
        v = _TS64.unpack(p)[0]
        nsec, sec = v >> 34, v & 0x3FFFFFFFF
    elif len(p) == 12:
        nsec, sec = _TS96.unpack(p)
    else:
        raise DecodeError(f"invalid timestamp length {len(p)}")
    return _epoch() + dt.timedelta(seconds=sec, microseconds=nsec // 1000)


_DISPATCH: dict[int, Callable[[_Decoder], Any]] = {
    0xC4: lambda d: d.bin_(d.unpack(_B)),
    0xC5: lambda d: d.bin_(d.unpack(_H)),
    0xC6: lambda d: d.bin_(d.unpack(_I)),
    0xC7: lambda d: d.ext(d.unpack(_B)),
    0xC8: lambda d: d.ext(d.unpack(_H)),
    0xC9: lambda d: d.ext(d.unpack(_I)),
    0xCA: lambda d: d.unpack(_f),
    0xCB: lambda d: d.unpack(_d),
    0xCC: lambda d: d.unpack(_B),
    0xCD: lambda d: d.unpack(_H),
    0xCE: lambda d: d.unpack(_I),
    0xCF: lambda d: d.unpack(_Q),
    0xD0: lambda d: d.unpack(_b),
    0xD1: lambda d: d.unpack(_h),
    0xD2: lambda d: d.unpack(_i),
    0xD3: lambda d: d.unpack(_q),
    0xD4: lambda d: d.ext(1),
    0xD5: lambda d: d.ext(2),
    0xD6: lambda d: d.ext(4),
    0xD7: lambda d: d.ext(8),
    0xD8: lambda d: d.ext(16),
    0xD9: lambda d: d.str_(d.unpack(_B)),
    0xDA: lambda d: d.str_(d.unpack(_H)),
    0xDB: lambda d: d.str_(d.unpack(_I)),
    0xDC: lambda d: d.array(d.unpack(_H)),
    0xDD: lambda d: d.array(d.unpack(_I)),
    0xDE: lambda d: d.map_(d.unpack(_H)),
    0xDF: lambda d: d.map_(d.unpack(_I)),
}
