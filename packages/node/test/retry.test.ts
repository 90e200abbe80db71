import { describe, expect, it } from "@effect/vitest"
import { Drop, Metrics, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Metric, Schema } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pid } from "./helpers.js"

/** A drop that kills its worker the first time it runs (a marker file remembers), then succeeds. */
const crashOnce = () => {
  const marker = join(mkdtempSync(join(tmpdir(), "snakebridge-retry-")), "ran")
  return py`
import os
if not os.path.exists(${marker}):
    open(${marker}, "w").close()
    os._exit(1)
return "second run"
`
}

describe("retries and deadlines", () => {
  it.live("a drop is never retried behind the user's back", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(crashOnce())
      expect(e._tag).toBe("WorkerLost")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("an idempotent drop is run again on another worker when its worker is lost", () =>
    Effect.gen(function* () {
      expect(yield* crashOnce().pipe(Drop.idempotent, Drop.returning(Schema.String))).toBe("second run")
    }).pipe(Effect.provide(NodePython.layer({ workers: 2 }))))

  it.live("Drop.retry retries the listed Python exception types, and only those", () =>
    Effect.gen(function* () {
      const flaky = py`
import builtins
builtins.attempts = getattr(builtins, "attempts", 0) + 1
if builtins.attempts < 3:
    raise ConnectionError("try again")
return builtins.attempts
`
      expect(yield* flaky.pipe(Drop.retry({ times: 5, exceptions: ["ConnectionError"] }))).toBe(3)
      const other = yield* Effect.flip(
        py`raise ValueError("not retryable")`.pipe(Drop.retry({ times: 5, exceptions: ["ConnectionError"] }))
      )
      expect(other._tag === "PythonException" && other.type).toBe("ValueError")
      const tries = yield* py`
import builtins
builtins.tries = getattr(builtins, "tries", 0) + 1
raise ConnectionError(builtins.tries)
`.pipe(Drop.retry({ times: 2, exceptions: ["ConnectionError"] }), Effect.flip)
      expect(tries._tag === "PythonException" && tries.message).toBe("3")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("the pool's dropTimeout interrupts a drop with a typed DropTimeout and reuses the worker", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const e = yield* Effect.flip(py`import time; time.sleep(30)`)
      expect(e._tag).toBe("DropTimeout")
      if (e._tag !== "DropTimeout") return
      expect(e.millis).toBe(300)
      expect(yield* pid).toBe(before)
    }).pipe(Effect.provide(NodePython.layer({ dropTimeout: "300 millis" }))))

  it.live("the dropTimeout holds for drops queued behind a busy worker, counts as DropTimeout, and leaves fast drops alone", () =>
    Effect.gen(function* () {
      const failed = () => Metric.value(Metrics.dropsFailed.pipe(Metric.tagged("error", "DropTimeout"))).pipe(Effect.map((s) => s.count))
      const before = yield* failed()
      // The second waits for the worker the first holds: both past the deadline.
      const both = yield* Effect.forEach([1, 2], () => Effect.flip(py`import time; time.sleep(30)`), { concurrency: 2 })
      expect(both.map((e) => e._tag)).toEqual(["DropTimeout", "DropTimeout"])
      expect((yield* failed()) - before).toBe(2)
      // Interrupted before its deadline: the interruption stands, and no deadline fires later.
      const cut = yield* py`import time; time.sleep(30)`.pipe(Effect.timeout("50 millis"), Effect.flip)
      expect(cut._tag).toBe("TimeoutException")
      yield* Effect.sleep("400 millis")
      expect((yield* failed()) - before).toBe(2)
      // Far more fast drops than the deadline would allow one at a time if a timer leaked.
      const xs = yield* Effect.forEach(Array.from({ length: 2000 }, (_, i) => i), (i) => py`return ${i} * 2`, { concurrency: 8 })
      expect(xs[1999]).toBe(3998)
    }).pipe(Effect.provide(NodePython.layer({ dropTimeout: "300 millis" }))))
})
