import { describe, expect, it } from "@effect/vitest"
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Fiber } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { alive, pid, replaced, swallowsInterrupts, waitUntil } from "./helpers.js"


describe("supervision", () => {
  it.live("a worker killed with SIGKILL mid-drop fails that drop with WorkerLost; the pool restarts it and the next drop succeeds", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const running = yield* Effect.fork(py`import time; time.sleep(30); return "never"`)
      yield* Effect.sleep("300 millis")
      process.kill(before, "SIGKILL")
      const error = yield* Fiber.join(running).pipe(Effect.flip, Effect.timeout("10 seconds"))
      expect(error._tag).toBe("WorkerLost")
      if (error._tag !== "WorkerLost") return
      expect(error.signal).toBe("SIGKILL")
      const after = yield* pid
      expect(after).not.toBe(before)
      expect(alive(before)).toBe(false)
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("a pool keeps serving while one worker restarts", () =>
    Effect.gen(function* () {
      const [a] = yield* Python.workers
      process.kill(a!.pid, "SIGKILL")
      const results = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => py`return ${i}`, {
        concurrency: 4
      }).pipe(Effect.retry({ while: (e) => e._tag === "WorkerLost", times: 1 }))
      expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i))
      yield* waitUntil(Python.workers, (ws) => ws.length === 2)
    }).pipe(Effect.provide(NodePython.layer({ workers: 2 }))))

  it.live("Effect.timeout interrupts a busy loop and a sleep in Python; the worker is reused", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const start = Date.now()
      const spin = yield* py`while True: pass`.pipe(Effect.timeout("300 millis"), Effect.flip)
      expect(spin._tag).toBe("TimeoutException")
      const sleep = yield* py`import time; time.sleep(60)`.pipe(Effect.timeout("300 millis"), Effect.flip)
      expect(sleep._tag).toBe("TimeoutException")
      expect(Date.now() - start).toBeLessThan(10_000)
      expect(yield* pid).toBe(before)
      expect(yield* py`return "ready"`).toBe("ready")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("Effect.timeout interrupts a drop that computes in stretches between system calls, well within the grace period", () =>
    // Stretches of 2 ms holding the GIL with a system call between keep the GIL from any thread
    // but the main one: a cancel must reach the drop there, or the worker is killed at the grace.
    Effect.gen(function* () {
      const before = yield* pid
      for (let i = 0; i < 3; i++) {
        const stopped = yield* py`
import os, time
while True:
    until = time.perf_counter() + 0.002
    while time.perf_counter() < until:
        pass
    os.stat(".")
`.pipe(Effect.timeout("100 millis"), Effect.flip)
        expect(stopped._tag).toBe("TimeoutException")
        expect(yield* pid).toBe(before)
      }
    }).pipe(Effect.provide(NodePython.layer({ interruptGrace: "300 millis" }))))

  it.live("a timeout that comes while a drop writes a big progress event leaves the channel whole: the worker is reused", () =>
    // 4 MiB events fill the channel, so the worker is mostly blocked in the middle of one; the
    // cancel's signal cuts that write short, and the event must be finished before the interrupt.
    Effect.gen(function* () {
      const before = yield* pid
      for (let i = 0; i < 3; i++) {
        const stopped = yield* py`
import snakebridge
big = "x" * (4 << 20)
while True:
    snakebridge.emit(big)
`.pipe(Drop.onProgress(() => Effect.void), Effect.timeout("300 millis"), Effect.flip)
        expect(stopped._tag).toBe("TimeoutException")
        expect(yield* pid).toBe(before)
      }
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("a drop that swallows the interrupt is killed after the grace period and its worker replaced", () =>
    Effect.gen(function* () {
      const before = yield* pid
      const start = Date.now()
      const result = yield* swallowsInterrupts.pipe(Effect.timeout("200 millis"), Effect.either)
      expect(result._tag).toBe("Left")
      expect(Date.now() - start).toBeLessThan(10_000)
      yield* replaced(before)
      expect(alive(before)).toBe(false)
      expect(yield* pid).not.toBe(before)
    }).pipe(Effect.provide(NodePython.layer({ interruptGrace: "1 second" }))))

  it.live("drops queue while every worker is busy", () =>
    Effect.gen(function* () {
      const start = Date.now()
      const out = yield* Effect.forEach([1, 2, 3, 4], (i) => py`import time; time.sleep(0.2); return ${i}`, {
        concurrency: "unbounded"
      })
      expect(out).toEqual([1, 2, 3, 4])
      // One worker running one drop at a time: at least 4 × 0.2 s.
      expect(Date.now() - start).toBeGreaterThanOrEqual(790)
    }).pipe(Effect.provide(NodePython.layer({ workers: 1 }))))

  it.live("drops interrupted at any moment, even as their reply arrives, give their worker's room back once", () =>
    Effect.gen(function* () {
      // Timeouts around the drop's own duration: some are interrupted in Python, some as the
      // reply comes in, some not at all.
      for (let i = 0; i < 200; i++) {
        yield* py`import time; time.sleep(0.002)`.pipe(Effect.timeout(`${1 + (i % 4)} millis`), Effect.ignore)
      }
      yield* py`raise ValueError("boom")`.pipe(Effect.ignore)
      // Room given back twice would let two of these run at once on the one worker.
      const start = Date.now()
      const out = yield* Effect.forEach([1, 2, 3, 4], (i) => py`import time; time.sleep(0.2); return ${i}`, {
        concurrency: "unbounded"
      })
      expect(out).toEqual([1, 2, 3, 4])
      expect(Date.now() - start).toBeGreaterThanOrEqual(790)
      // Room never given back would leave these waiting forever.
      expect(yield* py`return "ready"`.pipe(Effect.timeout("5 seconds"))).toBe("ready")
    }).pipe(Effect.provide(NodePython.layer({ workers: 1 }))))

  it.live("closing the layer's scope stops every worker", () =>
    Effect.gen(function* () {
      const pids = yield* Effect.scoped(
        Effect.gen(function* () {
          const ws = yield* Python.workers
          return ws.map((w) => w.pid)
        }).pipe(Effect.provide(NodePython.layer({ workers: 3 })))
      )
      expect(pids.length).toBe(3)
      for (const p of pids) expect(alive(p)).toBe(false)
    }))
})

describe("start-up", () => {
  it.live("a nonexistent interpreter fails with WorkerStartupError NotFound", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(Effect.provide(py`1`, NodePython.layer({ python: "/nonexistent/python3" })))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("NotFound")
      expect(e.message).toContain("/nonexistent/python3")
    }))

  it.live("an interpreter that exits at once fails with WorkerStartupError and its stderr", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(Effect.provide(py`1`, NodePython.layer({ python: "false" })))
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Exited")
    }))

  it.live("a worker that fails on import reports its stderr", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(
        Effect.provide(py`1`, NodePython.layer({ env: { PYTHONPATH: fileURLToPath(new URL("fixtures/broken", import.meta.url)) } }))
      )
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Exited")
      expect(e.stderr).toContain("the sitecustomize of this test refuses to start")
    }))
})

describe("parent death", () => {
  /** Runs fixtures/parent.ts, kills it with SIGKILL once its workers are up, and waits for them to be gone. */
  const killParent = (env: Record<string, string>) =>
    Effect.gen(function* () {
      const script = fileURLToPath(new URL("fixtures/parent.ts", import.meta.url))
      const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", script], {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, ...env }
      })
      const pids = yield* Effect.async<Array<number>>((resume) => {
        let out = ""
        child.stdout!.on("data", (d) => {
          out += d
          const m = out.match(/PIDS (.*)\n/)
          if (m) resume(Effect.succeed(JSON.parse(m[1]!)))
        })
      }).pipe(Effect.timeout("60 seconds"))
      expect(pids.length).toBe(2)
      for (const p of pids) expect(alive(p)).toBe(true)
      child.kill("SIGKILL")
      yield* waitUntil(Effect.sync(() => pids.filter(alive)), (left) => left.length === 0).pipe(
        // Should the check fail, no worker is left burning a core.
        Effect.ensuring(Effect.sync(() => pids.filter(alive).forEach((p) => process.kill(p, "SIGKILL"))))
      )
    })

  it.live("workers exit when their Node parent is killed with SIGKILL", () => killParent({}))

  it.live("a worker stuck in C code holding the GIL exits too (the kernel's parent-death signal)", () =>
    killParent({ SNAKEBRIDGE_TEST_BUSY: "1" }))
})
