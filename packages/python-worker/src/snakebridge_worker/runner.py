"""Compiling and running drops and calls."""
from __future__ import annotations

import _ast
import builtins
import os
import sys

from . import lazy

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import types
    from typing import Any

FUNCTION = "__snakebridge_drop__"
_HERE = os.path.dirname(os.path.abspath(__file__))


class Compiled:
    __slots__ = ("function", "is_async", "filename")

    def __init__(self, function: types.FunctionType, is_async: bool, filename: str) -> None:
        self.function = function
        self.is_async = is_async
        self.filename = filename


# The source of every cached drop, for tracebacks: given to linecache once something imports it
# (a traceback being formatted, by the worker or by user code), not imported at start-up.
_SOURCES: dict[str, list[str]] = {}


def _give_sources(linecache: Any) -> None:
    for filename, lines in _SOURCES.items():
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)


lazy.after_import("linecache", _give_sources)


def _remember_source(filename: str, source: str) -> None:
    lines = source.splitlines(keepends=True)
    _SOURCES[filename] = lines
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        linecache.cache[filename] = (len(source), None, lines, filename)


def _forget_source(filename: str) -> None:
    _SOURCES.pop(filename, None)
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        linecache.cache.pop(filename, None)


def dedent(text: str) -> str:
    """textwrap.dedent without `re` (not imported at start-up): the common leading whitespace of
    the lines that are not blank is removed; blank lines become empty."""
    lines = text.split("\n")
    margin: str | None = None
    for line in lines:
        stripped = line.lstrip(" \t")
        if not stripped:
            continue
        indent = line[: len(line) - len(stripped)]
        if margin is None:
            margin = indent
        else:
            n = 0
            while n < len(margin) and n < len(indent) and margin[n] == indent[n]:
                n += 1
            margin = margin[:n]
        if margin == "":
            break
    cut = len(margin or "")
    return "\n".join(line[cut:] if line.strip(" \t") else "" for line in lines)


def drop_filename(hash_: str) -> str:
    """The file name of a drop's code in tracebacks, which Node maps back to the template's lines."""
    return f"<drop {hash_}>"


def slot(i: int) -> str:
    return f"_sb_{i}"


# Scopes of their own: an await inside them does not make the drop a coroutine.
_SCOPES = (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.Lambda, _ast.ClassDef)
_ASYNC = (_ast.Await, _ast.AsyncFor, _ast.AsyncWith)


def _awaits(body: list[Any]) -> bool:
    """Whether the statements await (await, async for / with, an async comprehension) outside
    nested scopes."""
    stack = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, _ASYNC) or (isinstance(node, _ast.comprehension) and node.is_async):
            return True
        if isinstance(node, _SCOPES):
            continue
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                stack.extend(v for v in value if isinstance(v, _ast.AST))
            elif isinstance(value, _ast.AST):
                stack.append(value)
    return False


def _at(node: Any, line: int, col: int = 0) -> Any:
    node.lineno, node.col_offset, node.end_lineno, node.end_col_offset = line, col, line, col
    return node


def compile_drop(code: str, nargs: int, filename: str) -> Compiled:
    """Wraps the drop's statements in a function; line numbers stay those of the code text.

    The tree comes from `compile(..., PyCF_ONLY_AST)` and is built with the `_ast` node types
    that `ast` re-exports: importing `ast` itself (and `enum`, which it needs) would cost a
    worker's start-up several milliseconds before its first drop."""
    source = dedent(code)
    body = builtins.compile(source, filename, "exec", _ast.PyCF_ONLY_AST).body
    if body and isinstance(body[-1], _ast.Expr):
        last = body[-1]
        ret = _ast.Return(value=last.value)
        ret.lineno, ret.col_offset = last.lineno, last.col_offset
        ret.end_lineno, ret.end_col_offset = last.end_lineno, last.end_col_offset
        body[-1] = ret
    if not body:
        body = [_at(_ast.Pass(), 1)]
    is_async = _awaits(body)
    args = _ast.arguments(
        posonlyargs=[],
        args=[_at(_ast.arg(arg=slot(i)), 1) for i in range(nargs)],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )
    cls = _ast.AsyncFunctionDef if is_async else _ast.FunctionDef
    fn = _at(cls(name=FUNCTION, args=args, body=body, decorator_list=[], returns=None, type_params=[]), 1)  # type: ignore[call-arg]
    code_obj = builtins.compile(_ast.Module(body=[fn], type_ignores=[]), filename, "exec")
    _remember_source(filename, source)
    namespace: dict[str, Any] = {"__name__": "__snakebridge_drop__", "__builtins__": builtins}
    exec(code_obj, namespace)
    return Compiled(namespace[FUNCTION], is_async, filename)


class CodeCache:
    """Bounded LRU of compiled drops, keyed by the code's hash: a dict in order of use (not an
    OrderedDict: `collections` is not imported at start-up)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: dict[tuple[str, int], Compiled] = {}

    def get(self, key: tuple[str, int]) -> Compiled | None:
        item = self._items.pop(key, None)
        if item is not None:
            self._items[key] = item
        return item

    def put(self, key: tuple[str, int], value: Compiled) -> None:
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.capacity:
            old = self._items.pop(next(iter(self._items)))
            _forget_source(old.filename)

    def __len__(self) -> int:
        return len(self._items)


class Runner:
    """Runs compiled drops and calls; async drops share one persistent event loop."""

    def __init__(self, cache_size: int = 1024) -> None:
        self.cache = CodeCache(cache_size)
        self._loop: asyncio.AbstractEventLoop | None = None

    def compiled(self, hash_: str, code: str | None, nargs: int) -> Compiled | None:
        key = (hash_, nargs)
        found = self.cache.get(key)
        if found is None and code is not None:
            found = compile_drop(code, nargs, drop_filename(hash_))
            self.cache.put(key, found)
        return found

    def run(self, compiled: Compiled, args: list[Any]) -> Any:
        if not compiled.is_async:
            return compiled.function(*args)
        loop = self.event_loop()
        task = loop.create_task(compiled.function(*args))
        try:
            return loop.run_until_complete(task)
        except BaseException:
            if not task.done():
                task.cancel()
                try:
                    loop.run_until_complete(task)
                except BaseException:
                    pass
            raise

    def iterate(self, result: Any) -> Any:
        """The iterator of a stream drop's result: a generator, an async generator, any iterable."""
        if hasattr(result, "__anext__"):
            return result
        if hasattr(result, "__aiter__"):
            return result.__aiter__()
        try:
            return iter(result)
        except TypeError:
            raise TypeError(f"a stream drop must give an iterable or async iterable, not {type(result).__name__}") from None

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The worker's one event loop, shared by every async drop and stream."""
        if self._loop is None or self._loop.is_closed():
            import asyncio  # here, not at start-up: importing it costs a third of the worker's start

            self._loop = asyncio.new_event_loop()
        return self._loop

    def _loop_run(self, awaitable: Any) -> Any:
        return self.event_loop().run_until_complete(awaitable)

    def next_item(self, iterator: Any) -> Any:
        """The next item; raises StopIteration or StopAsyncIteration at the end."""
        if hasattr(iterator, "__anext__"):
            return self._loop_run(iterator.__anext__())
        return next(iterator)

    def close_iterator(self, iterator: Any) -> None:
        """Closes a generator early, running its `finally`."""
        if hasattr(iterator, "aclose"):
            self._loop_run(iterator.aclose())
        elif hasattr(iterator, "close"):
            iterator.close()

    @staticmethod
    def resolve(target: str) -> Any:
        """Imports the longest importable module prefix of `target` and walks the rest as attributes."""
        # The common call, `module.function` of a module already imported, is what
        # `import_module` would give first, without its machinery (4 us of a 20 us call here).
        module, _, name = target.rpartition(".")
        found = sys.modules.get(module) if module else None
        if found is not None and not getattr(getattr(found, "__spec__", None), "_initializing", False):
            return getattr(found, name)
        parts = target.split(".")
        if len(parts) == 1:
            return getattr(builtins, target)
        import importlib  # here, not at start-up
        for cut in range(len(parts) - 1, 0, -1):
            name = ".".join(parts[:cut])
            try:
                obj: Any = importlib.import_module(name)
            except ModuleNotFoundError as e:
                # Only "this prefix is not a module" moves on; a module that fails inside raises.
                if e.name is None or not name.startswith(e.name):
                    raise
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            return obj
        raise ModuleNotFoundError(f"No module named {parts[0]!r}", name=parts[0])


def type_name(exc: BaseException) -> str:
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def describe(exc: BaseException, filename: str | None) -> dict[str, Any]:
    """The `exception` reply for `exc`: the traceback from the drop's own frames, and its line there."""
    tb = exc.__traceback__
    # Skip the worker's frames: start at the first frame of the drop (or of user code for a call).
    while tb is not None and filename is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    if tb is None:
        tb = exc.__traceback__
        while tb is not None and os.path.dirname(tb.tb_frame.f_code.co_filename) == _HERE:
            tb = tb.tb_next
    line: int | None = None
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    walk = tb
    while walk is not None:
        if filename is not None and walk.tb_frame.f_code.co_filename == filename:
            line = walk.tb_lineno
        walk = walk.tb_next
    import traceback  # here, not at start-up: only a failing drop needs it

    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"kind": "exception", "type": type_name(exc), "message": str(exc), "traceback": text, "line": line}
