/**
 * The Effect floor on effect 4 (installed in this folder only; the packages are on effect 3, as
 * DESIGN.md has them): in one process, the bare echo's pipelined rate, then the same messages
 * through `Effect.forEach`, each an `Effect.callback` (effect 3's `Effect.async`) resumed by its
 * echo and decoded by a Schema, as effectFloor.ts does on effect 3. `pnpm bench` runs this file
 * in a process of its own (effect4Floor.ts) and reads the one JSON line it prints.
 */
import { Effect, Schema } from "effect"
import { parseArgs } from "node:util"
import * as floor from "../floor.js"
import { cpuMeter, nowUs } from "../stats.js"

interface Options {
  readonly python: string
  readonly reps: number
  readonly total: number
  readonly warmup: number
  readonly timeoutMs: number
}

const { values } = parseArgs({ options: { options: { type: "string" } } })
const options = JSON.parse(values.options ?? "{}") as Options
const decode = Schema.decodeUnknownEffect(Schema.Number)
const samples: Record<string, Array<number>> = {}
const record = (name: string, value: number) => (samples[name] ??= []).push(value)

/** Round trips on `peer` as Effects, correlated by the number each carries. */
const channel = (peer: floor.FloorPeer) => {
  const send = floor.correlated<Effect.Effect<number, Error>>(peer, Effect.succeed, Effect.fail)
  return (i: number) => Effect.flatMap(Effect.callback<number, Error>((resume) => send(i, resume)), decode)
}

const pipelined = (pid: number, roundTrip: (i: number) => Effect.Effect<unknown, unknown>, total: number) =>
  Effect.gen(function* () {
    const start = nowUs()
    const cpu = cpuMeter(pid)
    yield* Effect.forEach(Array.from({ length: total }, (_, i) => i), roundTrip, { concurrency: 64, discard: true })
    return { perSecond: (total / (nowUs() - start)) * 1e6, ...cpu(total) }
  })

const peer = new floor.FloorPeer(options.python)
try {
  for (let rep = 0; rep < options.reps; rep++) {
    await floor.pipelined(peer, options.warmup, 64, options.timeoutMs)
    const bare = await floor.pipelined(peer, options.total, 64, options.timeoutMs)
    record("effect4.floorPipelined", bare.perSecond)
    record("effect4.floorPipelined.nodeCpu", bare.nodeCpuUs)
    const roundTrip = channel(peer)
    const run = <A>(effect: Effect.Effect<A, unknown>) => floor.withTimeout(Effect.runPromise(effect), options.timeoutMs, "effect 4 floor")
    await run(pipelined(peer.pid, roundTrip, options.warmup))
    const viaEffect = await run(pipelined(peer.pid, roundTrip, options.total))
    record("effect4.effectPipelined", viaEffect.perSecond)
    record("effect4.effectPipelined.nodeCpu", viaEffect.nodeCpuUs)
  }
} finally {
  await peer.close()
}
console.log(JSON.stringify({ samples }))
process.exit(0)
