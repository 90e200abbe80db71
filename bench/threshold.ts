/**
 * Where shared memory starts to pay: typed arrays of growing size into numpy and back, through
 * the pipe alone and through shared memory, in one run. The default `sharedMemoryThreshold` is
 * the smallest size from which shared memory wins in every column. `pnpm bench:threshold`.
 */
import { Drop, py } from "@snakebridge/core"
import { Effect, Schema } from "effect"
import * as sb from "./snakebridge.js"
import { nowUs } from "./stats.js"

const Float64 = Schema.instanceOf(Float64Array)
const KiB = 1024
const sizes = [64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1024 * KiB, 4096 * KiB, 16384 * KiB, 65536 * KiB]
const TIMEOUT_MS = 600_000

const median = (xs: Array<number>): number => xs.sort((a, b) => a - b)[xs.length >> 1]!

interface Rates {
  readonly there: number
  readonly back: number
  readonly roundTrip: number
}

/** MB/s medians for one size: into numpy only, a kept numpy array back only, and there and back. */
const measure = (bytes: number) =>
  Effect.gen(function* () {
    const input = new Float64Array(bytes / 8).fill(1)
    const kept = yield* Drop.handle(py`
import numpy as np
np.ones(${bytes / 8})
`)
    const reps = Math.max(7, Math.min(200, (256 * 1024 * KiB) / bytes))
    const there: Array<number> = []
    const back: Array<number> = []
    const roundTrip: Array<number> = []
    for (let k = 0; k < reps; k++) {
      let t = nowUs()
      yield* py`${input}.shape[0]`
      there.push(bytes / (nowUs() - t))
      t = nowUs()
      const out = yield* py`${kept}`.pipe(Drop.returning(Float64))
      back.push(bytes / (nowUs() - t))
      t = nowUs()
      const echoed = yield* py`${input}`.pipe(Drop.returning(Float64))
      roundTrip.push(bytes / (nowUs() - t))
      if (out.length !== input.length || echoed.length !== input.length) return yield* Effect.fail(new Error("wrong length"))
    }
    return { there: median(there), back: median(back), roundTrip: median(roundTrip) } satisfies Rates
  }).pipe(Effect.scoped)

const sweep = async (python: string | undefined, sharedMemoryThreshold: number | false) => {
  const rt = sb.runtime({ ...(python === undefined ? {} : { python }), sharedMemoryThreshold })
  try {
    await sb.run(rt, measure(64 * KiB), TIMEOUT_MS, "warm-up")
    const out = new Map<number, Rates>()
    for (const bytes of sizes) out.set(bytes, await sb.run(rt, measure(bytes), TIMEOUT_MS, `${bytes} bytes`))
    return out
  } finally {
    await rt.dispose()
  }
}

const python = process.env.SNAKEBRIDGE_PYTHON
const pipe = await sweep(python, false)
const shared = await sweep(python, 1)
const cell = (a: number, b: number) => `${a.toFixed(0)} / ${b.toFixed(0)} (${(b / a).toFixed(2)}×)`
console.log("| size | into numpy, pipe / shared MB/s | numpy → Node | there and back |")
console.log("| --- | --- | --- | --- |")
let threshold: number | undefined
for (const bytes of [...sizes].reverse()) {
  const p = pipe.get(bytes)!
  const s = shared.get(bytes)!
  if (s.there > p.there && s.back > p.back && s.roundTrip > p.roundTrip) threshold = bytes
  else break
}
for (const bytes of sizes) {
  const p = pipe.get(bytes)!
  const s = shared.get(bytes)!
  console.log(`| ${bytes / KiB} KiB | ${cell(p.there, s.there)} | ${cell(p.back, s.back)} | ${cell(p.roundTrip, s.roundTrip)} |`)
}
console.log(
  threshold === undefined
    ? "\nShared memory did not win at every size in this run."
    : `\nShared memory wins in every column from ${threshold / KiB} KiB up (this run).`
)
