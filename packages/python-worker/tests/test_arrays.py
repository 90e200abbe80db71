"""Typed arrays (ext 4) and Arrow tables (ext 5) in the codec, with and without numpy."""
from __future__ import annotations

import array
import os

import pytest

from snakebridge_worker import arrays, codec
from snakebridge_worker.protocol import FrameReader, FrameWriter

np = pytest.importorskip("numpy")


def rt(v, frame=bytearray):
    """Encodes, then decodes from a frame of the given kind (bytearray: a big frame read in place)."""
    return codec.decode(frame(codec.encode(v)))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"])
def test_every_dtype_round_trips_with_shape(dtype):
    a = (np.arange(24) % 100).astype(dtype).reshape(2, 3, 4)
    b = rt(a)
    assert b.dtype == a.dtype and b.shape == (2, 3, 4) and (b == a).all()


def test_a_view_of_a_writable_frame_is_not_copied_and_is_aligned():
    frame = bytearray(codec.encode(["pad", np.arange(10, dtype=np.float64)]))
    _, a = codec.decode(frame)
    assert not a.flags.owndata and a.flags.writeable and a.flags.aligned
    a[0] = 42.0
    assert np.frombuffer(frame, dtype="<f8", count=1, offset=len(frame) - 80)[0] == 42.0


def test_a_read_only_frame_gives_a_writable_copy():
    a = rt(np.ones(4), frame=bytes)
    assert a.flags.writeable and a.flags.owndata


@pytest.mark.parametrize("prefix", range(9))
def test_elements_start_at_a_multiple_of_8(prefix):
    body = b"".join(codec.encode_parts(["x" * prefix, np.ones(2)]))
    assert (len(body) - 16) % 8 == 0


def test_non_contiguous_big_endian_bool_and_0d_arrays():
    assert rt(np.arange(10)[::3]).tolist() == [0, 3, 6, 9]
    swapped = rt(np.arange(3, dtype=">i4"))
    assert swapped.dtype == np.dtype("<i4") and swapped.tolist() == [0, 1, 2]
    assert rt(np.array([True, False])).tolist() == [1, 0]
    zero_d = rt(np.array(2.5))
    assert zero_d.shape == () and float(zero_d) == 2.5
    assert rt(np.float32(1.5)) == 1.5 and rt(np.int64(7)) == 7


def test_unsupported_dtypes_fail_with_the_path():
    with pytest.raises(codec.EncodeError) as e:
        codec.encode({"z": np.ones(2, dtype=complex)})
    assert e.value.path == ["z"] and "complex128" in e.value.message
    with pytest.raises(codec.EncodeError, match=r"\.tolist\(\)"):
        codec.encode(np.array([1, "a"], dtype=object))


def test_array_array_and_typed_memoryviews_cross_as_arrays():
    b = rt(array.array("d", [1.5, 2.5]))
    assert b.dtype == np.float64 and b.tolist() == [1.5, 2.5]
    m = rt(memoryview(bytearray(24)).cast("i", (2, 3)))
    assert m.shape == (2, 3) and m.dtype == np.int32
    assert rt(memoryview(b"abc")) == b"abc"  # a memoryview of bytes is bytes


def test_without_numpy_1d_is_array_array_and_nd_is_memoryview(monkeypatch):
    monkeypatch.setattr(arrays, "_numpy", None)
    monkeypatch.setattr(arrays, "_numpy_checked", True)
    a = rt(np.arange(3, dtype=np.int64))
    assert isinstance(a, array.array) and a.itemsize == 8 and a.tolist() == [0, 1, 2]
    m = rt(np.arange(6, dtype=np.float32).reshape(3, 2))
    assert isinstance(m, memoryview) and m.shape == (3, 2) and m.format == "f" and m.tolist()[2] == [4.0, 5.0]


def test_a_shape_that_does_not_match_its_bytes_is_a_decode_error():
    body = bytearray(codec.encode(np.zeros((2, 2), dtype=np.int32)))
    body[6 + 3 + 8 - 1] = 3
    with pytest.raises(codec.DecodeError, match="does not match"):
        codec.decode(body)


def test_big_payloads_are_parts_not_copies():
    a = np.zeros(1 << 16)
    parts = codec.encode_parts({"t": "ok", "value": a})
    assert any(isinstance(p, memoryview) and p.obj is not None and np.shares_memory(np.asarray(p), a) for p in parts)


def test_a_big_frame_is_read_in_place_and_written_with_writev():
    r, w = os.pipe()
    a = np.arange(1 << 18, dtype=np.float64)  # 2 MiB: bigger than the pipe buffer
    parts = codec.encode_parts({"t": "ok", "id": 1, "value": a})
    import threading

    writer = threading.Thread(target=FrameWriter(w).write_parts, args=(parts,))
    writer.start()
    reader = FrameReader()
    bodies = []
    while not bodies:
        bodies.extend(reader.read(r))
    writer.join()
    os.close(r)
    os.close(w)
    assert isinstance(bodies[0], bytearray)
    msg = codec.decode(bodies[0])
    assert msg["id"] == 1 and (msg["value"] == a).all() and msg["value"].flags.writeable


pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")


def test_arrow_tables_batches_and_dataframes_cross_as_tables():
    t = pa.table({"a": [1, 2, 3], "s": ["x", "y", "z"]})
    back = rt(t)
    assert isinstance(back, pa.Table) and back.equals(t)
    assert rt(pa.record_batch({"a": [1.5]})).column("a").to_pylist() == [1.5]
    df = pd.DataFrame({"p": [0.5, 1.5], "q": [1, 2]})
    assert rt(df).to_pandas().equals(df)


def test_without_pyarrow_a_table_is_a_value_that_says_so(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow":
            raise ImportError("no pyarrow")
        return real_import(name, *args, **kwargs)

    body = codec.encode(pa.table({"a": [1]}))
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    v = codec.decode(body)
    with pytest.raises(ModuleNotFoundError, match="install pyarrow"):
        v.num_rows
