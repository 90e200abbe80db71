/** The two loop shapes every Effect measurement here takes: one at a time, and `Effect.forEach` with many in flight. */
import { Effect } from "effect"
import { cpuMeter, latencyRep, type LatencyRep, nowUs, type ThroughputRep } from "./stats.js"

/**
 * `n` sequential runs of `make(i)` (each checked against `expected(i)`), stopping early once
 * `budgetMs` is spent: the latency of each, the rate over the loop, and the CPU per run of this
 * process and of the process `pid` at the other end.
 */
export const sequential = <E, R>(
  pid: number,
  n: number,
  budgetMs: number,
  make: (i: number) => Effect.Effect<number, E, R>,
  expected: (i: number) => number
): Effect.Effect<LatencyRep, E | Error, R> =>
  Effect.gen(function* () {
    const samples: Array<number> = []
    const deadline = nowUs() + budgetMs * 1e3
    const start = nowUs()
    const cpu = cpuMeter(pid)
    for (let i = 0; i < n && nowUs() < deadline; i++) {
      const t = nowUs()
      const value = yield* make(i)
      samples.push(nowUs() - t)
      if (value !== expected(i)) return yield* Effect.fail(new Error(`unexpected result ${value} for ${i}`))
    }
    return latencyRep(samples, nowUs() - start, cpu(samples.length))
  })

/**
 * `total` runs of `make(i)` through `Effect.forEach` with `concurrency` in flight: runs per
 * second, and the CPU per run of this process and of the Python processes `pids`.
 */
export const pipelined = <E, R>(
  pids: ReadonlyArray<number>,
  make: (i: number) => Effect.Effect<unknown, E, R>,
  total: number,
  concurrency: number
): Effect.Effect<ThroughputRep, E, R> =>
  Effect.gen(function* () {
    const start = nowUs()
    const cpu = cpuMeter(...pids)
    yield* Effect.forEach(Array.from({ length: total }, (_, i) => i), make, { concurrency, discard: true })
    return { perSecond: (total / (nowUs() - start)) * 1e6, ...cpu(total) }
  })
