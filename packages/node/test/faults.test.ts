import { describe, expect, it } from "@effect/vitest"
import { py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect } from "effect"
import { pid, replaced, waitUntil } from "./helpers.js"


describe("faults a drop can cause", () => {
  it.live("os._exit inside a drop fails it with WorkerLost (exit code kept); the pool is back and the next drop succeeds", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const e = yield* Effect.flip(py`import os; os._exit(7)`)
      expect(e._tag).toBe("WorkerLost")
      if (e._tag !== "WorkerLost") return
      expect(e.exitCode).toBe(7)
      yield* replaced(before)
      expect(yield* py`return "next"`).toBe("next")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("a segfault in a drop fails it with WorkerLost (SIGSEGV); the pool is back", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const e = yield* Effect.flip(py`
import ctypes
ctypes.string_at(0)
`)
      expect(e._tag).toBe("WorkerLost")
      if (e._tag !== "WorkerLost") return
      expect(e.signal).toBe("SIGSEGV")
      yield* replaced(before)
      expect(yield* py`return "next"`).toBe("next")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("code that ignores SIGINT: the timeout still returns, the worker is killed after the grace period and replaced", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const start = Date.now()
      const result = yield* py`
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
time.sleep(600)
`.pipe(Effect.timeout("200 millis"), Effect.either)
      expect(result._tag).toBe("Left")
      expect(Date.now() - start).toBeLessThan(10_000)
      yield* replaced(before)
      expect(yield* py`return "next"`).toBe("next")
    }).pipe(Effect.provide(NodePython.layer({ interruptGrace: "1 second" }))))

  it.live("the other workers keep serving while one crashes", () =>
    Effect.gen(function* () {
      const crash = py`import os; os._exit(1)`
      const results = yield* Effect.all(
        [Effect.either(crash), ...Array.from({ length: 10 }, (_, i) => py`return ${i}`.pipe(Effect.either))],
        { concurrency: "unbounded" }
      )
      // The crash, and at most what was queued on the same worker, fail with WorkerLost; the rest succeed.
      expect(results[0]!._tag).toBe("Left")
      results.forEach((r, i) => {
        if (r._tag === "Left") expect(r.left._tag).toBe("WorkerLost")
        else expect(r.right).toBe(i - 1)
      })
      expect(results.filter((r) => r._tag === "Right").length).toBeGreaterThanOrEqual(5)
      yield* waitUntil(Python.workers, (ws) => ws.length === 2)
    }).pipe(Effect.provide(NodePython.layer({ workers: 2 }))))
})
