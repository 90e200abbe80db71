import { describe, expect, it } from "@effect/vitest"
import { py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { fileURLToPath } from "node:url"
import { alive, swallowsInterrupts } from "./helpers.js"

describe("graceful shutdown", () => {
  it.live("lets drops in flight finish, refuses new ones, then stops every worker", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(NodePython.layer({ workers: 2 }), scope)
      const pids = (yield* Effect.provide(Python.workers, context)).map((w) => w.pid)
      const running = yield* Effect.forkDaemon(
        Effect.provide(py`import time; time.sleep(0.5); return "finished"`, context)
      )
      yield* Effect.sleep("100 millis")
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Effect.sleep("50 millis")
      const late = yield* Effect.flip(Effect.provide(py`return "too late"`, context))
      expect(late._tag).toBe("WorkerLost")
      expect(yield* Fiber.join(running)).toBe("finished")
      yield* Fiber.join(closing)
      for (const p of pids) expect(alive(p)).toBe(false)
    }))

  it.live("a worker whose drop ignores interrupts exits at the end of its channels, not at the grace: Node's SIGINT has it read the EOF", () =>
    // The worker's control thread, which could see the end too but must win the GIL first, is
    // kept blind here: what ends the worker is the SIGINT that follows the end of the channel.
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const layer = NodePython.layer({
        drainTimeout: "100 millis",
        interruptGrace: "10 seconds",
        shutdownGrace: "10 seconds",
        env: {
          PYTHONPATH: fileURLToPath(new URL("fixtures/rogue", import.meta.url)),
          SNAKEBRIDGE_TEST_ROGUE: "blind-control"
        }
      })
      const context = yield* Layer.buildWithScope(layer, scope)
      const [worker] = yield* Effect.provide(Python.workers, context)
      const running = yield* Effect.forkDaemon(Effect.provide(swallowsInterrupts, context))
      yield* Effect.sleep("200 millis")
      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - start).toBeLessThan(5_000)
      expect(alive(worker!.pid)).toBe(false)
      expect(Exit.isFailure(yield* Fiber.await(running))).toBe(true)
    }))

  it.live("interrupts drops that outlive the drain timeout and stops their workers", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(NodePython.layer({ drainTimeout: "200 millis" }), scope)
      const [worker] = yield* Effect.provide(Python.workers, context)
      const running = yield* Effect.forkDaemon(
        Effect.provide(swallowsInterrupts, context)
      )
      yield* Effect.sleep("100 millis")
      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - start).toBeLessThan(10_000)
      const outcome = yield* Fiber.await(running)
      expect(Exit.isFailure(outcome)).toBe(true)
      expect(alive(worker!.pid)).toBe(false)
    }))
})
