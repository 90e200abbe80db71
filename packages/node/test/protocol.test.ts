import { describe, expect, it } from "@effect/vitest"
import { py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Config, Effect, Layer, Logger, Schedule } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { replaced, waitUntil } from "./helpers.js"

const rogue = (mode: string, options: NodePython.Options = {}) =>
  NodePython.layer({
    startupTimeout: "10 seconds",
    ...options,
    env: {
      PYTHONPATH: fileURLToPath(new URL("fixtures/rogue", import.meta.url)),
      SNAKEBRIDGE_TEST_ROGUE: mode,
      ...options.env
    }
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

  it.live("a binary interpreter older than 3.10 is refused by the worker itself, with WorkerStartupError Version", () =>
    Effect.gen(function* () {
      // The interpreter is spawned without a probe (it is no script); the worker checks its version first thing.
      const e = yield* Effect.flip(Effect.provide(py`1`, rogue("old")))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Version")
      expect(e.message).toContain("Python 3.8.18 at ")
      expect(e.message).toContain("snakebridge needs 3.10 or newer")
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

const counter = join(mkdtempSync(join(tmpdir(), "snakebridge-starts-")), "starts")

describe("start-up failures", () => {
  it.live("a worker that never completes the handshake fails with WorkerStartupError Timeout and its stderr", () =>
    Effect.gen(function* () {
      const start = Date.now()
      const e = yield* Effect.flip(Effect.provide(py`1`, rogue("silent", { startupTimeout: "1 second" })))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Timeout")
      expect(e.stderr).toContain("a silent worker, never shaking hands")
      expect(Date.now() - start).toBeLessThan(15_000)
    }))

  it.live("restarts that fail are retried on the schedule; when it gives up, drops fail with the start-up error", () =>
    Effect.gen(function* () {
      const [first] = yield* Python.workers
      process.kill(first!.pid, "SIGKILL")
      yield* waitUntil(Python.workers, (ws) => ws.length === 0)
      const e = yield* Effect.flip(py`return 1`.pipe(Effect.timeout("20 seconds")))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Exited")
      expect(e.stderr).toContain("refused by the test")
      // The first start plus one restart and two retries on the schedule.
      expect(readFileSync(counter, "utf8")).toBe("xxxx")
    }).pipe(
      Effect.provide(
        rogue("first-only", {
          env: { SNAKEBRIDGE_TEST_COUNTER: counter },
          restartSchedule: Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(2)))
        })
      )
    ))
})

describe("protocol abuse and output floods", () => {
  it.live("10,000 malformed frames from a worker: a typed ProtocolError, the worker replaced, no hang, Node memory bounded", () =>
    Effect.gen(function* () {
      const heapBefore = process.memoryUsage().heapUsed
      const [before] = yield* Python.workers
      const e = yield* Effect.flip(py`return 1`.pipe(Effect.timeout("20 seconds")))
      expect(e._tag).toBe("ProtocolError")
      yield* replaced(before!.pid)
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024)
    }).pipe(Effect.provide(rogue("flood"))))

  it.live("100 MB on stdout and stderr during a drop: the reply is intact, every byte reaches the Logger, Python stays within a second of it", () => {
    let lines = 0
    let bytes = 0
    // A slow Logger (about 30 µs a line, 3 s for the flood): only backpressure keeps Python
    // from running ahead of it.
    let lastLoggedAt = 0
    const counting = Logger.make(({ message, annotations }) => {
      if (Object.fromEntries(annotations).stream === undefined) return
      lastLoggedAt = Date.now()
      const until = performance.now() + 0.03
      while (performance.now() < until) {
        // busy: a sink slower than the producer
      }
      lines++
      bytes += String(Array.isArray(message) ? message[0] : message).length
    })
    return Effect.gen(function* () {
      const v = yield* py`
import sys, time
line = "x" * 999
for i in range(50_000):
    print(line)
    print(line, file=sys.stderr)
sys.stdout.flush()
sys.stderr.flush()
return {"n": ${42}, "finished_writing_at": time.time() * 1000}
`.pipe(Effect.timeout("120 seconds"))
      const { n, finished_writing_at } = v as { n: number; finished_writing_at: number }
      expect(n).toBe(42)
      yield* Effect.sleep("20 millis").pipe(Effect.repeat({ until: () => lines >= 100_000 }), Effect.timeout("60 seconds"))
      expect(bytes).toBe(100_000 * 999)
      // Python gets ahead of the Logger only by what the pipes and buffers hold, not by the
      // 100 MB (3 s of logging). (The reader is pull-based; with a synchronous Logger the busy
      // event loop also throttles reading, so this does not single out the reader's design.)
      expect(lastLoggedAt - finished_writing_at).toBeLessThan(1000)
    }).pipe(Effect.provide(NodePython.layer().pipe(Layer.provide(Logger.replace(Logger.defaultLogger, counting)))))
  })
})

describe("NodePython.layerConfig", () => {
  it.live("reads the pool's options from Config", () =>
    Effect.gen(function* () {
      const workers = yield* Python.workers
      expect(workers.length).toBe(2)
      expect(yield* py`return "configured"`).toBe("configured")
    }).pipe(Effect.provide(NodePython.layerConfig({ workers: Config.succeed(2), concurrency: Config.succeed(2) }))))
})
