from __future__ import annotations

import pytest

from snakebridge_worker.registry import HandleNotFound, Registry


def test_put_get_release_and_count():
    r = Registry()
    a, b = r.put("a"), r.put(["b"])
    assert (a, b) == (1, 2) and len(r) == 2
    assert r.get(b) == ["b"]
    r.release([a, 999])
    assert len(r) == 1
    with pytest.raises(HandleNotFound) as e:
        r.get(a)
    assert e.value.handle == a


def test_ids_are_never_reused():
    r = Registry()
    first = r.put(1)
    r.release([first])
    assert r.put(2) != first
