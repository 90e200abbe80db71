from __future__ import annotations

import sys
import types

import pytest

from snakebridge_worker.runner import CodeCache, Runner, compile_drop, describe


def run(code: str, *args):
    return Runner().run(compile_drop(code, len(args), "<drop t>"), list(args))


def test_return_last_expression_or_none():
    assert run("x = 2\nreturn x * 3") == 6
    assert run("x = 2\nx * 4") == 8
    assert run("x = 2") is None
    assert run("") is None


def test_slots_are_bound_to_their_names():
    assert run("return _sb_0 + _sb_1", 40, 2) == 42
    assert run("class A:\n    v = _sb_0\nreturn A.v", "slot in a class body") == "slot in a class body"


def test_indented_code_is_dedented():
    assert run("\n    total = 0\n    for i in range(4):\n        total += i\n    return total\n") == 6


def test_names_are_local_to_one_run():
    compiled = compile_drop("try:\n    n += 1\nexcept NameError:\n    n = 0\nreturn n", 0, "<drop local>")
    r = Runner()
    assert [r.run(compiled, []) for _ in range(3)] == [0, 0, 0]


def test_top_level_await_and_async_for_run_on_one_loop():
    assert run("import asyncio\nawait asyncio.sleep(0)\nreturn 'awaited'") == "awaited"
    code = "async def gen():\n    for i in range(3):\n        yield i\nout = []\nasync for x in gen():\n    out.append(x)\nout"
    assert run(code) == [0, 1, 2]
    r = Runner()
    loop_id = compile_drop("import asyncio\nawait asyncio.sleep(0)\nreturn id(asyncio.get_running_loop())", 0, "<drop loop>")
    assert r.run(loop_id, []) == r.run(loop_id, [])


def test_await_inside_a_nested_function_keeps_the_drop_sync():
    compiled = compile_drop("async def f():\n    await g()\nreturn 1", 0, "<drop nested>")
    assert not compiled.is_async


def test_exception_line_traceback_and_type():
    compiled = compile_drop("x = 1\ny = 2\nraise ValueError(f'bad {x}')", 0, "<drop exc>")
    with pytest.raises(ValueError) as e:
        Runner().run(compiled, [])
    d = describe(e.value, "<drop exc>")
    assert d["type"] == "ValueError" and d["message"] == "bad 1" and d["line"] == 3
    assert "raise ValueError(f'bad {x}')" in d["traceback"]
    assert "runner.py" not in d["traceback"]


def test_exception_from_a_function_defined_in_the_drop_points_at_the_raise():
    code = "def inner():\n    raise KeyError('k')\n\ndef outer():\n    inner()\nouter()"
    with pytest.raises(KeyError) as e:
        run(code)
    d = describe(e.value, "<drop t>")
    assert d["line"] == 2 and d["type"] == "KeyError"


def test_syntax_error_carries_its_line():
    with pytest.raises(SyntaxError) as e:
        compile_drop("x = 1\nreturn (1 +\n", 0, "<drop syn>")
    d = describe(e.value, "<drop syn>")
    assert d["type"] == "SyntaxError" and d["line"] == 2


def test_qualified_type_names_for_non_builtin_exceptions():
    import json

    with pytest.raises(json.JSONDecodeError) as e:
        json.loads("{")
    assert describe(e.value, None)["type"] == "json.decoder.JSONDecodeError"


def test_call_targets_resolve_modules_and_attributes():
    assert Runner.resolve("math.sqrt")(16) == 4
    assert Runner.resolve("os.path.join")("a", "b") == "a/b"
    assert Runner.resolve("collections.OrderedDict.fromkeys")("ab") == {"a": None, "b": None}
    assert Runner.resolve("len")([1]) == 1
    with pytest.raises(AttributeError):
        Runner.resolve("math.nope")
    with pytest.raises(ModuleNotFoundError):
        Runner.resolve("no_such_module_here.f")


def test_call_targets_follow_the_modules_of_the_moment(monkeypatch):
    # Not imported yet: imported by the call.
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert Runner.resolve("colorsys.rgb_to_hsv")(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)
    assert "colorsys" in sys.modules
    # Already imported: what sys.modules holds now, not what an earlier call found.
    replaced = types.ModuleType("colorsys")
    replaced.rgb_to_hsv = lambda *_: "replaced"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "colorsys", replaced)
    assert Runner.resolve("colorsys.rgb_to_hsv")() == "replaced"


def test_compile_cache_hits_and_stays_bounded():
    r = Runner(cache_size=2)
    first = r.compiled("a", "return 1", 0)
    assert r.compiled("a", None, 0) is first
    r.compiled("b", "return 2", 0)
    r.compiled("c", "return 3", 0)
    assert len(r.cache) == 2
    assert r.compiled("a", None, 0) is None
    cache = CodeCache(1)
    assert len(cache) == 0
