import { describe, expect, it } from "@effect/vitest"
import { Drop, Handle, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Cause, Effect, Exit, Option, Schema, Scope } from "effect"
import { replaced } from "./helpers.js"

const registrySize = py`import snakebridge; return snakebridge.live_handles()`.pipe(Drop.returning(Schema.Int))

describe("handles", () => {
  it.live("keeps an object in the worker, binds it in later drops, and releases it when the scope closes", () =>
    Effect.gen(function* () {
      const counts = yield* Effect.scoped(
        Effect.gen(function* () {
          const model = yield* py`
class Model:
    def __init__(self, k):
        self.k = k
        self.calls = 0
    def predict(self, x):
        self.calls += 1
        return x * self.k
return Model(${3})
`.pipe(Drop.handle)
          expect(Handle.isHandle(model)).toBe(true)
          const a = yield* py`return ${model}.predict(${2})`
          const b = yield* py`return ${model}.predict(${5})`
          const calls = yield* py`return ${model}.calls`
          expect([a, b, calls]).toEqual([6, 15, 2])
          return { node: yield* Python.liveHandles, python: yield* registrySize }
        })
      )
      expect(counts).toEqual({ node: 1, python: 1 })
      expect(yield* Python.liveHandles).toBe(0)
      expect(yield* registrySize).toBe(0)
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("fails with HandleError Released when a handle is used after its scope closed", () =>
    Effect.gen(function* () {
      const escaped = yield* Effect.scoped(py`return [1, 2, 3]`.pipe(Drop.handle))
      expect(escaped.released).toBe(true)
      const e = yield* Effect.flip(py`return len(${escaped})`)
      expect(e._tag).toBe("HandleError")
      if (e._tag !== "HandleError") return
      expect(e.reason).toBe("Released")
      expect(e.handleId).toBe(escaped.id)
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("runs a drop that uses a handle on the worker that holds it", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(
        Effect.gen(function* () {
          const handles = yield* Effect.forEach(
            Array.from({ length: 6 }, (_, i) => i),
            (i) => py`import snakebridge; return {"worker": snakebridge.worker_id(), "i": ${i}}`.pipe(Drop.handle),
            { concurrency: 6 }
          )
          const owners = new Set(handles.map((h) => h.workerId))
          for (const h of handles) {
            const where = yield* py`import snakebridge; return [int(snakebridge.worker_id()), ${h}["worker"]]`
            expect(where).toEqual([h.workerId, String(h.workerId)])
          }
          // With several workers, handles spread; a drop mixing two workers' handles is refused.
          if (owners.size > 1) {
            const [x, y] = [handles.find((h) => h.workerId === [...owners][0])!, handles.find((h) => h.workerId === [...owners][1])!]
            const e = yield* Effect.flip(py`return (${x}, ${y})`)
            expect(e._tag === "HandleError" && e.reason).toBe("WrongWorker")
          }
        })
      )
      expect(yield* Python.liveHandles).toBe(0)
    }).pipe(Effect.provide(NodePython.layer({ workers: 2, concurrency: 1 }))))

  it.live("fails with HandleError WorkerLost when the worker holding the handle died", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const h = yield* py`return {"big": "object"}`.pipe(Drop.handle, Scope.extend(scope))
      const [worker] = yield* Python.workers
      process.kill(worker!.pid, "SIGKILL")
      yield* replaced(worker!.pid)
      const e = yield* Effect.flip(py`return ${h}["big"]`)
      expect(e._tag === "HandleError" && e.reason).toBe("WorkerLost")
      // Closing the scope of a handle whose worker is gone does not block or fail.
      yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("2 seconds"))
      expect(yield* Python.liveHandles).toBe(0)
      expect(yield* py`return "next drop works"`).toBe("next drop works")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("releases handles in batches: thousands of handles made and released leave nothing behind", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(
        Effect.forEach(Array.from({ length: 2000 }, (_, i) => i), (i) => py`return [${i}]`.pipe(Drop.handle), {
          concurrency: 16
        })
      )
      expect(yield* Python.liveHandles).toBe(0)
      expect(yield* registrySize).toBe(0)
    }).pipe(Effect.provide(NodePython.layer({ concurrency: 4 }))))

  it.live("handle drops interrupted at any moment, even as their reply arrives, leave no object in the worker", () =>
    Effect.gen(function* () {
      // Timeouts around the drop's own duration: some are cut in Python, some as the reply comes
      // in (the object is made then, and must be released as a late success), some not at all.
      for (let i = 0; i < 200; i++) {
        yield* Effect.scoped(
          py`import time; time.sleep(0.002); return [${i}]`.pipe(Drop.handle, Effect.timeout(`${1 + (i % 4)} millis`), Effect.ignore)
        )
      }
      yield* Effect.sleep("50 millis") // releases leave in a batch with the next request
      expect(yield* Python.liveHandles).toBe(0)
      expect(yield* registrySize).toBe(0)
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("handle drops cut by the pool's dropTimeout, even as their reply arrives, leave no object in the worker", () =>
    Effect.gen(function* () {
      let timedOut = 0
      for (let i = 0; i < 200; i++) {
        // 2 to 5 ms of sleep against a 4 ms deadline: some expire in Python, some as the reply comes in.
        const exit = yield* Effect.exit(Effect.scoped(py`import time; time.sleep(${(2 + (i % 4)) / 1000}); return [${i}]`.pipe(Drop.handle)))
        if (Exit.isFailure(exit)) {
          expect(Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag))).toEqual(Option.some("DropTimeout"))
          timedOut++
        }
      }
      expect(timedOut).toBeGreaterThan(0)
      yield* Effect.sleep("50 millis")
      expect(yield* Python.liveHandles).toBe(0)
      expect(yield* registrySize).toBe(0)
    }).pipe(Effect.provide(NodePython.layer({ dropTimeout: "4 millis" }))))
})
