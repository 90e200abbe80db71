import { describe, expect, it } from "@effect/vitest"
import { Drop, Metrics, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Metric, Schema } from "effect"
import { pid, replaced } from "./helpers.js"

const recycles = Metric.value(Metrics.workerRecycles).pipe(Effect.map((s) => s.count))

describe("recycling", () => {
  it.live("replaces a worker after N drops; its handles then fail typed", () =>
    Effect.gen(function* () {
      const before = yield* recycles
      const first = yield* pid
      const handle = yield* py`return [1, 2]`.pipe(Drop.handle)
      expect(yield* pid).toBe(first) // the third drop on this worker
      yield* replaced(first)
      expect(yield* pid).not.toBe(first)
      expect((yield* recycles) - before).toBe(1)
      const e = yield* Effect.flip(py`return ${handle}`)
      expect(e._tag === "HandleError" && e.reason).toBe("WorkerLost")
    }).pipe(Effect.scoped, Effect.provide(NodePython.layer({ maxDrops: 3 }))))

  it.live("lets the drops in flight finish before replacing the worker", () =>
    Effect.gen(function* () {
      const results = yield* Effect.forEach([1, 2, 3, 4], (i) => py`import time; time.sleep(0.1); return ${i}`, {
        concurrency: "unbounded"
      })
      expect(results).toEqual([1, 2, 3, 4])
    }).pipe(Effect.provide(NodePython.layer({ maxDrops: 2, concurrency: 2 }))))

  it.live("replaces a worker that has been idle too long", () =>
    Effect.gen(function* () {
      const first = yield* pid
      yield* replaced(first)
      expect(yield* pid).not.toBe(first)
    }).pipe(Effect.provide(NodePython.layer({ maxIdle: "300 millis" }))))

  it.live("replaces a worker whose measured resident memory grows above the limit", () =>
    Effect.gen(function* () {
      const first = yield* pid
      // Keep 150 MB alive in the worker's registry; the watcher sees the RSS and retires it.
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* py`return bytearray(150 * 1024 * 1024)`.pipe(Drop.handle)
          yield* replaced(first)
        })
      )
      expect(yield* pid).not.toBe(first)
    }).pipe(Effect.provide(NodePython.layer({ maxResidentMemoryMB: 100 }))))

  it.live("shared memory is not the worker's resident memory: big results Node holds do not get it recycled", () =>
    Effect.gen(function* () {
      const first = yield* pid
      // 192 MiB of results in the worker's segments, mapped by both processes while Node holds them.
      const held = yield* Effect.forEach([1, 2, 3], (i) =>
        py`
import numpy as np
np.full(${(64 * 1024 * 1024) / 8}, float(${i}))
`.pipe(Drop.returning(Schema.instanceOf(Float64Array))))
      const shmem = yield* py`
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
return int(status["RssShmem"].split()[0]) // 1024
`
      expect(shmem).toBeGreaterThan(150)
      yield* Effect.sleep("2500 millis") // the watcher looks every second
      expect(yield* pid).toBe(first)
      expect(held.map((a) => a[a.length - 1])).toEqual([1, 2, 3])
    }).pipe(Effect.provide(NodePython.layer({ maxResidentMemoryMB: 100 }))))
})
