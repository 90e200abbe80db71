import { describe, expect, it } from "@effect/vitest"
import { Drop, Metrics, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Exit, Metric, MetricState, Option, Tracer } from "effect"
import { replaced } from "./helpers.js"

interface Recorded {
  readonly name: string
  readonly attributes: Map<string, unknown>
  readonly parent: string | undefined
  exit?: Exit.Exit<unknown, unknown>
}

/** A Tracer that records the spans it is given. */
const recordingTracer = () => {
  const spans: Array<Recorded> = []
  let next = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const recorded: Recorded = {
        name,
        attributes: new Map(),
        parent: Option.getOrUndefined(Option.map(parent, (p) => p.spanId))
      }
      spans.push(recorded)
      const spanId = `span-${next++}`
      return {
        _tag: "Span",
        name,
        spanId,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: recorded.attributes,
        links,
        sampled: true,
        kind,
        end: (_endTime, exit) => {
          recorded.exit = exit
        },
        attribute: (key, value) => {
          recorded.attributes.set(key, value)
        },
        event: () => {},
        addLinks: () => {}
      }
    },
    context: (f) => f()
  })
  return { spans, tracer }
}

const count = (metric: Metric.Metric.Counter<number>) =>
  Metric.value(metric).pipe(Effect.map((s: MetricState.MetricState.Counter<number>) => s.count))

describe("observability", () => {
  it.live("with Effect's default tracer (no exporter) a drop leaves the caller's span alone", () =>
    Effect.gen(function* () {
      const outer = yield* Effect.gen(function* () {
        expect(yield* py`return ${1} + 1`).toBe(2)
        return yield* Effect.currentSpan
      }).pipe(Effect.withSpan("caller"))
      // The drop makes no span of its own here: its attributes must not land on the caller's.
      expect([...outer.attributes.keys()].filter((k) => k.startsWith("snakebridge."))).toEqual([])
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("every drop, call and handle release is a span with worker, code hash, first line, bytes and queue wait", () => {
    const { spans, tracer } = recordingTracer()
    return Effect.gen(function* () {
      const [worker] = yield* Python.workers
      yield* Effect.scoped(
        Effect.gen(function* () {
          const h = yield* py`
# a comment line is not the first line of code
return [1, 2, 3]`.pipe(Drop.handle)
          yield* py`return len(${h})`.pipe(Effect.withSpan("parent"))
        })
      )
      yield* Python.call("math.floor", [2.5])
      const drops = spans.filter((s) => s.name === "snakebridge.drop")
      expect(drops.length).toBe(2)
      const [made, used] = drops
      expect(made!.attributes.get("snakebridge.first_line")).toBe("# a comment line is not the first line of code")
      expect(used!.attributes.get("snakebridge.first_line")).toBe("return len(_sb_0)")
      for (const s of drops) {
        expect(s.attributes.get("snakebridge.worker_id")).toBe(worker!.id)
        expect(s.attributes.get("snakebridge.code_hash")).toMatch(/^[0-9a-f]{16,}$/)
        expect(s.attributes.get("snakebridge.location")).toMatch(/observability\.test\.ts:\d+$/)
        expect(s.attributes.get("snakebridge.bytes_in")).toBeGreaterThan(10)
        expect(s.attributes.get("snakebridge.bytes_out")).toBeGreaterThan(5)
        expect(s.exit && Exit.isSuccess(s.exit)).toBe(true)
      }
      // A drop without handles waited for a worker; one with a handle went straight to its worker.
      expect(made!.attributes.get("snakebridge.queue_wait_ms")).toBeGreaterThanOrEqual(0)
      const parent = spans.find((s) => s.name === "parent")!
      expect(used!.parent).toBe(`span-${spans.indexOf(parent)}`)
      const call = spans.find((s) => s.name === "snakebridge.call")!
      expect(call.attributes.get("snakebridge.target")).toBe("math.floor")
      const release = spans.find((s) => s.name === "snakebridge.release")!
      expect(release.attributes.get("snakebridge.worker_id")).toBe(worker!.id)
    }).pipe(Effect.provide(NodePython.layer()), Effect.withTracer(tracer))
  })

  it.live("counts drops started, succeeded and failed by tag, latency, live handles and restarts", () =>
    Effect.gen(function* () {
      const before = {
        started: yield* count(Metrics.dropsStarted),
        succeeded: yield* count(Metrics.dropsSucceeded),
        python: yield* count(Metric.tagged(Metrics.dropsFailed, "error", "PythonException")),
        encode: yield* count(Metric.tagged(Metrics.dropsFailed, "error", "EncodeError")),
        latency: (yield* Metric.value(Metrics.dropLatency)).count,
        restarts: yield* count(Metrics.workerRestarts)
      }
      yield* py`return 1`
      yield* py`return 2`
      yield* Effect.flip(py`raise ValueError()`)
      yield* Effect.flip(py`return ${() => 1}`)
      const live = yield* Effect.scoped(
        Effect.gen(function* () {
          yield* py`return {}`.pipe(Drop.handle)
          return (yield* Metric.value(Metrics.liveHandles)).value
        })
      )
      const liveAfter = (yield* Metric.value(Metrics.liveHandles)).value
      expect(live - liveAfter).toBe(1)
      const [worker] = yield* Python.workers
      process.kill(worker!.pid, "SIGKILL")
      yield* replaced(worker!.pid)
      expect((yield* count(Metrics.dropsStarted)) - before.started).toBe(5)
      expect((yield* count(Metrics.dropsSucceeded)) - before.succeeded).toBe(3)
      expect((yield* count(Metric.tagged(Metrics.dropsFailed, "error", "PythonException"))) - before.python).toBe(1)
      expect((yield* count(Metric.tagged(Metrics.dropsFailed, "error", "EncodeError"))) - before.encode).toBe(1)
      expect((yield* Metric.value(Metrics.dropLatency)).count - before.latency).toBe(3)
      expect((yield* count(Metrics.workerRestarts)) - before.restarts).toBe(1)
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("the queue depth and busy workers gauges follow the pool", () =>
    Effect.gen(function* () {
      const busyBefore = (yield* Metric.value(Metrics.busyWorkers)).value
      const queuedBefore = (yield* Metric.value(Metrics.queueDepth)).value
      const fiber = yield* Effect.fork(
        Effect.forEach([1, 2, 3], (i) => py`import time; time.sleep(0.5); return ${i}`, { concurrency: "unbounded" })
      )
      yield* Effect.sleep("250 millis")
      expect((yield* Metric.value(Metrics.busyWorkers)).value - busyBefore).toBe(1)
      expect((yield* Metric.value(Metrics.queueDepth)).value - queuedBefore).toBe(2)
      yield* fiber.await
      expect((yield* Metric.value(Metrics.busyWorkers)).value).toBe(busyBefore)
      expect((yield* Metric.value(Metrics.queueDepth)).value).toBe(queuedBefore)
    }).pipe(Effect.provide(NodePython.layer({ workers: 1 }))))
})

