"""The worker process (`run`, or `python -u -m snakebridge_worker`): protocol on fds 3 (in), 4 (out) and 5 (cancels)."""
from __future__ import annotations

# `_signal` is the C module that `signal` wraps in enums: `signal` would import `enum` at start-up (≈ 3 ms).
import _signal
# `_thread` rather than `threading`, which imports `functools` and `collections` (≈ 7 ms).
import _thread
import os
import sys
import time

import snakebridge

from . import PROTOCOL_VERSION, codec, lazy, shm
from .protocol import FrameError, FrameReader, FrameWriter
from .registry import HandleNotFound, Registry
from .runner import Runner, describe, drop_filename

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

REQUESTS_FD = 3
REPLIES_FD = 4
CONTROL_FD = 5
PR_SET_PDEATHSIG = 1
# A reply is held for the next one of its batch only behind a request that last took less than
# QUICK seconds, and for HOLD_FOR seconds at most (see `Worker.handle_batch`).
QUICK = 50e-6
HOLD_FOR = 200e-6
TOOK_ENTRIES = 4096
# At most this many cancels are kept for requests not seen yet (see `Worker.cancel`).
CANCELS_KEPT = 4096
# The messages that are requests: each gets a reply.
REQUESTS = ("run", "call", "pull")


def die_with_parent() -> None:
    """On Linux, ask for SIGKILL when the parent dies, even if our channel stays open (a drop
    holding the GIL in C code keeps the control thread from seeing EOF)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def start_thread(function: Callable[[], object]) -> None:
    """A thread that never takes SIGINT, so that Node's SIGINT reaches the main thread and
    interrupts what it waits in (a sleep, a read) at once."""
    blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, (_signal.SIGINT,))
    try:
        _thread.start_new_thread(function, ())
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)


def cancelled_before_it_ran(rid: int) -> dict[str, Any]:
    return {"t": "err", "id": rid, "kind": "interrupted", "message": "cancelled before it ran"}


class HandleRef:
    """A handle reference in a decoded request, resolved when the request runs."""

    __slots__ = ("id",)

    def __init__(self, hid: int) -> None:
        self.id = hid


def resolve_refs(value: Any, registry: Registry) -> Any:
    """Replaces every HandleRef in a decoded structure with its object."""
    if isinstance(value, HandleRef):
        return registry.get(value.id)
    if isinstance(value, list):
        return [resolve_refs(v, registry) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_refs(v, registry) for v in value)
    if isinstance(value, dict):
        return {k: resolve_refs(v, registry) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return {resolve_refs(v, registry) for v in value}
    return value


def read_until(reader: FrameReader, fd: int, until: float) -> list[bytes | bytearray] | None | bool:
    """Reads a non-blocking `fd` until something comes (what `reader.read` gives) or `until`
    passes (False then)."""
    while True:
        try:
            return reader.read(fd)
        except BlockingIOError:
            if time.perf_counter() >= until:
                return False
            os.sched_yield()


class Patience:
    """How long a worker waiting for its next request polls for it before it sleeps in a blocking read.

    Being woken costs ≈ 30 us here, polling costs a core. The worker polls for twice its last
    wait (at least `FLOOR`) when that wait was within `limit`, and sleeps at once after a longer
    one: its caller is slower than that, or has gone quiet; once a request follows its reply
    closely again, it polls again.
    """

    FLOOR = 50e-6
    __slots__ = ("limit", "window")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.window = min(limit, self.FLOOR)

    def waited(self, seconds: float) -> None:
        self.window = 0.0 if seconds > self.limit else min(self.limit, max(self.FLOOR, 2 * seconds))


def spin_limit() -> float:
    """SNAKEBRIDGE_WORKER_SPIN_US: the longest a worker polls for its next request (default 0,
    never: it sleeps in its read). Polling catches a caller that comes back within the bound
    awake, but costs a core, and a worker that keeps polling stays runnable: on a loaded
    machine another thread can take its core and a request then waits out a time slice."""
    return float(os.environ.get("SNAKEBRIDGE_WORKER_SPIN_US", "0")) / 1e6


class Worker:
    def __init__(self, writer: FrameWriter) -> None:
        self.writer = writer
        self.registry = Registry()
        self.runner = Runner()
        # The running request's id, and the ids cancelled, oldest first (see `on_sigint`).
        self.running: int | None = None
        self.cancelled: dict[int, None] = {}
        self.control = FrameReader(chunk=4096)
        self.reading_cancels = False
        self.cancels_again = False
        # The main thread is writing a frame for a running drop: an interrupt waits (see `send`).
        self.main_ident = _thread.get_ident()
        self.writing = False
        self.interrupt_deferred = False
        self.streams: dict[int, tuple[Any, str | None]] = {}
        # How long the last request of each code hash or call target took (see `handle_batch`).
        self.took: dict[str, float] = {}
        self.outbox = shared_memory_outbox()
        codec.use_outbox(self.outbox)

    # -- the main thread: requests, read and run in order -------------------------

    def serve(self, fd: int) -> None:
        """Reads requests and runs them one by one, on this thread: no hand-off per request."""
        reader = FrameReader()
        handles = codec.Handles(HandleRef)
        accelerated = False
        limit = spin_limit()
        patience = Patience(limit)
        if limit:
            import select

            os.set_blocking(fd, False)
            readable = select.poll()
            readable.register(fd, select.POLLIN)

        def receive() -> list[bytes | bytearray]:
            """The frames of the next read (a big frame goes straight into a buffer of its own)."""
            try:
                if limit:
                    # The next request often follows its predecessor's reply within microseconds:
                    # trying for it a little while is cheaper than sleeping and being woken.
                    began = time.perf_counter()
                    bodies = read_until(reader, fd, began + patience.window) if patience.window else False
                    if bodies is False:
                        readable.poll()
                        bodies = reader.read(fd)
                    patience.waited(time.perf_counter() - began)
                else:
                    bodies = reader.read(fd)
            except OSError:
                bodies = None
            if bodies is None:
                os._exit(0)  # EOF: the parent is gone or wants us gone
            return bodies

        while True:
            try:
                bodies = receive()
                messages = []
                for body in bodies:
                    handles.reset()
                    msg = codec.decode(body, handles)
                    if isinstance(msg, dict):
                        if handles.met:
                            msg["refs"] = True
                        if handles.lent is not None:
                            msg["lent"] = handles.lent
                    else:
                        msg = {"t": "?", "raw": msg}  # not a message: answered as an unknown one
                    messages.append(msg)
            except (FrameError, codec.DecodeError) as e:
                sys.stderr.write(f"snakebridge worker: protocol error on the request channel: {e}\n")
                os._exit(2)
            if len(messages) == 1:
                self.handle(messages[0])
            else:
                self.handle_batch(messages)
            if not accelerated:
                # msgpack's C codec costs ≈ 8 ms to import: on a thread of its own once the first
                # requests are answered, not before the first result (the reference codec serves until then).
                accelerated = True
                start_thread(codec.accelerate)

    def handle_batch(self, messages: list[dict[str, Any]]) -> None:
        """Requests read together: their replies are held to leave together in one write, as long
        as that delays none of them much. Before a request whose last run (by code or target) was
        not quick, or once the oldest held reply has waited `HOLD_FOR`, the held replies leave."""
        writer = self.writer
        took = self.took
        started = held_since = time.perf_counter()
        for msg in messages:
            key = msg.get("hash") or msg.get("target")
            if writer.holding and msg.get("t") in REQUESTS:
                last = took.get(key) if isinstance(key, str) else None
                if last is None or last >= QUICK or started - held_since >= HOLD_FOR:
                    writer.flush()
            was_holding = writer.holding
            self.handle(msg, hold=True)
            ended = time.perf_counter()
            if not was_holding:
                held_since = ended
            if isinstance(key, str):
                if len(took) >= TOOK_ENTRIES:
                    took.clear()
                took[key] = ended - started
            started = ended
        writer.flush()

    # -- cancels: read on the main thread, when Node's SIGINT says one is there ------------

    def on_sigint(self, signum: int, frame: Any) -> None:
        """Node sends SIGINT once it has written a cancel to the control channel. The cancels are
        read here, on the thread that runs requests and holds the GIL: a thread of their own would
        have to win the GIL first, and a drop that computes in stretches of a few milliseconds
        with a system call between keeps it from any other thread for seconds. The running
        request, if cancelled, is interrupted; a SIGINT with no cancel (Ctrl-C in a terminal) is ignored."""
        if self.reading_cancels:
            # A second SIGINT while this handler reads: the outer call reads again.
            self.cancels_again = True
            return
        while True:
            self.reading_cancels = True
            self.cancels_again = False
            try:
                self.read_cancels(CONTROL_FD)
            finally:
                self.reading_cancels = False
            if not self.cancels_again:
                break
        if self.running is not None and self.running in self.cancelled:
            if self.writing:
                self.interrupt_deferred = True  # raised once the frame is whole
                return
            self.interrupt_deferred = False
            raise KeyboardInterrupt

    def read_cancels(self, fd: int) -> None:
        """Reads the (non-blocking) control channel until it is empty."""
        while True:
            try:
                bodies = self.control.read(fd)
                if bodies is None:
                    os._exit(0)  # EOF: the parent is gone or wants us gone
                for body in bodies:
                    msg = codec.decode(body)
                    if not (isinstance(msg, dict) and msg.get("t") == "cancel"):
                        raise codec.DecodeError(f"unexpected message: {msg!r:.80}")
                    self.cancel(msg.get("id"))
            except BlockingIOError:
                return
            except OSError:
                os._exit(0)  # the channel failed: as at EOF
            except (FrameError, codec.DecodeError) as e:
                sys.stderr.write(f"snakebridge worker: protocol error on the control channel: {e}\n")
                os._exit(2)

    def cancel(self, rid: Any) -> None:
        """Records a cancel until its request comes. One that raced its reply names a request that
        is gone and stays: once `CANCELS_KEPT` are kept, the oldest half leave, so those never pile
        up (the cancels of requests still queued are among the last few)."""
        cancelled = self.cancelled
        cancelled[rid] = None
        if len(cancelled) > CANCELS_KEPT:
            for old in list(cancelled)[: len(cancelled) // 2]:
                del cancelled[old]

    def watch_control(self, fd: int) -> None:
        """On a thread of its own: exits when the control channel ends (the parent is gone or
        wants us gone), even mid-drop, should no SIGINT say so. It never reads, and sleeps
        through the cancels: poll reports a hang-up whatever it is asked for, and Linux's
        POLLRDHUP the end of writing that Node's socketpair gives (no hang-up while Node holds it)."""
        import select

        channel = select.poll()
        channel.register(fd, getattr(select, "POLLRDHUP", 0))
        while True:
            if channel.poll():
                os._exit(0)

    def handle(self, msg: dict[str, Any], hold: bool = False) -> None:
        """Runs a request and replies; `hold` keeps a small reply to leave with the next write."""
        t = msg.get("t")
        rid = msg.get("id")
        if not (t in REQUESTS and isinstance(rid, int)):
            self.handle_other(msg, t, rid)
            return
        lent: shm.Lent | None = msg.pop("lent", None)
        try:
            reply = self.execute(msg, rid)
        except KeyboardInterrupt:
            # Raised only while the request's own code runs (`running` is set just around it, and
            # `execute` and `pull` clear it on the way out): the worker's bookkeeping before and
            # after it is never cut short.
            reply = {"t": "err", "id": rid, "kind": "interrupted", "message": "interrupted"}
        if self.cancelled:
            self.cancelled.pop(rid, None)
        self.reply(reply, lent, hold)

    def handle_other(self, msg: dict[str, Any], t: Any, rid: Any) -> None:
        """A message with no reply, or one that is not a request."""
        if t == "release":
            self.registry.release(i for i in msg.get("ids", ()) if isinstance(i, int))
        elif t == "close":
            self.close_stream(msg.get("stream"))
        elif t == "free":
            if self.outbox is not None:
                self.outbox.free(msg.get("fds", ()))
        else:
            self.reply({"t": "err", "id": rid if isinstance(rid, int) else -1, "kind": "protocol", "message": f"unknown message {t!r}"})

    def execute(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        t = msg["t"]
        if t == "pull":
            return self.pull(msg, rid)
        mode = msg.get("mode")
        hash_: str | None = None  # a run's, once checked: its code's file name in tracebacks
        try:
            # Taken out of the message: once the drop is done, only what it kept holds them.
            args = msg.pop("args", None)
            if not isinstance(args, list):
                return {"t": "err", "id": rid, "kind": "protocol", "message": "args must be an array"}
            kwargs = msg.pop("kwargs", None) or {}
            if msg.get("refs"):
                args = resolve_refs(args, self.registry)
                kwargs = resolve_refs(kwargs, self.registry)
            if t == "run":
                given, code = msg.get("hash"), msg.get("code")
                if not isinstance(given, str) or not (code is None or isinstance(code, str)):
                    return {"t": "err", "id": rid, "kind": "protocol", "message": "run needs a hash and code"}
                hash_ = given
                compiled = self.runner.compiled(hash_, code, len(args))
                if compiled is None:
                    return {"t": "err", "id": rid, "kind": "need_code", "message": f"code {hash_} is not cached"}
                # From here the drop's own code runs, and a cancel interrupts it (see `on_sigint`);
                # one read before is seen here. Only user code is ever cut short: an interrupt in
                # the code cache's update lost the entry, in the registry's an object that no
                # reply named.
                self.running = rid
                if rid in self.cancelled:
                    return cancelled_before_it_ran(rid)
                result = self.runner.run(compiled, args)
            else:
                target = msg.get("target")
                if not isinstance(target, str) or not isinstance(kwargs, dict):
                    return {"t": "err", "id": rid, "kind": "protocol", "message": "call needs a target and kwargs"}
                self.running = rid
                if rid in self.cancelled:
                    return cancelled_before_it_ran(rid)
                result = Runner.resolve(target)(*args, **kwargs)
        except HandleNotFound as e:
            return {"t": "err", "id": rid, "kind": "handle", "handle": e.handle, "message": str(e)}
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure of user code becomes a reply
            self.running = None  # (first: the traceback is formatted beyond a cancel's reach)
            return {"t": "err", "id": rid, **describe(e, None if hash_ is None else drop_filename(hash_))}
        finally:
            self.running = None
        if mode == "handle":
            return {"t": "ok", "id": rid, "value": self.registry.put(result)}
        if mode == "stream":
            filename = None if hash_ is None else drop_filename(hash_)
            try:
                self.streams[rid] = (self.runner.iterate(result), filename)
            except TypeError as e:
                return {"t": "err", "id": rid, **describe(e, filename)}
            return {"t": "ok", "id": rid, "value": rid}  # the stream's id is its opening request's
        return {"t": "ok", "id": rid, "value": result}

    # -- streams: a drop's iterator, advanced only as far as Node asks ---------------

    def pull(self, msg: dict[str, Any], rid: int) -> dict[str, Any]:
        sid, n = msg.get("stream"), msg.get("n")
        entry = self.streams.get(sid) if isinstance(sid, int) else None
        if entry is None or not isinstance(n, int) or n < 1:
            return {"t": "err", "id": rid, "kind": "protocol", "message": f"no open stream {sid!r} (or a bad count)"}
        iterator, filename = entry
        items: list[Any] = []
        self.running = rid  # the generator is user code: a cancel interrupts it (see `execute`)
        try:
            if rid in self.cancelled:
                return cancelled_before_it_ran(rid)
            for _ in range(n):
                items.append(self.runner.next_item(iterator))
        except (StopIteration, StopAsyncIteration):
            self.running = None
            self.streams.pop(sid, None)
            return {"t": "ok", "id": rid, "value": {"items": items, "done": True}}
        except KeyboardInterrupt:
            self.running = None
            self.close_stream(sid)
            raise
        except BaseException as e:  # noqa: BLE001 - the generator raised: the stream ends with it
            self.running = None
            self.streams.pop(sid, None)
            return {"t": "err", "id": rid, **describe(e, filename)}
        finally:
            self.running = None
        return {"t": "ok", "id": rid, "value": {"items": items, "done": False}}

    def close_stream(self, sid: Any) -> None:
        entry = self.streams.pop(sid, None) if isinstance(sid, int) else None
        if entry is None:
            return
        try:
            self.runner.close_iterator(entry[0])
        except BaseException:  # noqa: BLE001 - nobody waits for a close: report it on stderr
            import traceback

            traceback.print_exc()

    def emit(self, value: Any) -> None:
        """Sends a progress event for the running drop (`snakebridge.emit`)."""
        rid = self.running
        if rid is None:
            raise RuntimeError("snakebridge.emit() was called outside a running drop")
        self.send(codec.encode({"t": "emit", "id": rid, "value": value}))

    def send(self, body: bytes) -> None:
        """Writes a frame from code that a cancel may interrupt (an emit, a log record). On the main
        thread, the cancel's KeyboardInterrupt waits until the frame is whole: raised in the middle
        of a write cut short by its signal, it would leave the channel torn."""
        if _thread.get_ident() != self.main_ident:
            self.writer.write(body)
            return
        self.writing = True
        try:
            self.writer.write(body)
        finally:
            self.writing = False
            if self.interrupt_deferred:
                self.interrupt_deferred = False
                raise KeyboardInterrupt

    def reply(self, reply: dict[str, Any], lent: shm.Lent | None = None, hold: bool = False) -> None:
        rid = reply["id"]
        # What went where in shared memory matters only for a request that was lent some.
        shared = None if lent is None else codec.Shared()
        try:
            parts = codec.encode_parts(reply, lent, shared)
        except codec.EncodeError as e:
            # Only "value" can fail: the path inside the message is ["value", ...].
            shared = None if lent is None else codec.Shared()
            parts = self.encode_error(rid, e.path[1:], e.message)
        if lent is not None and shared is not None:
            # Arrays of the result still where Node lent them are named there, and their mappings
            # (plain references, no view) stay at hand in case the drop kept them too.
            mappings = {b.fd: lent.mapping(b.fd) for b in shared.borrowed}
            # The result is encoded: whatever still holds Node's segments now was kept by the drop.
            # Node learns it before the reply, so that it never writes into them again.
            reply.clear()
            kept = lent.close()
            for b in shared.borrowed:
                if b.fd in kept:
                    # Kept and returned: Node gets a copy, or the two would share the array.
                    ref = self.outbox.put(memoryview(mappings[b.fd])[: b.nbytes]) if self.outbox is not None else None
                    if ref is None:
                        if self.outbox is not None:
                            self.outbox.free(shared.segments)  # the reply that named them is not sent
                        parts = self.encode_error(rid, [], "a kept array could not be copied into shared memory")
                        break
                    shared.segments.append(ref[1])
                    b.move(*ref)
            mappings.clear()
            if kept:
                self.writer.write(codec.encode({"t": "kept", "fds": kept}))
        if not (hold and self.writer.hold(parts)):
            self.writer.write_parts(parts)

    @staticmethod
    def encode_error(rid: Any, path: list[Any], message: str) -> list[Any]:
        return codec.encode_parts({"t": "err", "id": rid, "kind": "encode", "path": path, "message": message})


def forward_logging(send: Callable[[bytes], None]) -> None:
    """Python `logging` to Node, where it reaches the Effect Logger: wired when something imports
    logging (user code, a library), so that a worker whose drops never log does not pay for it."""

    def wire(logging: ModuleType) -> None:
        class ForwardingHandler(logging.Handler):  # type: ignore[name-defined, misc]
            def emit(self, record: Any) -> None:
                try:
                    message = self.format(record)
                    send(codec.encode({"t": "log", "level": record.levelno, "name": record.name, "message": message}))
                except Exception:  # noqa: BLE001 - logging must never break the drop that logs
                    self.handleError(record)

        root = logging.getLogger()
        root.addHandler(ForwardingHandler())
        if root.level == logging.WARNING:  # Python's default: let INFO through, the Effect Logger filters further
            root.setLevel(logging.INFO)

    lazy.after_import("logging", wire)


def shared_memory_outbox() -> shm.Outbox | None:
    """SNAKEBRIDGE_SHM_THRESHOLD (bytes), set by Node: arrays of replies at least this big go
    through shared memory. Unset, or where the platform has no memfd: everything goes through the pipe."""
    threshold = os.environ.get("SNAKEBRIDGE_SHM_THRESHOLD")
    if not threshold or not shm.available():
        return None
    return shm.Outbox(max(1, int(threshold)))


def limit_address_space() -> None:
    """Applies SNAKEBRIDGE_MAX_ADDRESS_SPACE (bytes): a runaway allocation becomes a MemoryError."""
    limit = os.environ.get("SNAKEBRIDGE_MAX_ADDRESS_SPACE")
    if not limit:
        return
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))


def main() -> None:
    limit_address_space()
    writer = FrameWriter(REPLIES_FD)
    worker = Worker(writer)
    snakebridge._attach(worker.registry, worker.emit)
    forward_logging(worker.send)
    os.set_blocking(CONTROL_FD, False)  # `on_sigint` reads it until it is empty
    _signal.signal(_signal.SIGINT, worker.on_sigint)
    writer.write(
        codec.encode(
            {
                "t": "hello",
                "protocol": PROTOCOL_VERSION,
                "pid": os.getpid(),
                "python": "%d.%d.%d" % sys.version_info[:3],
                "executable": sys.executable,
                "shm": shm.available(),  # whether it can map the segments Node lends
            }
        )
    )
    def control() -> None:
        # Armed here, after the hello, not before it: ctypes costs the start-up ≈ 2 ms, and until
        # then the worker still exits on EOF of its channels (a parent already gone is checked inside).
        die_with_parent()
        worker.watch_control(CONTROL_FD)

    start_thread(control)
    worker.serve(REQUESTS_FD)


def run() -> None:
    """The process's entry: `python -c "from snakebridge_worker.__main__ import run; run()"`, as Node
    starts it (`-m` would import `runpy` and, behind it, `importlib.util`, `contextlib`, `functools`
    and `collections`: ≈ 5 ms of every start), or `python -m snakebridge_worker`."""
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
        os._exit(1)


if __name__ == "__main__":
    run()
