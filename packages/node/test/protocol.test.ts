import { describe, expect, it } from "@effect/vitest"
import { py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Config, Effect } from "effect"
import { fileURLToPath } from "node:url"
import { replaced } from "./helpers.js"

const rogue = (mode: string) =>
  NodePython.layer({
    env: { PYTHONPATH: fileURLToPath(new URL("fixtures/rogue", import.meta.url)), SNAKEBRIDGE_TEST_ROGUE: mode },
    startupTimeout: "10 seconds"
  })

describe("protocol and version checks", () => {
  it.live("an interpreter older than 3.10 fails with WorkerStartupError Version and says how to fix it", () =>
    Effect.gen(function* () {
      const python = fileURLToPath(new URL("fixtures/old-python.sh", import.meta.url))
      const e = yield* Effect.flip(Effect.provide(py`1`, NodePython.layer({ python })))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Version")
      expect(e.message).toContain("3.8.18")
      expect(e.message).toContain("python3 -m venv .venv")
    }))

  it.live("a worker speaking another protocol version fails the start-up with a clear error", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(Effect.provide(py`1`, rogue("protocol")))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Handshake")
      expect(e.detail).toContain("protocol 99")
    }))

  it.live("a malformed frame from a worker fails the drop with ProtocolError and the worker is replaced", () =>
    Effect.gen(function* () {
      const [before] = yield* Python.workers
      const e = yield* Effect.flip(py`return 1`)
      expect(e._tag).toBe("ProtocolError")
      if (e._tag !== "ProtocolError") return
      expect(e.detail).toContain("above the limit")
      expect(e.workerId).toBe(before!.id)
      yield* replaced(before!.pid)
    }).pipe(Effect.provide(rogue("garbage"))))
})

describe("NodePython.layerConfig", () => {
  it.live("reads the pool's options from Config", () =>
    Effect.gen(function* () {
      const workers = yield* Python.workers
      expect(workers.length).toBe(2)
      expect(yield* py`return "configured"`).toBe("configured")
    }).pipe(Effect.provide(NodePython.layerConfig({ workers: Config.succeed(2), concurrency: Config.succeed(2) }))))
})
