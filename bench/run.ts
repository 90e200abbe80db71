/**
 * Benchmark: snakebridge against the floor (a minimal Node <-> Python frame echo over the
 * same kind of channel), both measured in the same run on the same interpreter, with the
 * ratios between them.
 *
 *   pnpm bench [--quick] [--reps N] [--no-pretenuring]
 *
 * `--no-pretenuring` turns V8's allocation-site pretenuring off for this process before any
 * drop runs, as an application can at its start (see the README's "Tuning" section).
 *
 * It runs the packages as built (dist), as an application would: loaded from their TypeScript
 * source through tsx, every closure a drop makes would pay for tsx's name keeping (≈ 5 µs of a
 * trivial drop's p50).
 * Every figure is the median over the repetitions, with its spread (min–max). The
 * repetitions interleave the floor and snakebridge, so a drift in the machine's load
 * touches both. The latencies are then measured again with the placement fixed (Node and
 * Python on two CPUs, then on one: see placement.ts), the peers' too. The table is printed and
 * written to bench/results/latest.md.
 */
import { Drop, py } from "@snakebridge/core"
import { Effect, Schema } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as arrays from "./arrays.js"
import * as effect4Floor from "./effect4Floor.js"
import * as effectFloor from "./effectFloor.js"
import { dropAndCall, floorSequentials, type LatencyConfig, type Run, Samples } from "./latency.js"
import * as floor from "./floor.js"
import * as loops from "./loops.js"
import * as peers from "./peers/peers.js"
import type { PlacedOptions, PlacedResults } from "./placed.js"
import * as placement from "./placement.js"
import * as sb from "./snakebridge.js"
import { figure, type Figure, nowUs, PAGE_BYTES, resolvePython, rssMB, touchBytes } from "./stats.js"

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    "no-pretenuring": { type: "boolean", default: false }
  }
})
const quick = args.quick
const noPretenuring = args["no-pretenuring"]
if (noPretenuring) setFlagsFromString("--no-allocation-site-pretenuring")
const ROOT = fileURLToPath(new URL("..", import.meta.url))
// A quick run (CI) does not overwrite the recorded full run.
const RESULTS = fileURLToPath(
  new URL(quick ? "./results/quick.md" : noPretenuring ? "./results/latest-no-pretenuring.md" : "./results/latest.md", import.meta.url)
)

const config = quick
  ? {
      reps: 2,
      floorSeq: 5_000,
      floorPipelined: 50_000,
      sbSeq: 1_500,
      sbPipelined: 4_000,
      sbPipelinedOne: 2_000,
      handleCycles: 2_000,
      bulkBytes: 64 * floor.MiB,
      ndarrayRepeats: 3,
      arrowRows: 1_000_000,
      warmup: 300
    }
  : {
      reps: 5,
      floorSeq: 20_000,
      floorPipelined: 200_000,
      sbSeq: 8_000,
      // Long enough for the workers' CPU, read from /proc in 10 ms ticks, to a few per cent.
      sbPipelined: 60_000,
      sbPipelinedOne: 8_000,
      handleCycles: 100_000,
      bulkBytes: 64 * floor.MiB,
      ndarrayRepeats: 5,
      arrowRows: 1_000_000,
      warmup: 4_000
    }
if (args.reps !== undefined) config.reps = Math.max(1, Number(args.reps))

/** Per loop: a time budget (the loop stops early, and says so) and a hard timeout. */
const BUDGET_MS = quick ? 5_000 : 20_000
const TIMEOUT_MS = 60_000
/** The whole run is bounded too. */
const watchdog = setTimeout(
  () => {
    console.error(`bench: still running after ${quick ? 3 : 20} minutes, giving up`)
    process.exit(2)
  },
  (quick ? 3 : 20) * 60_000
)
watchdog.unref()

/** `gc()` even without --expose-gc, so RSS growth is measured after a collection. */
setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

/** Processes whose parent is this one and whose command line contains `needle`. */
const children = (needle: string): Array<number> =>
  (placement.childrenByParent().get(process.pid) ?? []).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").includes(needle)
    } catch {
      return false
    }
  })

/** Every `python ... snakebridge_worker` on the machine, ours or not. */
const allWorkers = (): number => {
  try {
    return execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes("snakebridge_worker")).length
  } catch {
    return Number.NaN
  }
}

const python = resolvePython(ROOT)
const pythonVersion = execFileSync(python, ["-c", "import sys; print(sys.version.split()[0])"], {
  encoding: "utf8"
}).trim()

// ---------------------------------------------------------------------------------------
// Samples: name -> one number per repetition.

const samples = new Samples()
const record = (name: string, value: number) => samples.record(name, value)
const note = (text: string) => samples.note(text)
const log = (text: string) => process.stderr.write(`bench: ${text}\n`)

/** What the sequential loops take from this run's configuration. */
const latencyConfig: LatencyConfig = { ...config, budgetMs: BUDGET_MS }

const floorRep = async () => {
  const peer = new floor.FloorPeer(python)
  try {
    await floorSequentials(samples, latencyConfig, peer, "floor")
    await floor.pipelined(peer, config.warmup * 10, 64, TIMEOUT_MS)
    samples.throughput("floor.pipelined", await floor.pipelined(peer, config.floorPipelined, 64, TIMEOUT_MS))
    // Node's one thread for each drop at half that rate: what the pipelined target leaves it.
    record("floor.halfRateNodeBudget", 2e6 / samples.values.get("floor.pipelined")!.at(-1)!)
    // The same round trips through Effect: what an Effect program pays before any library.
    const roundTrip = effectFloor.channel(peer)
    const runEffect = <A>(label: string, effect: Effect.Effect<A, Error>) =>
      floor.withTimeout(Effect.runPromise(effect), TIMEOUT_MS, label)
    await runEffect("Effect floor warm-up", effectFloor.sequential(peer, roundTrip, config.warmup * 2, BUDGET_MS))
    const viaEffect = await runEffect("Effect floor", effectFloor.sequential(peer, roundTrip, config.floorSeq, BUDGET_MS))
    samples.latency("floor.effect", viaEffect, "Effect floor", config.floorSeq)
    await runEffect("Effect floor warm-up", loops.pipelined([peer.pid], roundTrip, config.warmup * 10, 64))
    samples.throughput(
      "floor.effectPipelined",
      await runEffect("Effect floor pipelined", loops.pipelined([peer.pid], roundTrip, config.floorPipelined, 64))
    )
    record("floor.bulkIn", await floor.bulkToPython(peer, config.bulkBytes, floor.MiB, TIMEOUT_MS))
    record("floor.bulkOut", await floor.bulkFromPython(peer, config.bulkBytes, floor.MiB, TIMEOUT_MS))
    // The floor's round trip of the same bytes: there and back, one after the other.
    const [bulkIn, bulkOut] = [samples.values.get("floor.bulkIn")!.at(-1)!, samples.values.get("floor.bulkOut")!.at(-1)!]
    record("floor.bulkRoundTrip", 1 / (1 / bulkIn + 1 / bulkOut))
  } finally {
    await peer.close()
  }
  record("floor.freshAlloc", arrays.freshAllocation(config.bulkBytes))
  record("floor.bareStart", await floor.bareStart(python))
  record("floor.echoStart", await floor.echoStart(python))
}

/**
 * A drop carrying `n` bytes in and one giving `n` bytes back: MB/s each way, the first transfer
 * of the runtime (as the peers are measured) and the median of `repeats` more.
 */
const sbBulk = (n: number, repeats: number) =>
  Effect.gen(function* () {
    const payload = new Uint8Array(n).fill(0x78)
    const ins: Array<number> = []
    const outs: Array<number> = []
    for (let i = 0; i <= repeats; i++) {
      let t = nowUs()
      const got = yield* py`return len(${payload})`.pipe(Drop.returning(Schema.Number))
      ins.push(n / (nowUs() - t))
      if (got !== n) return yield* Effect.fail(new Error(`bulk in: ${got} bytes arrived`))
      t = nowUs()
      const back = yield* py`return b"x" * ${n}`.pipe(Drop.returning(Schema.Uint8ArrayFromSelf))
      const sum = touchBytes(back)
      outs.push(n / (nowUs() - t))
      if (back.length !== n || sum !== 0x78 * Math.ceil(n / PAGE_BYTES)) return yield* Effect.fail(new Error(`bulk out: ${back.length} bytes arrived`))
    }
    return {
      inFirst: ins[0]!,
      outFirst: outs[0]!,
      inRepeated: figure(ins.slice(1)).median,
      outRepeated: figure(outs.slice(1)).median
    }
  })

const sbRep = async () => {
  // One worker, one request at a time: sequential latency, handles.
  const one = sb.runtime({ python })
  try {
    const run: Run = (label, effect) => sb.run(one, effect, TIMEOUT_MS, label)
    await dropAndCall(samples, latencyConfig, run, "sb")
    await run("warm-up", sb.sequentialHandleDrop(config.warmup, BUDGET_MS))
    samples.latency("sb.hdrop", await run("handle drop", sb.sequentialHandleDrop(config.sbSeq, BUDGET_MS)), "handle drop", config.sbSeq)
    gc()
    const heapBefore = process.memoryUsage().heapUsed / 1e6
    const cycles = await run("handle cycles", sb.handleCycles(config.handleCycles, BUDGET_MS * 3, gc))
    gc()
    samples.checkCount("handle cycles", cycles.cycles, config.handleCycles)
    record("sb.cycles.ms", cycles.millis)
    record("sb.cycles.rate", cycles.perSecond)
    record("sb.cycles.live", cycles.liveHandles)
    record("sb.cycles.registry", cycles.workerRegistry)
    record("sb.cycles.nodeRss", cycles.nodeRssGrowthMB)
    record("sb.cycles.nodeHeap", process.memoryUsage().heapUsed / 1e6 - heapBefore)
    record("sb.cycles.workerRss", cycles.workerRssGrowthMB)
    // Warm imports (numpy, pyarrow, pandas) are not part of the transfer figures.
    await run("warm-up", arrays.ndarrayRoundTrips(1024, 1))
    await run("warm-up", arrays.arrowRoundTrip(1000))
    const nd = await run("ndarray", arrays.ndarrayRoundTrips(config.bulkBytes, config.ndarrayRepeats))
    record("sb.ndarray.first", nd.first)
    record("sb.ndarray.repeated", nd.repeated)
    record("sb.sharedArray", await run("shared array", arrays.sharedArrayRoundTrips(config.bulkBytes, config.ndarrayRepeats - 1)))
    const oneWay = await run("ndarray one way", arrays.ndarrayOneWay(config.bulkBytes, config.ndarrayRepeats))
    record("sb.ndarray.into", oneWay.into)
    record("sb.ndarray.back", oneWay.back)
    const arrow = await run("arrow", arrays.arrowRoundTrip(config.arrowRows))
    record("sb.arrow.transferIn", arrow.transferIn)
    record("sb.arrow.transferOut", arrow.transferOut)
    record("sb.arrow.in", arrow.inRate)
    record("sb.arrow.out", arrow.outRate)
    record("sb.arrow.roundTrip", arrow.roundTrip)
    await run("warm-up", sb.pipelined(config.warmup, 64))
    samples.throughput("sb.pipelinedOne", await run("pipelined, 1 worker", sb.pipelined(config.sbPipelinedOne, 64)))
  } finally {
    await one.dispose()
  }
  // Big bytes in a runtime of their own, so that their first transfer and the arrays' meet fresh segments.
  const bytes = sb.runtime({ python })
  try {
    const bulk = await sb.run(bytes, sbBulk(config.bulkBytes, config.ndarrayRepeats - 1), TIMEOUT_MS, "bulk")
    record("sb.bulkIn", bulk.inFirst)
    record("sb.bulkOut", bulk.outFirst)
    record("sb.bulkInRepeated", bulk.inRepeated)
    record("sb.bulkOutRepeated", bulk.outRepeated)
  } finally {
    await bytes.dispose()
  }
  // The same arrays through the pipe alone: what shared memory is measured against.
  const pipeOnly = sb.runtime({ python, sharedMemoryThreshold: false })
  try {
    await sb.run(pipeOnly, arrays.ndarrayRoundTrips(1024, 1), TIMEOUT_MS, "warm-up")
    const nd = await sb.run(pipeOnly, arrays.ndarrayRoundTrips(config.bulkBytes, config.ndarrayRepeats), TIMEOUT_MS, "ndarray, pipe")
    record("sb.ndarrayPipe.first", nd.first)
    record("sb.ndarrayPipe.repeated", nd.repeated)
  } finally {
    await pipeOnly.dispose()
  }
  // One worker with 64 requests in flight: pipelining in one process, as the floor does.
  const piped = sb.runtime({ python, concurrency: 64 })
  try {
    await sb.run(piped, sb.pipelined(config.warmup, 64), TIMEOUT_MS, "warm-up")
    samples.throughput("sb.pipelinedOne64", await sb.run(piped, sb.pipelined(config.sbPipelinedOne, 64), TIMEOUT_MS, "pipelined"))
  } finally {
    await piped.dispose()
  }
  // The pool of 2.
  const pool = sb.runtime({ python, workers: 2, concurrency: 32 })
  try {
    await sb.run(pool, sb.pipelined(config.warmup * 2, 64), TIMEOUT_MS, "warm-up")
    samples.throughput("sb.pipelined", await sb.run(pool, sb.pipelined(config.sbPipelined, 64), TIMEOUT_MS, "pipelined"))
  } finally {
    await pool.dispose()
  }
  // Start-up of a fresh pool of 2, to its first drop result.
  const start = await sb.startUp({ python, workers: 2, concurrency: 32 }, TIMEOUT_MS)
  record("sb.startUp", start.firstResultMs)
  record("sb.dispose", start.disposeMs)
  const startOne = await sb.startUp({ python }, TIMEOUT_MS)
  record("sb.startUpOne", startOne.firstResultMs)
}

/** Runs placed.ts in a process of its own and returns what it measured (a failure ends the bench with its reason). */
const runPlaced = (options: PlacedOptions): PlacedResults => {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(new URL("./placed.ts", import.meta.url)), "--options", JSON.stringify(options)],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: TIMEOUT_MS * 4 * options.reps, maxBuffer: 16 * floor.MiB }
  )
  const line = (child.stdout ?? "").split("\n").find((l) => l.startsWith("{"))
  if (child.status !== 0 || line === undefined) {
    const how = child.signal !== null ? `died of ${child.signal}` : `exited with ${child.status}`
    throw new Error(`the placed latencies' process ${how}${child.error === undefined ? "" : `: ${child.error.message}`}`)
  }
  return JSON.parse(line) as PlacedResults
}

// ---------------------------------------------------------------------------------------
// The run.

const began = nowUs()
const foreignWorkers = allWorkers()
const load = os.loadavg()
const rssStart = rssMB()
for (let rep = 1; rep <= config.reps; rep++) {
  log(`repetition ${rep}/${config.reps}: floor`)
  await floorRep()
  log(`repetition ${rep}/${config.reps}: snakebridge`)
  await sbRep()
}
// The latencies again with the placement fixed, in a process of their own as each peer is.
const fixed = placement.placements()
if (fixed.placements.length > 0) {
  log("the latencies with the placement fixed")
  const placed = runPlaced({
    ...latencyConfig,
    python,
    reps: config.reps,
    timeoutMs: TIMEOUT_MS,
    placements: fixed.placements
  })
  for (const [name, values] of Object.entries(placed.samples)) for (const value of values) record(name, value)
  for (const text of placed.notes) note(text)
}
log("peers: install (first run only) and measure")
const peerFailures = peers.install()
const peerOptions: peers.PeerOptions = {
  python,
  reps: quick ? 1 : config.reps,
  calls: config.sbSeq,
  warmup: config.warmup,
  bulkBytes: [floor.MiB, config.bulkBytes],
  timeoutMs: 30_000
}
const peerRun = peers.measureApart(peerOptions)
peerFailures.push(...peerRun.failures)
// The peers' trivial calls with the placement fixed as snakebridge's were (no bytes: latency only).
const placedPeers = new Map(
  fixed.placements.map((at) => [at.key, peers.measureApart({ ...peerOptions, bulkBytes: [], placement: at })] as const)
)
for (const [key, result] of placedPeers) {
  const at = fixed.placements.find((p) => p.key === key)!
  peerFailures.push(...result.failures.map((f) => ({ ...f, what: `${f.what} (${at.label})` })))
}
log("effect 4 floor: install (first run only) and measure")
const effect4 = effect4Floor.measureApart({
  python,
  reps: config.reps,
  total: config.floorPipelined,
  warmup: config.warmup * 10,
  timeoutMs: TIMEOUT_MS
})
for (const [name, values] of Object.entries(effect4.samples)) for (const value of values) record(name, value)
if (effect4.failure !== undefined) note(`the Effect floor on effect 4: ${effect4.failure}`)
const elapsedS = (nowUs() - began) / 1e6

// ---------------------------------------------------------------------------------------
// The table.

const get = (name: string): Figure => figure(samples.values.get(name) ?? [])
const peer = (name: string, fig: string): Figure | undefined => {
  const row = peerRun.rows.find((r) => r.peer === name && r.figure.startsWith(fig))
  return row === undefined ? undefined : figure(row.values)
}
// snakebridge's bytes there and back, from the two one-way figures of each repetition.
for (const suffix of ["", "Repeated"]) {
  samples.values.set(
    `sb.bulkRoundTrip${suffix}`,
    (samples.values.get(`sb.bulkIn${suffix}`) ?? []).map((x, i) => 1 / (1 / x + 1 / samples.values.get(`sb.bulkOut${suffix}`)![i]!))
  )
}
/** A ratio of medians (the peers' repetitions are not paired with snakebridge's). */
const peerRatio = (label: string, a: number | undefined, b: number | undefined, meaning: string) =>
  a === undefined || b === undefined
    ? `| ${label} | n/a | | the peer did not give this figure (see below) |`
    : `| ${label} | **${(a / b).toFixed(2)}×** | | ${meaning} |`
/** Per-repetition ratio a/b, then its median and spread. */
const ratio = (a: string, b: string): Figure => {
  const xs = samples.values.get(a) ?? []
  const ys = samples.values.get(b) ?? []
  return figure(xs.map((x, i) => x / ys[i]!))
}

const fmt = (x: number): string => {
  if (!Number.isFinite(x)) return String(x)
  const abs = Math.abs(x)
  if (abs >= 100_000) return Math.round(x).toLocaleString("en-US")
  if (abs >= 100) return x.toFixed(0)
  if (abs >= 10) return x.toFixed(1)
  return x.toFixed(2)
}
const row = (label: string, unit: string, f: Figure) =>
  `| ${label} | ${unit} | **${fmt(f.median)}** | ${fmt(f.min)} – ${fmt(f.max)} |`
const ratioRow = (label: string, f: Figure, meaning: string) =>
  `| ${label} | **${f.median.toFixed(2)}×** | ${f.min.toFixed(2)} – ${f.max.toFixed(2)} | ${meaning} |`

const cpu = os.cpus()[0]?.model ?? "unknown CPU"
const nproc = (() => {
  try {
    return execFileSync("nproc", { encoding: "utf8" }).trim()
  } catch {
    return String(os.availableParallelism())
  }
})()
const mb = (n: number) => `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`
const bulkMiB = config.bulkBytes / floor.MiB

/** The ratios to the floors, as [label, numerator, denominator, what it says]: per repetition, then the median. */
const floorRatios: ReadonlyArray<readonly [string, string, string, string]> = [
  ["trivial drop p50 / floor p50", "sb.drop.p50", "floor.seq.p50", "latency, lower is better"],
  ["trivial drop p99 / floor p99", "sb.drop.p99", "floor.seq.p99", "tail latency, lower is better"],
  ["pool of 2 pipelined drops/s / floor pipelined msg/s", "sb.pipelined", "floor.pipelined", "throughput, higher is better"],
  ["pool start-up to first result / bare `python -c pass`", "sb.startUp", "floor.bareStart", "lower is better"],
  [`${bulkMiB} MiB \`Float64Array\` → numpy → back, first / floor round trip`, "sb.ndarray.first", "floor.bulkRoundTrip", "bandwidth, higher is better"],
  [`${bulkMiB} MiB \`Float64Array\` → numpy → back, repeated / floor round trip`, "sb.ndarray.repeated", "floor.bulkRoundTrip", "bandwidth, higher is better"],
  [`${bulkMiB} MiB \`Python.sharedArray\` → numpy → back, repeated / floor round trip`, "sb.sharedArray", "floor.bulkRoundTrip", "bandwidth, higher is better"],
  [`${bulkMiB} MiB \`Float64Array\` → numpy, repeated / floor bulk Node → Python`, "sb.ndarray.into", "floor.bulkIn", "bandwidth, higher is better"],
  [`${bulkMiB} MiB numpy → \`Float64Array\`, repeated / floor bulk Python → Node`, "sb.ndarray.back", "floor.bulkOut", "bandwidth, higher is better"],
  ["trivial drop p50 / floor exec+JSON p50", "sb.drop.p50", "floor.exec.p50", "vs. a floor that also runs code"],
  ["trivial drop p50 / floor through Effect p50", "sb.drop.p50", "floor.effect.p50", "vs. the floor as an Effect program sees it"],
  ["floor exec+JSON p50 / floor p50", "floor.exec.p50", "floor.seq.p50", "what running code adds to the channel, no library"],
  ["floor exec+JSON p99 / floor p99", "floor.exec.p99", "floor.seq.p99", "the same, tail"],
  [
    "floor through `Effect.forEach` msg/s / floor pipelined msg/s",
    "floor.effectPipelined",
    "floor.pipelined",
    "the most pipelined drops through `Effect.forEach` could reach, one core for Node"
  ],
  ["pool of 2 pipelined drops/s / floor through `Effect.forEach` msg/s", "sb.pipelined", "floor.effectPipelined", "vs. the Effect floor, higher is better"],
  [
    "floor through `Effect.forEach`, Node's CPU per message / Node's time per drop at half the floor's pipelined rate",
    "floor.effectPipelined.nodeCpu",
    "floor.halfRateNodeBudget",
    "above 1: `Effect.forEach` alone takes more of Node's thread than that rate leaves a drop"
  ],
  [
    "pool of 2 pipelined, Node's CPU per drop / Node's time per drop at half the floor's pipelined rate",
    "sb.pipelined.nodeCpu",
    "floor.halfRateNodeBudget",
    "the same for the pool"
  ],
  [
    "floor through effect 4's `Effect.forEach` msg/s / the bare floor's msg/s in its process",
    "effect4.effectPipelined",
    "effect4.floorPipelined",
    "what effect 4 would allow; the packages are on effect 3"
  ]
]

/** A figure's cell: median, then min – max. */
const cell = (f: Figure | undefined) => (f === undefined || f.reps === 0 ? "n/a" : `**${fmt(f.median)}** (${fmt(f.min)} – ${fmt(f.max)})`)
const ratioCell = (f: Figure | undefined) =>
  f === undefined || f.reps === 0 ? "n/a" : `**${f.median.toFixed(2)}×** (${f.min.toFixed(2)} – ${f.max.toFixed(2)})`
const placedPeer = (key: string, name: string, fig: string): Figure | undefined => {
  const found = placedPeers.get(key as placement.Placement["key"])?.rows.find((r) => r.peer === name && r.figure.startsWith(fig))
  return found === undefined ? undefined : figure(found.values)
}
/** A ratio of a snakebridge median to a peer's, with the placement fixed. */
const placedPeerRatio = (key: string, sbName: string, name: string, fig: string, peerOver: boolean) => {
  const ours = get(`${key}.${sbName}`)
  const theirs = placedPeer(key, name, fig)
  if (ours.reps === 0 || theirs === undefined) return "n/a"
  return `**${(peerOver ? theirs.median / ours.median : ours.median / theirs.median).toFixed(2)}×**`
}
const placedRatios: ReadonlyArray<readonly [string, string, string, string]> = [
  ["trivial drop p50 / floor p50", "sb.drop.p50", "floor.seq.p50", "latency, lower is better"],
  ["trivial drop p99 / floor p99", "sb.drop.p99", "floor.seq.p99", "tail latency, lower is better"],
  ["`Python.call` p50 / floor p50", "sb.call.p50", "floor.seq.p50", "latency, lower is better"],
  ["`Python.call` p99 / floor p99", "sb.call.p99", "floor.seq.p99", "tail latency, lower is better"],
  ["trivial drop p50 / floor exec+JSON p50", "sb.drop.p50", "floor.exec.p50", "vs. a floor that also runs code"],
  ["floor exec+JSON p50 / floor p50", "floor.exec.p50", "floor.seq.p50", "what running code adds to the channel, no library"],
  ["floor exec+JSON p99 / floor p99", "floor.exec.p99", "floor.seq.p99", "the same, tail"]
]
const placedFigures: ReadonlyArray<readonly [string, string, string]> = [
  ["floor tiny round trip, p50", "µs", "floor.seq.p50"],
  ["floor tiny round trip, p99", "µs", "floor.seq.p99"],
  ["floor tiny round trip, sequential", "calls/s", "floor.seq.rate"],
  ["floor, Node's CPU per round trip", "µs", "floor.seq.nodeCpu"],
  ["floor, the echo process's CPU per round trip", "µs", "floor.seq.pythonCpu"],
  ["floor + cached exec and JSON, p50", "µs", "floor.exec.p50"],
  ["floor + cached exec and JSON, p99", "µs", "floor.exec.p99"],
  ["trivial drop, p50", "µs", "sb.drop.p50"],
  ["trivial drop, p99", "µs", "sb.drop.p99"],
  ["trivial drop, sequential", "calls/s", "sb.drop.rate"],
  ["trivial drop, Node's CPU per drop", "µs", "sb.drop.nodeCpu"],
  ["trivial drop, the worker's CPU per drop", "µs", "sb.drop.pythonCpu"],
  ["`Python.call`, p50", "µs", "sb.call.p50"],
  ["`Python.call`, p99", "µs", "sb.call.p99"]
]
const placedPeerFigures: ReadonlyArray<readonly [string, string, string]> = [
  ["pythonia", "trivial call `x + 1`, p50", "µs"],
  ["pythonia", "trivial call, p99", "µs"],
  ["pythonia", "trivial call, sequential", "calls/s"],
  ["python-shell (JSON)", "trivial call `x + 1`, p50", "µs"],
  ["python-shell (JSON)", "trivial call, p99", "µs"],
  ["python-shell (JSON)", "trivial call, sequential", "calls/s"]
]
const [two, one] = [fixed.placements[0], fixed.placements[1]]
const placedSection =
  two === undefined || one === undefined
    ? ["## With the placement fixed", "", `Not measured: ${fixed.reason}.`, ""]
    : [
      "## With the placement fixed: Node and Python pinned with `taskset`",
      "",
      `The same latencies, every side placed alike: on two CPUs (${two.label}) and on one (${one.label}).`,
      "On a virtual machine, waking a halted CPU costs tens of µs; processes taking turns on one CPU",
      "never let it halt. Unpinned (every other table here), the scheduler switches between the two,",
      "and a figure is whichever mix its loop caught.",
      "",
      "| ratio | two CPUs | one CPU | |",
      "| --- | --- | --- | --- |",
      ...placedRatios.map(([label, a, b, meaning]) =>
        `| ${label} | ${ratioCell(ratio(`${two.key}.${a}`, `${two.key}.${b}`))} | ${ratioCell(ratio(`${one.key}.${a}`, `${one.key}.${b}`))} | ${meaning} |`
      ),
      ...([
        ["trivial drop calls/s / pythonia calls/s", "sb.drop.rate", "pythonia", "trivial call, sequential", false, "higher is better"],
        ["pythonia p99 / trivial drop p99", "sb.drop.p99", "pythonia", "trivial call, p99", true, "higher is better"],
        ["trivial drop p50 / python-shell p50", "sb.drop.p50", "python-shell (JSON)", "trivial call `x + 1`, p50", false, "lower is better"],
        ["floor calls/s / pythonia calls/s", "floor.seq.rate", "pythonia", "trivial call, sequential", false, "the bare channel: a ceiling"],
        ["floor exec+JSON calls/s / pythonia calls/s", "floor.exec.rate", "pythonia", "trivial call, sequential", false, "the channel running code: a ceiling"],
        ["pythonia p99 / floor p99", "floor.seq.p99", "pythonia", "trivial call, p99", true, "the bare channel's tail: a ceiling"],
        ["pythonia p99 / floor exec+JSON p99", "floor.exec.p99", "pythonia", "trivial call, p99", true, "the channel running code: a ceiling"],
        ["floor exec+JSON p50 / python-shell p50", "floor.exec.p50", "python-shell (JSON)", "trivial call `x + 1`, p50", false, "the channel running code"]
      ] as const).map(([label, sbName, name, fig, peerOver, meaning]) =>
        `| ${label} | ${placedPeerRatio(two.key, sbName, name, fig, peerOver)} | ${placedPeerRatio(one.key, sbName, name, fig, peerOver)} | ${meaning} |`
      ),
      "",
      "| figure | unit | two CPUs | one CPU |",
      "| --- | --- | --- | --- |",
      ...placedFigures.map(([label, unit, name]) =>
        `| ${label} | ${unit} | ${cell(get(`${two.key}.${name}`))} | ${cell(get(`${one.key}.${name}`))} |`
      ),
      ...placedPeerFigures.map(([name, fig, unit]) =>
        `| ${name}, ${fig} | ${unit} | ${cell(placedPeer(two.key, name, fig))} | ${cell(placedPeer(one.key, name, fig))} |`
      ),
      ""
    ]

const lines = [
  `# snakebridge benchmark${quick ? " (quick)" : ""}`,
  "",
  `- date: ${new Date().toISOString()}`,
  `- machine: nproc ${nproc}, ${cpu}, memory ${mb(os.totalmem())} total (${mb(os.freemem())} free at the end)`,
  `- load average at start: ${load.map((l) => l.toFixed(2)).join(" ")}; \`snakebridge_worker\` processes not ours at start: ${foreignWorkers}`,
  `- Node ${process.version}${noPretenuring ? " with V8's allocation-site pretenuring off (`--no-pretenuring`)" : ""}, Python ${pythonVersion} at ${python}`,
  `- ${config.reps} repetitions (floor and snakebridge interleaved); each figure is the median, with min – max over the repetitions; run took ${elapsedS.toFixed(0)} s`,
  "",
  "## Ratios, snakebridge / floor (same run)",
  "",
  "| ratio | median | min – max | |",
  "| --- | --- | --- | --- |",
  ...floorRatios.map(([label, a, b, meaning]) => ratioRow(label, ratio(a, b), meaning)),
  "",
  ...placedSection,
  "## Floor: raw length-prefixed frames, Node ↔ `floor_echo.py` on fds 3/4",
  "",
  "| figure | unit | median | min – max |",
  "| --- | --- | --- | --- |",
  row("tiny round trip, sequential, p50", "µs", get("floor.seq.p50")),
  row("tiny round trip, sequential, p99", "µs", get("floor.seq.p99")),
  row("tiny round trip, sequential", "calls/s", get("floor.seq.rate")),
  row("tiny round trip, Node's CPU per round trip", "µs", get("floor.seq.nodeCpu")),
  row("tiny round trip, Node's garbage collection pauses per round trip", "µs", get("floor.seq.nodeGc")),
  row("tiny round trip, the echo process's CPU per round trip", "µs", get("floor.seq.pythonCpu")),
  row("+ cached exec and JSON, p50", "µs", get("floor.exec.p50")),
  row("+ cached exec and JSON, p99", "µs", get("floor.exec.p99")),
  row("+ cached exec and JSON", "calls/s", get("floor.exec.rate")),
  row("+ cached exec and JSON, Node's CPU per round trip", "µs", get("floor.exec.nodeCpu")),
  row("+ cached exec and JSON, the echo process's CPU per round trip", "µs", get("floor.exec.pythonCpu")),
  row("pipelined, 64 in flight", "msg/s", get("floor.pipelined")),
  row("pipelined, Node's CPU per message", "µs", get("floor.pipelined.nodeCpu")),
  row("pipelined, the echo process's CPU per message", "µs", get("floor.pipelined.pythonCpu")),
  row("half the pipelined rate: Node's time per message at that rate", "µs", get("floor.halfRateNodeBudget")),
  row("through Effect (`Effect.async` per round trip, a Schema decoding the echo), sequential, p50", "µs", get("floor.effect.p50")),
  row("through Effect, p99", "µs", get("floor.effect.p99")),
  row("through Effect, sequential", "calls/s", get("floor.effect.rate")),
  row("through Effect, Node's CPU per round trip", "µs", get("floor.effect.nodeCpu")),
  row("through Effect, pipelined: `Effect.forEach`, 64 in flight", "msg/s", get("floor.effectPipelined")),
  row("through Effect, pipelined, Node's CPU per message", "µs", get("floor.effectPipelined.nodeCpu")),
  row("through Effect, pipelined, the echo process's CPU per message", "µs", get("floor.effectPipelined.pythonCpu")),
  row("through effect 4 (`bench/effect4`, a process of its own), pipelined, 64 in flight", "msg/s", get("effect4.effectPipelined")),
  row("through effect 4, pipelined, Node's CPU per message", "µs", get("effect4.effectPipelined.nodeCpu")),
  row("the bare floor in that process, pipelined", "msg/s", get("effect4.floorPipelined")),
  row(`bulk Node → Python, ${bulkMiB} MiB in 1 MiB frames`, "MB/s", get("floor.bulkIn")),
  row(`bulk Python → Node, ${bulkMiB} MiB in 1 MiB frames`, "MB/s", get("floor.bulkOut")),
  row(`bulk round trip, ${bulkMiB} MiB there then back (from the two above)`, "MB/s", get("floor.bulkRoundTrip")),
  row(`fresh allocation: ${bulkMiB} MiB of new memory written once, in Node`, "MB/s", get("floor.freshAlloc")),
  row("bare start, `python -c pass` to exit", "ms", get("floor.bareStart")),
  row("echo process start to first echo", "ms", get("floor.echoStart")),
  "",
  "## snakebridge",
  "",
  "| figure | unit | median | min – max |",
  "| --- | --- | --- | --- |",
  row("trivial drop `return ${x} + 1`, p50", "µs", get("sb.drop.p50")),
  row("trivial drop, p99", "µs", get("sb.drop.p99")),
  row("trivial drop, sequential", "calls/s", get("sb.drop.rate")),
  row("trivial drop, Node's CPU per drop", "µs", get("sb.drop.nodeCpu")),
  row("trivial drop, Node's garbage collection pauses per drop", "µs", get("sb.drop.nodeGc")),
  row("trivial drop, the worker's CPU per drop", "µs", get("sb.drop.pythonCpu")),
  row('`Python.call("operator.add", [x, 1])`, p50', "µs", get("sb.call.p50")),
  row("`Python.call`, p99", "µs", get("sb.call.p99")),
  row("`Python.call`, sequential", "calls/s", get("sb.call.rate")),
  row("`Python.call`, Node's CPU per call", "µs", get("sb.call.nodeCpu")),
  row("`Python.call`, Node's garbage collection pauses per call", "µs", get("sb.call.nodeGc")),
  row("`Python.call`, the worker's CPU per call", "µs", get("sb.call.pythonCpu")),
  row("drop with a handle argument `${h}[0] + ${x}`, p50", "µs", get("sb.hdrop.p50")),
  row("drop with a handle argument, p99", "µs", get("sb.hdrop.p99")),
  row("drop with a handle argument, sequential", "calls/s", get("sb.hdrop.rate")),
  row("pipelined drops, 2 workers × concurrency 32, forEach 64", "drops/s", get("sb.pipelined")),
  row("the same, Node's CPU per drop", "µs", get("sb.pipelined.nodeCpu")),
  row("the same, the two workers' CPU per drop", "µs", get("sb.pipelined.pythonCpu")),
  row("pipelined drops, 1 worker × concurrency 1, forEach 64", "drops/s", get("sb.pipelinedOne")),
  row("pipelined drops, 1 worker × concurrency 64, forEach 64", "drops/s", get("sb.pipelinedOne64")),
  row(`bulk Node → Python, ${bulkMiB} MiB \`Uint8Array\` argument (shared memory), first`, "MB/s", get("sb.bulkIn")),
  row(`bulk Python → Node, ${bulkMiB} MiB \`bytes\` result (\`b"x" * n\`, shared memory), first`, "MB/s", get("sb.bulkOut")),
  row(`the same, repeated (median of ${config.ndarrayRepeats - 1}): Node → Python`, "MB/s", get("sb.bulkInRepeated")),
  row(`the same, repeated: Python → Node`, "MB/s", get("sb.bulkOutRepeated")),
  row(`${bulkMiB} MiB \`Float64Array\` → numpy (\`a *= 2\`) → back, first round trip`, "MB/s", get("sb.ndarray.first")),
  row(`the same, repeated (median of ${config.ndarrayRepeats - 1})`, "MB/s", get("sb.ndarray.repeated")),
  row(`the same through the pipe alone (\`sharedMemoryThreshold: false\`), first`, "MB/s", get("sb.ndarrayPipe.first")),
  row(`the same through the pipe alone, repeated`, "MB/s", get("sb.ndarrayPipe.repeated")),
  row(`${bulkMiB} MiB \`Python.sharedArray(Float64Array, n)\` → numpy (\`a *= 2\`) → back, no copy either way, repeated`, "MB/s", get("sb.sharedArray")),
  row(`${bulkMiB} MiB \`Float64Array\` → numpy only (the drop returns its length), repeated`, "MB/s", get("sb.ndarray.into")),
  row(`${bulkMiB} MiB numpy array kept in the worker → \`Float64Array\` only, repeated`, "MB/s", get("sb.ndarray.back")),
  row(`Arrow table, ${config.arrowRows.toLocaleString("en-US")} rows × 4 numeric columns → pyarrow Table`, "rows/s", get("sb.arrow.transferIn")),
  row("the same table kept in the worker (a handle) → Arrow table in Node", "rows/s", get("sb.arrow.transferOut")),
  row("the same table → pandas DataFrame (`.to_pandas()` in the drop)", "rows/s", get("sb.arrow.in")),
  row("pandas DataFrame (2 numeric columns) → Arrow table", "rows/s", get("sb.arrow.out")),
  row("Arrow table → pandas, a column added → back", "rows/s", get("sb.arrow.roundTrip")),
  row(`bytes there and back, ${bulkMiB} MiB, first (from the one-way figures)`, "MB/s", get("sb.bulkRoundTrip")),
  row(`bytes there and back, ${bulkMiB} MiB, repeated`, "MB/s", get("sb.bulkRoundTripRepeated")),
  row("pool of 2: layer build to first drop result", "ms", get("sb.startUp")),
  row("pool of 2: dispose", "ms", get("sb.dispose")),
  row("pool of 1: layer build to first drop result", "ms", get("sb.startUpOne")),
  row(`${config.handleCycles.toLocaleString("en-US")} handle create/release cycles`, "ms", get("sb.cycles.ms")),
  row("handle cycles", "cycles/s", get("sb.cycles.rate")),
  row("`Python.liveHandles` after the cycles (must be 0)", "handles", get("sb.cycles.live")),
  row("`snakebridge.live_handles()` in the worker after the cycles", "handles", get("sb.cycles.registry")),
  row("Node RSS growth over the cycles (after gc)", "MB", get("sb.cycles.nodeRss")),
  row("Node heap growth over the cycles (after gc)", "MB", get("sb.cycles.nodeHeap")),
  row("worker RSS growth over the cycles", "MB", get("sb.cycles.workerRss")),
  "",
  "## Peers (same run, same interpreter; medians of their own repetitions)",
  "",
  "| ratio | median | | |",
  "| --- | --- | --- | --- |",
  peerRatio("trivial drop calls/s / pythonia calls/s", get("sb.drop.rate").median, peer("pythonia", "trivial call, sequential")?.median, "higher is better"),
  peerRatio("pythonia p99 / trivial drop p99", peer("pythonia", "trivial call, p99")?.median, get("sb.drop.p99").median, "higher is better"),
  peerRatio(
    `bytes there and back, ${bulkMiB} MiB / pythonia's`,
    get("sb.bulkRoundTrip").median,
    peer("pythonia", `${bulkMiB} MiB`)?.median,
    "higher is better"
  ),
  peerRatio("trivial drop p50 / python-shell p50", get("sb.drop.p50").median, peer("python-shell (JSON)", "trivial call `x + 1`, p50")?.median, "lower is better"),
  peerRatio("floor calls/s / pythonia calls/s", get("floor.seq.rate").median, peer("pythonia", "trivial call, sequential")?.median, "the bare channel, no code run: a ceiling"),
  peerRatio("floor exec+JSON calls/s / pythonia calls/s", get("floor.exec.rate").median, peer("pythonia", "trivial call, sequential")?.median, "the channel running code, no library"),
  peerRatio("pythonia p99 / floor p99", peer("pythonia", "trivial call, p99")?.median, get("floor.seq.p99").median, "the bare channel's tail: a ceiling"),
  peerRatio("pythonia p99 / floor exec+JSON p99", peer("pythonia", "trivial call, p99")?.median, get("floor.exec.p99").median, "the channel running code: a ceiling"),
  peerRatio("floor exec+JSON p50 / python-shell p50", get("floor.exec.p50").median, peer("python-shell (JSON)", "trivial call `x + 1`, p50")?.median, "the channel running code, no library"),
  peerRatio(
    "trivial drop p50 / node-calls-python async p50",
    get("sb.drop.p50").median,
    peer("node-calls-python, async call", "trivial call `x + 1`, p50")?.median,
    "lower is better (in-process)"
  ),
  "",
  "| peer | figure | unit | median | min – max |",
  "| --- | --- | --- | --- | --- |",
  ...peerRun.rows.map((r) => {
    const f = figure(r.values)
    return `| ${r.peer} | ${r.figure} | ${r.unit} | **${fmt(f.median)}** | ${fmt(f.min)} – ${fmt(f.max)} |`
  }),
  ...(peerFailures.length === 0
    ? []
    : ["", "Peers that failed, and why:", "", ...peerFailures.map((f) => `- ${f.peer}, ${f.what}: ${f.reason}`)]),
  "",
  "Notes:",
  "",
  "- The floor is the least a Node ↔ Python process channel of this kind can cost here; snakebridge adds",
  "  MessagePack, drop compilation and caching, the pool, supervision, spans and metrics on top.",
  "- Start-up spawns the `.venv` interpreter as it is (a binary: no probe run first); each worker checks its own version.",
  "- The pool's pipelined figure runs on 2 worker processes, the floor's on 1.",
  `- Node RSS over the whole run: ${rssStart.toFixed(0)} MB at start, ${rssMB().toFixed(0)} MB at the end.`,
  ...samples.notes.map((n) => `- ${n}`),
  ""
]
const table = lines.join("\n")
console.log(table)
mkdirSync(fileURLToPath(new URL("./results/", import.meta.url)), { recursive: true })
writeFileSync(RESULTS, table)

// No process of ours may outlive the run.
await new Promise((resolve) => setTimeout(resolve, 200))
const strays = [...children("snakebridge_worker"), ...children("floor_echo.py"), ...children("peer_")]
log(`wrote ${RESULTS}; stray child processes: ${strays.length}${strays.length > 0 ? ` (${strays.join(", ")})` : ""}`)
if (strays.length > 0) process.exitCode = 1
