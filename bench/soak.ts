/**
 * Soak: drops of mixed sizes, handles made and released, failures on purpose, on a pool
 * whose workers are killed at random, for a chosen time. Every drop must end exactly once,
 * with the right value or a typed error; at the end no handle may be live and exactly the
 * pool's processes may be alive.
 *
 *   pnpm soak [--seconds 600] [--workers 2] [--concurrency 8] [--kill-every 2]
 */
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Duration, Effect, Exit, Fiber, Schedule, Schema } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { parseArgs } from "node:util"

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    workers: { type: "string", default: "2" },
    concurrency: { type: "string", default: "8" },
    "kill-every": { type: "string", default: "2" }
  }
})
const seconds = Number(args.seconds)
const workers = Number(args.workers)
const concurrency = Number(args.concurrency)
const killEvery = Number(args["kill-every"])

/** Worker processes whose parent is this process. */
const childWorkers = (): Array<number> =>
  readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
        return ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("snakebridge_worker")
      } catch {
        return false
      }
    })
    .map(Number)

type Kind = "small" | "large" | "handle" | "failing"
const kinds: ReadonlyArray<Kind> = ["small", "small", "small", "large", "handle", "failing"]

/** One operation and the value it must give. */
const operation = (kind: Kind, i: number): Effect.Effect<unknown, unknown, Python.Python> => {
  switch (kind) {
    case "small":
      return py`return ${i} + 1`.pipe(
        Drop.returning(Schema.Number),
        Effect.filterOrDieMessage((v) => v === i + 1, "wrong value")
      )
    case "large": {
      const bytes = new Uint8Array(256 * 1024).fill(i % 251)
      return py`return bytes(reversed(${bytes}))`.pipe(
        Drop.returning(Schema.Uint8ArrayFromSelf),
        Effect.filterOrDieMessage((v) => v.length === bytes.length && v[0] === i % 251, "wrong bytes")
      )
    }
    case "handle":
      return Effect.scoped(
        Effect.gen(function* () {
          const h = yield* py`return {"i": ${i}, "rows": list(range(1000))}`.pipe(Drop.handle)
          const v = yield* py`return ${h}["i"] + len(${h}["rows"])`.pipe(Drop.returning(Schema.Number))
          if (v !== i + 1000) return yield* Effect.dieMessage("wrong handle value")
          return v
        })
      )
    case "failing":
      return py`raise ValueError(${`on purpose ${i}`})`
  }
}

const program = Effect.gen(function* () {
  const outcomes = new Map<number, string>()
  const failedByTag = new Map<string, number>()
  let sent = 0
  let duplicated = 0
  let wrong = 0
  let hung = 0
  let kills = 0

  const record = (id: number, outcome: string) => {
    if (outcomes.has(id)) duplicated++
    outcomes.set(id, outcome)
  }

  // Warm up, then take the baseline.
  yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => operation("small", i), { discard: true })
  const heapBefore = process.memoryUsage().heapUsed
  const rssBefore = process.memoryUsage().rss

  const killer = yield* Effect.fork(
    Effect.gen(function* () {
      const ws = yield* Python.workers
      if (ws.length === 0) return
      const victim = ws[Math.floor(Math.random() * ws.length)]!
      try {
        process.kill(victim.pid, "SIGKILL")
        kills++
      } catch {
        // already gone
      }
    }).pipe(Effect.repeat(Schedule.spaced(Duration.seconds(killEvery))), Effect.delay(Duration.seconds(killEvery)))
  )

  const deadline = Date.now() + seconds * 1000
  let next = 0
  const worker = Effect.gen(function* () {
    while (Date.now() < deadline) {
      const id = next++
      const kind = kinds[id % kinds.length]!
      sent++
      const exit = yield* Effect.exit(operation(kind, id).pipe(Effect.timeout("60 seconds")))
      if (Exit.isSuccess(exit)) {
        record(id, kind === "failing" ? "unexpected success" : "ok")
        if (kind === "failing") wrong++
        continue
      }
      const failure = exit.cause._tag === "Fail" ? (exit.cause.error as { _tag?: string }) : undefined
      const tag = failure?._tag ?? (exit.cause._tag === "Die" ? "Defect" : exit.cause._tag)
      if (tag === "TimeoutException") hung++
      if (tag === "Defect") wrong++
      failedByTag.set(tag, (failedByTag.get(tag) ?? 0) + 1)
      record(id, tag)
    }
  })
  yield* Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true })
  yield* Fiber.interrupt(killer)

  // Let restarts finish, then count. A kill in the last moment may not be noticed yet (the pool
  // still lists that worker): wait until the pool's workers are exactly this process's children.
  const agree = (pids: ReadonlyArray<number>, children: ReadonlyArray<number>) =>
    pids.length === workers && children.length === workers && pids.every((pid) => children.includes(pid))
  yield* Python.workers.pipe(
    Effect.repeat({ until: (ws) => agree(ws.map((w) => w.pid), childWorkers()), schedule: Schedule.spaced("50 millis") }),
    Effect.timeout("30 seconds"),
    Effect.ignore
  )
  const live = yield* Python.liveHandles
  const pool = (yield* Python.workers).map((w) => w.pid)
  const children = childWorkers()
  const processes = children.length
  const lost = sent - outcomes.size
  const succeeded = [...outcomes.values()].filter((o) => o === "ok").length
  const heapGrowth = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20
  const rssGrowth = (process.memoryUsage().rss - rssBefore) / 2 ** 20

  const rows: Array<[string, string]> = [
    ["duration", `${seconds} s, ${workers} workers, ${concurrency} concurrent callers, a worker killed every ${killEvery} s`],
    ["drops sent", String(sent)],
    ["succeeded", String(succeeded)],
    ...[...failedByTag.entries()].sort().map(([tag, n]): [string, string] => [`failed: ${tag}`, String(n)]),
    ["workers killed", String(kills)],
    ["lost (no outcome)", String(lost)],
    ["duplicated outcomes", String(duplicated)],
    ["wrong values / unexpected outcomes", String(wrong)],
    ["hung (no outcome in 60 s)", String(hung)],
    ["live handles at the end", String(live)],
    ["worker processes alive", `${processes} (pool of ${workers})`],
    ["worker pids: the pool's / this process's children", `${pool.join(", ")} / ${children.join(", ")}`],
    ["Node heap growth", `${heapGrowth.toFixed(1)} MiB`],
    ["Node RSS growth", `${rssGrowth.toFixed(1)} MiB`]
  ]
  console.log("\n| soak | |\n| --- | --- |")
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`)
  const ok = lost === 0 && duplicated === 0 && wrong === 0 && hung === 0 && live === 0 && agree(pool, children)
  console.log(ok ? "\nsoak: OK" : "\nsoak: FAILED")
  if (!ok) process.exitCode = 1
})

program.pipe(
  Effect.provide(NodePython.layer({ workers, maxRestarts: { count: 10_000, within: "1 minute" } })),
  Effect.runPromise
).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
