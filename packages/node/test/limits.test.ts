import { describe, expect, it } from "@effect/vitest"
import { py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect } from "effect"
import { pid, replaced } from "./helpers.js"

describe("limits and warm-up", () => {
  it.live("an allocation above the address-space limit fails that drop with MemoryError; the worker serves on", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const e = yield* Effect.flip(py`return len(bytearray(4 * 1024 ** 3))`)
      expect(e._tag === "PythonException" && e.type).toBe("MemoryError")
      expect(yield* pid).toBe(before)
      expect(yield* py`return len(bytearray(10 * 1024 ** 2))`).toBe(10 * 1024 ** 2)
    }).pipe(Effect.provide(NodePython.layer({ maxAddressSpaceMB: 1024 }))))

  it.live("a warm-up drop runs on every new worker, restarted ones included, before it takes work", () =>
    Effect.gen(function* () {
      expect(yield* py`import builtins; return builtins.warmed`).toBe("yes")
      const before = yield* pid
      process.kill(before, "SIGKILL")
      yield* replaced(before)
      expect(yield* py`import builtins; return builtins.warmed`).toBe("yes")
    }).pipe(Effect.provide(NodePython.layer({ warmup: py`import builtins; builtins.warmed = "yes"` }))))

  it.live("a failing warm-up is a typed start-up error with the Python traceback", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(
        Effect.provide(py`1`, NodePython.layer({ warmup: py`import surely_not_a_module_here` }))
      )
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Warmup")
      expect(e.detail).toContain("ModuleNotFoundError: No module named 'surely_not_a_module_here'")
    }))

  it.live("workers dying faster than the restart intensity allows fail the pool with a typed error", () =>
    Effect.gen(function* () {
      const crash = py`import os; os._exit(1)`
      for (let i = 0; i < 2; i++) {
        const e = yield* Effect.flip(crash)
        expect(e._tag).toBe("WorkerLost")
      }
      // The third death within the window is one too many: drops now fail instead of waiting.
      yield* Effect.flip(crash)
      const e = yield* Effect.flip(py`return 1`.pipe(Effect.timeout("20 seconds")))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Intensity")
      expect(e.detail).toContain("more than 2 worker restarts within 1m")
      expect((yield* Python.workers).length).toBe(0)
    }).pipe(Effect.provide(NodePython.layer({ maxRestarts: { count: 2, within: "1 minute" } }))))
})
