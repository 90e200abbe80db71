/**
 * The latencies with the placement fixed, in a process of their own as each peer is measured:
 * `pnpm bench` runs this file (`--options <json>`) and reads the one JSON line it prints, the
 * samples named `<placement>.floor.seq`, `<placement>.sb.drop` and so on.
 */
import { Python } from "@snakebridge/core"
import { parseArgs } from "node:util"
import * as floor from "./floor.js"
import { dropAndCall, floorSequentials, type LatencyConfig, type Run, Samples } from "./latency.js"
import * as placement from "./placement.js"
import * as sb from "./snakebridge.js"

export interface PlacedOptions extends LatencyConfig {
  readonly python: string
  readonly reps: number
  readonly timeoutMs: number
  readonly placements: ReadonlyArray<placement.Placement>
}

export interface PlacedResults {
  readonly samples: Record<string, Array<number>>
  readonly notes: Array<string>
}

/** One repetition in `at`: this process (all its threads) on `at.node`, the echo process and the worker on `at.python`. */
const placedRep = async (samples: Samples, options: PlacedOptions, at: placement.Placement) => {
  placement.pin(process.pid, at.node)
  const where = ` (${at.label})`
  const peer = new floor.FloorPeer(options.python)
  try {
    placement.pin(peer.pid, at.python)
    await floorSequentials(samples, options, peer, `${at.key}.floor`, where)
  } finally {
    await peer.close()
  }
  const one = sb.runtime({ python: options.python })
  try {
    const run: Run = (label, effect) => sb.run(one, effect, options.timeoutMs, label)
    const [worker] = await run("workers", Python.workers)
    placement.pin(worker!.pid, at.python)
    await dropAndCall(samples, options, run, `${at.key}.sb`, where)
  } finally {
    await one.dispose()
  }
}

const { values } = parseArgs({ options: { options: { type: "string" } } })
const options = JSON.parse(values.options ?? "{}") as PlacedOptions
const samples = new Samples()
for (let rep = 0; rep < options.reps; rep++) {
  for (const at of options.placements) {
    process.stderr.write(`bench: repetition ${rep + 1}/${options.reps}, ${at.label}: floor and snakebridge\n`)
    await placedRep(samples, options, at)
  }
}
const results: PlacedResults = { samples: Object.fromEntries(samples.values), notes: samples.notes }
console.log(JSON.stringify(results))
process.exit(0)
