from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snakebridge_worker import codec

# As a worker does once it has started (its control thread imports msgpack after the hello).
codec.accelerate()


@pytest.fixture(autouse=True, params=["msgpack", "reference"])
def decoder(request, monkeypatch):
    """Every test runs with the C decoder and packer (when msgpack is installed) and with the reference ones."""
    if request.param == "reference":
        monkeypatch.setattr(codec, "_msgpack", None)
        monkeypatch.setattr(codec, "_packer", None)
    elif codec._msgpack is None:
        pytest.skip("msgpack is not installed")
    return request.param


def rt(v):
    return codec.decode(codec.encode(v))


@pytest.mark.parametrize(
    "v",
    [None, True, False, 0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2**32, 2**63 - 1, 2**64 - 1, -(2**63),
     1.5, -0.25, "", "héllo\x00🐍", "x" * 70000, b"", b"\x00\xff", [1, [2, [3]]], {"a": {"b": [None]}}],
)
def test_round_trips_plain_values(v):
    assert rt(v) == v and type(rt(v)) is type(v)


def test_floats_keep_nan_infinities_and_negative_zero():
    assert math.isnan(rt(float("nan")))
    assert rt(float("inf")) == float("inf") and rt(float("-inf")) == float("-inf")
    assert math.copysign(1.0, rt(-0.0)) == -1.0
    assert isinstance(rt(3.0), float)


def test_big_integers_use_the_bigint_extension_both_signs():
    for n in (2**64, 2**200, -(2**63) - 1, -(2**150)):
        data = codec.encode(n)
        assert data[0] in (0xC7, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8)
        assert rt(n) == n


def test_python_shapes_map_to_their_nearest_value():
    assert rt((1, 2)) == [1, 2]
    assert rt(bytearray(b"ab")) == b"ab"
    assert rt(memoryview(b"abc")) == b"abc"
    assert rt({1, 2}) == {1, 2}
    assert rt(frozenset([3])) == {3}
    assert rt({(1, 2): "a"}) == {(1, 2): "a"}
    assert rt({1: "one"}) == {1: "one"}


def test_datetimes_are_utc_and_naive_ones_are_taken_as_utc():
    aware = dt.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=dt.timezone.utc)
    assert rt(aware) == aware
    plus2 = dt.datetime(2024, 1, 1, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert rt(plus2) == plus2 and rt(plus2).tzinfo == dt.timezone.utc
    assert rt(dt.datetime(2020, 1, 2, 3, 4, 5)) == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert rt(dt.datetime(1960, 1, 1, tzinfo=dt.timezone.utc)).year == 1960


def test_reads_the_32_and_64_bit_timestamp_forms():
    assert codec.decode(b"\xd6\xff" + (86400).to_bytes(4, "big")) == dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)
    v = (500_000_000 << 34) | 1
    assert codec.decode(b"\xd7\xff" + v.to_bytes(8, "big")) == dt.datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=dt.timezone.utc)


def test_encode_errors_name_the_path_of_the_value():
    with pytest.raises(codec.EncodeError) as e:
        codec.encode({"rows": [1, {"when": object()}]})
    assert e.value.path == ["rows", 1, "when"]
    with pytest.raises(codec.EncodeError) as e:
        codec.encode([dt.date(2020, 1, 1)])
    assert e.value.path == [0] and "date" in e.value.message


def test_cycles_fail_with_a_path_instead_of_recursing_forever():
    a: list = [1]
    a.append({"back": a})
    with pytest.raises(codec.EncodeError) as e:
        codec.encode(a)
    assert e.value.path == [1, "back"] and "cycle" in e.value.message


def test_shared_references_are_not_cycles():
    shared = [1]
    assert rt([shared, shared]) == [[1], [1]]


def test_malformed_input_is_a_decode_error():
    good = codec.encode({"a": [1, 2, 3]})
    for bad in (good[:-1], good + b"\x00", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\xd9\x05ab", b"\xa2\xff\xfe"):
        with pytest.raises(codec.DecodeError):
            codec.decode(bad)


def test_the_shared_packer_recovers_from_a_value_it_refuses(decoder):
    if decoder == "reference":
        pytest.skip("about the C packer")
    reference = {"t": "ok", "id": 7, "value": "après"}
    e = codec._Encoder(bytearray())
    e.value(reference, [], set())
    expected = b"".join(e.finish())
    # An int beyond 64 bits and a lone surrogate make the C packer raise mid-way; ours takes over.
    assert codec.decode(codec.encode({"t": "ok", "id": 1, "value": 2**70})) == {"t": "ok", "id": 1, "value": 2**70}
    assert codec.decode(codec.encode({"t": "ok", "id": 2, "value": "\ud800"}))["value"] == "\ud800"
    # Nothing of those is left in the packer: the next reply is exactly what the reference encoder writes.
    assert codec.encode(reference) == expected


def test_one_handles_object_serves_request_after_request():
    refs = []
    handles = codec.Handles(lambda hid: refs.append(hid) or f"h{hid}")
    assert codec.decode(b"\x92\xd4\x03\x05\x01", handles) == ["h5", 1]
    assert handles.met
    handles.reset()
    assert codec.decode(codec.encode([1, 2]), handles) == [1, 2]
    assert not handles.met and handles.lent is None
    assert refs == [5]


def test_handle_references_resolve_through_the_callback():
    data = b"\xd4\x03\x05"  # ext 3, payload int 5
    assert codec.decode(data, codec.Handles(lambda hid: f"object {hid}")) == "object 5"
    with pytest.raises(codec.DecodeError):
        codec.decode(data)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@given(values)
def test_round_trip_property(v):
    assert rt(v) == v


# The C decoder (msgpack, when installed) must read every frame exactly as the reference decoder.

rich_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text()
    | st.binary()
    | st.datetimes(timezones=st.just(dt.timezone.utc))
    | st.frozensets(st.integers() | st.text(max_size=4), max_size=4),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=5)
    | st.dictionaries(st.tuples(st.integers(), st.integers()), children, max_size=3),
    max_leaves=20,
)


def same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(rich_values)
def test_the_c_decoder_reads_what_the_reference_decoder_reads(v):
    if codec._msgpack is None:  # the "reference" run of this test: nothing to compare
        return
    body = codec.encode(v)
    assert same(codec.decode(body), codec._decode(body))


def test_the_c_decoder_is_used_and_falls_back_where_it_reads_otherwise(decoder):
    if decoder == "reference":
        pytest.skip("about the C decoder")
    refs = []
    body = codec.encode({"t": "run", "args": [2**70, {1, 2}, "x"]})
    assert codec._fast_decode(body, None) == {"t": "run", "args": [2**70, {1, 2}, "x"]}
    # a handle reference resolves through the callback on both paths
    handle = b"\xc9\x00\x00\x00\x01\x03\x07"
    assert codec.decode(handle, codec.Handles(lambda hid: refs.append(hid) or f"h{hid}")) == "h7"
    # list keys (tuples in Python), lone surrogates, invalid UTF-8: the reference decoder decides
    assert codec.decode(codec.encode({(1, 2): 3})) == {(1, 2): 3}
    assert codec.decode(codec.encode("\ud800")) == "\ud800"
    with pytest.raises(codec.DecodeError):
        codec.decode(b"\xa2\xff\xfe")
    with pytest.raises(codec.DecodeError):
        codec.decode(codec.encode(1) + b"\x00")


@given(st.none() | st.booleans() | st.integers() | st.floats() | st.text())
def test_a_scalar_reply_encodes_the_same_with_the_c_encoder(v):
    if codec._msgpack is None:
        return
    reply = {"t": "ok", "id": 7, "value": v}
    fast = b"".join(codec.encode_parts(reply))
    out = bytearray()
    codec._Encoder(out).value(reply, [], set())
    assert same(codec._decode(fast), codec._decode(bytes(out)))
