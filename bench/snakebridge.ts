/**
 * snakebridge itself, measured the way an application uses it: Effects run inside a
 * `ManagedRuntime` built from `NodePython.layer`, timed from inside the Effect.
 */
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime, Schema } from "effect"
import { withTimeout } from "./floor.js"
import * as loops from "./loops.js"
import { type LatencyRep, nowUs, processRssMB, rssMB } from "./stats.js"

/** Only warnings and worse: the pool's start-up line is not part of the measurement output. */
const quiet = Logger.minimumLogLevel(LogLevel.Warning)

export const layer = (options: NodePython.Options) => NodePython.layer(options).pipe(Layer.provide(quiet), Layer.merge(quiet))

export type Runtime = ManagedRuntime.ManagedRuntime<Python.Python, unknown>

export const runtime = (options: NodePython.Options): Runtime => ManagedRuntime.make(layer(options))

/** Runs an Effect on the runtime with a hard deadline, so nothing can hang the run. */
export const run = <A, E>(rt: Runtime, effect: Effect.Effect<A, E, Python.Python>, timeoutMs: number, label: string) =>
  withTimeout(rt.runPromise(effect), timeoutMs, label)

/** The trivial drop. */
export const inc = (x: number) => py`return ${x} + 1`.pipe(Drop.returning(Schema.Number))

/** The trivial call. */
export const add = (x: number) => Python.call("operator.add", [x, 1]).pipe(Drop.returning(Schema.Number))

/** `n` sequential runs of `make(i)` on the runtime's one worker, checked against `expected(i)`. */
const sequentialOf = <E, R>(
  n: number,
  budgetMs: number,
  make: (i: number) => Effect.Effect<number, E, R>,
  expected: (i: number) => number
): Effect.Effect<LatencyRep, E | Error, R | Python.Python> =>
  Effect.flatMap(Python.workers, ([worker]) => loops.sequential(worker!.pid, n, budgetMs, make, expected))

export const sequentialDrop = (n: number, budgetMs: number) => sequentialOf(n, budgetMs, inc, (i) => i + 1)

export const sequentialCall = (n: number, budgetMs: number) => sequentialOf(n, budgetMs, add, (i) => i + 1)

/** The trivial drop with a handle argument: `h` holds `[10]`. */
export const sequentialHandleDrop = (n: number, budgetMs: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const h = yield* py`return [10]`.pipe(Drop.handle)
      return yield* sequentialOf(
        n,
        budgetMs,
        (x) => py`return ${h}[0] + ${x}`.pipe(Drop.returning(Schema.Number)),
        (x) => 10 + x
      )
    })
  )

/** `total` trivial drops through `Effect.forEach` with `concurrency` in flight, over every worker of the pool. */
export const pipelined = (total: number, concurrency: number) =>
  Effect.flatMap(Python.workers, (workers) => loops.pipelined(workers.map((w) => w.pid), inc, total, concurrency))

export interface HandleCycles {
  readonly millis: number
  readonly cycles: number
  readonly perSecond: number
  readonly liveHandles: number
  /** `snakebridge.live_handles()` in the worker after the loop (releases are batched). */
  readonly workerRegistry: number
  readonly nodeRssGrowthMB: number
  readonly workerRssGrowthMB: number
}

/** `n` cycles of making a handle in its own scope and closing the scope; `collect` runs before each RSS reading. */
export const handleCycles = (
  n: number,
  budgetMs: number,
  collect: () => void = () => {}
): Effect.Effect<HandleCycles, unknown, Python.Python> =>
  Effect.gen(function* () {
    const [worker] = yield* Python.workers
    collect()
    const workerBefore = worker === undefined ? Number.NaN : processRssMB(worker.pid)
    const nodeBefore = rssMB()
    const deadline = nowUs() + budgetMs * 1e3
    const start = nowUs()
    let done = 0
    for (; done < n && nowUs() < deadline; done++) {
      yield* Effect.scoped(py`return object()`.pipe(Drop.handle))
    }
    const elapsed = nowUs() - start
    const liveHandles = yield* Python.liveHandles
    collect()
    // One more drop after the loop: the batched releases have been sent by the time it is answered.
    const workerRegistry = yield* py`
import snakebridge
return snakebridge.live_handles()
`.pipe(Drop.returning(Schema.Number))
    return {
      millis: elapsed / 1e3,
      perSecond: (done / elapsed) * 1e6,
      cycles: done,
      liveHandles,
      workerRegistry,
      nodeRssGrowthMB: rssMB() - nodeBefore,
      workerRssGrowthMB: worker === undefined ? Number.NaN : processRssMB(worker.pid) - workerBefore
    }
  })

/** Time from building a fresh pool to the first drop result, then the time to dispose of it; ms. */
export const startUp = async (
  options: NodePython.Options,
  timeoutMs: number
): Promise<{ readonly firstResultMs: number; readonly disposeMs: number }> => {
  const start = nowUs()
  const rt = runtime(options)
  try {
    const value = await run(rt, inc(1), timeoutMs, "start-up")
    if (value !== 2) throw new Error(`start-up: unexpected result ${value}`)
    const firstResultMs = (nowUs() - start) / 1e3
    const disposeStart = nowUs()
    await withTimeout(rt.dispose(), timeoutMs, "dispose")
    return { firstResultMs, disposeMs: (nowUs() - disposeStart) / 1e3 }
  } catch (error) {
    await rt.dispose().catch(() => {})
    throw error
  }
}
