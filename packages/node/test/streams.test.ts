import { describe, expect, it, layer } from "@effect/vitest"
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Chunk, Effect, Layer, Logger, Schema, Stream } from "effect"

const Item = Schema.Struct({ i: Schema.Int })

layer(NodePython.layer(), { excludeTestServices: true })("Drop.stream", (it) => {
  it.effect("streams a generator's items decoded with the Schema", () =>
    Effect.gen(function* () {
      const items = yield* py`
def rows(n):
    for i in range(n):
        yield {"i": i}
return rows(${40})
`.pipe(Drop.stream(Item, { chunkSize: 7 }), Stream.runCollect)
      expect(Chunk.toArray(items)).toEqual(Array.from({ length: 40 }, (_, i) => ({ i })))
    }))

  it.effect("ending the stream early closes the generator and runs its finally; Python ran only as far as pulled", () =>
    Effect.gen(function* () {
      const taken = yield* py`
import builtins
builtins.produced = 0
builtins.closed = False
def rows():
    try:
        for i in range(1_000_000):
            builtins.produced += 1
            yield {"i": i}
    finally:
        builtins.closed = True
return rows()
`.pipe(Drop.stream(Item, { chunkSize: 4 }), Stream.take(5), Stream.runCollect)
      expect(Chunk.toArray(taken).map((r) => r.i)).toEqual([0, 1, 2, 3, 4])
      const state = yield* py`import builtins; return [builtins.produced, builtins.closed]`
      const [produced, closed] = state as [number, boolean]
      expect(closed).toBe(true)
      // Backpressure: two pulls of 4, never the whole range.
      expect(produced).toBeLessThanOrEqual(8)
    }))

  it.effect("streams an async generator", () =>
    Effect.gen(function* () {
      const items = yield* py`
import asyncio
async def ticks():
    for i in range(5):
        await asyncio.sleep(0)
        yield {"i": i * 10}
return ticks()
`.pipe(Drop.stream(Item), Stream.runCollect)
      expect(Chunk.toArray(items).map((r) => r.i)).toEqual([0, 10, 20, 30, 40])
    }))

  it.effect("fails the stream with the PythonException the generator raised, after the items before it", () =>
    Effect.gen(function* () {
      const seen: Array<number> = []
      const error = yield* py`
def rows():
    yield {"i": 1}
    yield {"i": 2}
    raise RuntimeError("broken source")
return rows()
`.pipe(
        Drop.stream(Item, { chunkSize: 1 }),
        Stream.runForEach((r) => Effect.sync(() => seen.push(r.i))),
        Effect.flip
      )
      expect(seen).toEqual([1, 2])
      expect(error._tag === "PythonException" && error.message).toBe("broken source")
    }))

  it.effect("a result that is not iterable fails with a typed error", () =>
    Effect.gen(function* () {
      const error = yield* py`return 42`.pipe(Drop.stream(Schema.Unknown), Stream.runCollect, Effect.flip)
      expect(error._tag === "PythonException" && error.type).toBe("TypeError")
    }))

  it.effect("an item that does not match the Schema fails with its ParseError", () =>
    Effect.gen(function* () {
      const error = yield* py`return iter([{"i": 1}, {"i": "two"}])`.pipe(Drop.stream(Item), Stream.runCollect, Effect.flip)
      expect(error._tag).toBe("ParseError")
    }))

  it.effect("the worker serves other drops while a stream is open", () =>
    Effect.gen(function* () {
      const out = yield* py`return iter(range(3))`.pipe(
        Drop.stream(Schema.Int, { chunkSize: 1 }),
        Stream.mapEffect((i) => py`return ${i} * 100`.pipe(Drop.returning(Schema.Int))),
        Stream.runCollect
      )
      expect(Chunk.toArray(out)).toEqual([0, 100, 200])
    }))
})

layer(NodePython.layer(), { excludeTestServices: true })("progress", (it) => {
  it.effect("events sent with snakebridge.emit reach the handler in order, before the result", () =>
    Effect.gen(function* () {
      const events: Array<unknown> = []
      const result = yield* py`
import snakebridge
for epoch in range(5):
    snakebridge.emit({"epoch": epoch, "loss": 1 / (epoch + 1)})
return "fitted"
`.pipe(
        Drop.onProgress((event) => Effect.sync(() => events.push(event))),
        Drop.returning(Schema.String)
      )
      expect(result).toBe("fitted")
      expect(events).toEqual([0, 1, 2, 3, 4].map((epoch) => ({ epoch, loss: 1 / (epoch + 1) })))
    }))

  it.effect("emit without a handler is harmless, and outside a running drop it raises", () =>
    Effect.gen(function* () {
      expect(yield* py`import snakebridge; snakebridge.emit(1); return 2`).toBe(2)
      yield* py`
import builtins, snakebridge, threading, time
def later():
    time.sleep(0.2)
    try:
        snakebridge.emit("too late")
    except RuntimeError as e:
        builtins.emit_error = str(e)
threading.Thread(target=later).start()
`
      yield* Effect.sleep("500 millis")
      expect(yield* py`import builtins; return builtins.emit_error`).toContain("outside a running drop")
    }))
})

describe("Python logging", () => {
  it.live("records reach the Effect Logger with their level mapped and the logger name", () => {
    const seen: Array<{ level: string; message: string; logger: unknown; workerId: unknown }> = []
    const capture = Logger.make(({ logLevel, message, annotations }) => {
      const ann = Object.fromEntries(annotations)
      if (ann.stream === "logging") {
        seen.push({ level: logLevel.label, message: String(Array.isArray(message) ? message[0] : message), logger: ann.logger, workerId: ann.workerId })
      }
    })
    return Effect.gen(function* () {
      const [worker] = yield* Python.workers
      yield* py`
import logging
log = logging.getLogger("training")
log.info("epoch %d done", 3)
log.warning("loss went up")
log.error("diverged")
logging.getLogger().critical("fatal")
log.debug("hidden at the default INFO level")
`
      yield* Effect.sleep("50 millis").pipe(Effect.repeat({ until: () => seen.length >= 4 }), Effect.timeout("10 seconds"))
      expect(seen).toEqual([
        { level: "INFO", message: "epoch 3 done", logger: "training", workerId: worker!.id },
        { level: "WARN", message: "loss went up", logger: "training", workerId: worker!.id },
        { level: "ERROR", message: "diverged", logger: "training", workerId: worker!.id },
        { level: "FATAL", message: "fatal", logger: "root", workerId: worker!.id }
      ])
    }).pipe(Effect.provide(NodePython.layer().pipe(Layer.provide(Logger.replace(Logger.defaultLogger, capture)))))
  })
})
