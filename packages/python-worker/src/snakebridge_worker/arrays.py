"""Typed arrays (ext 4) and Arrow tables (ext 5).

numpy, pyarrow and pandas are used when installed and never imported for a value that does
not need them. Without numpy a 1-d typed array becomes an `array.array` and an n-d one a
`memoryview` with that shape; without pyarrow an Arrow table sent by Node becomes an object
that raises `ModuleNotFoundError` when the drop touches it.
"""
from __future__ import annotations

import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# One-letter codes (`struct` format characters) by numpy (kind, itemsize). Booleans go as uint8.
_CODES = {
    ("i", 1): "b",
    ("i", 2): "h",
    ("i", 4): "i",
    ("i", 8): "q",
    ("u", 1): "B",
    ("u", 2): "H",
    ("u", 4): "I",
    ("u", 8): "Q",
    ("f", 4): "f",
    ("f", 8): "d",
    ("b", 1): "B",
}
ITEMSIZE = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8, "f": 4, "d": 8}
def _code_of(fmt: str, itemsize: int) -> str | None:
    """The wire code of a `struct` format character (of an array.array or a memoryview) and size."""
    kind = "f" if fmt in ("f", "d") else "b" if fmt == "?" else "u" if fmt.isupper() else "i"
    return _CODES.get((kind, itemsize))


def _array_code(code: str) -> str:
    """The `array.array` type code for a wire code: same kind, same size."""
    import array

    if array.array(code).itemsize == ITEMSIZE[code]:
        return code
    for alternative in ("l", "L") if code in "qQ" else ("l", "L", "i", "I"):
        same_sign = alternative.isupper() == code.isupper()
        if same_sign and array.array(alternative).itemsize == ITEMSIZE[code]:
            return alternative
    raise ValueError(f"no array.array type code holds {ITEMSIZE[code]}-byte items")


_numpy: Any = None
_numpy_checked = False


def numpy() -> Any:
    """numpy if it can be imported, else None (looked up once)."""
    global _numpy, _numpy_checked
    if not _numpy_checked:
        try:
            import numpy as np
        except ImportError:
            np = None
        _numpy, _numpy_checked = np, True
    return _numpy


class Unsupported(Exception):
    """A value of a known array or table type that has no TypeScript mapping."""


def ndarray_parts(v: Any) -> tuple[str, tuple[int, ...], memoryview] | None:
    """(code, shape, bytes) of a numpy array, `array.array` or typed memoryview; None for anything else."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(v, np.ndarray):
        dt = v.dtype
        code = _CODES.get((dt.kind, dt.itemsize))
        if code is None:
            hint = " (convert it with .tolist() first)" if dt.kind == "O" else ""
            raise Unsupported(f"a numpy array of dtype {dt} has no TypeScript mapping{hint}")
        if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
            v = v.astype(dt.newbyteorder("<"))
        if dt.kind == "b":
            v = v.view(np.uint8)
        shape = tuple(v.shape)  # before ascontiguousarray, which makes a 0-d array 1-d
        return code, shape, memoryview(np.ascontiguousarray(v).reshape(-1)).cast("B")
    # Like numpy, `array` is imported only by what uses it (it imports `collections`: ≈ 5 ms of a
    # worker's start); none of its arrays can exist before then.
    array = sys.modules.get("array")
    if array is not None and isinstance(v, array.array):
        if v.typecode == "u" or v.typecode == "w":
            raise Unsupported("an array.array of characters has no TypeScript mapping")
        return _code_of(v.typecode, v.itemsize), (len(v),), memoryview(v).cast("B")  # type: ignore[return-value]
    if isinstance(v, memoryview) and v.format not in ("B", "b", "c"):
        fmt = v.format.lstrip("@=<")
        code = _code_of(fmt, v.itemsize)
        if code is None or len(fmt) != 1 or not v.c_contiguous:
            raise Unsupported(f"a memoryview of format {v.format!r} has no TypeScript mapping")
        return code, tuple(v.shape or ()), v.cast("B")
    return None


def ndarray_from(code: str, shape: tuple[int, ...], data: memoryview) -> Any:
    """A numpy array over `data` (no copy when the frame is writable), or the standard-library fallback."""
    np = numpy()
    if np is not None:
        a = np.frombuffer(data, dtype="<" + code).reshape(shape)
        # A frame read into a bytes object is read-only: the drop gets its own copy then.
        return a if a.flags.writeable else a.copy()
    if len(shape) == 1:
        import array

        out = array.array(_array_code(code))
        out.frombytes(data)
        return out
    return memoryview(bytearray(data)).cast(code, shape)


def table_ipc(v: Any) -> memoryview | None:
    """An Arrow IPC stream of a pyarrow Table/RecordBatch or a pandas DataFrame; None for anything else."""
    pa = sys.modules.get("pyarrow")
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(v, pd.DataFrame):
        import pyarrow as pa

        v = pa.Table.from_pandas(v)
    elif pa is None:
        return None
    elif isinstance(v, pa.RecordBatch):
        v = pa.Table.from_batches([v])
    elif not isinstance(v, pa.Table):
        return None
    # Written twice: once to count its bytes, then into one buffer of that size. A growing
    # BufferOutputStream copies the stream each time it doubles, into new memory each time.
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, v.schema) as writer:
        writer.write_table(v)
    buffer = pa.allocate_buffer(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buffer), v.schema) as writer:
        writer.write_table(v)
    return memoryview(buffer)


def table_from(data: memoryview) -> Any:
    """A pyarrow Table over the IPC stream in `data` (column buffers are not copied)."""
    try:
        import pyarrow as pa
    except ImportError:
        return MissingModule("pyarrow", "an Arrow table was sent to this worker")
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class MissingModule:
    """Stands for a value this interpreter cannot build; raises when the drop uses it."""

    def __init__(self, module: str, what: str) -> None:
        self._module = module
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise ModuleNotFoundError(
            f"No module named {self._module!r}: {self._what}; install {self._module} in the worker's environment",
            name=self._module,
        )

    def __repr__(self) -> str:
        return f"<{self._what}: {self._module} is not installed>"
