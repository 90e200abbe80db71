import { describe, expect, it } from "@effect/vitest"
import { NodePython } from "@snakebridge/node"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { program as dataframes } from "./dataframes.js"
import { program as errors } from "./errors.js"
import { program as handles } from "./handles.js"
import { program as pool } from "./pool.js"
import { program as streaming } from "./streaming.js"

/** Runs an example as its README line does and gives what it printed. */
const runExample = (file: string) =>
  execFileSync(process.execPath, ["--import", "tsx", "--conditions=source", file], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000
  })

describe("examples", () => {
  it.live("handles: builds once, uses many times, releases at scope close", () =>
    Effect.gen(function* () {
      const out = yield* handles
      expect(out).toEqual({ predictions: { the: 3, fox: 1, cat: 0 }, live: 0 })
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("pool: many drops in parallel", () =>
    Effect.gen(function* () {
      const primes = yield* pool
      expect(primes).toEqual([1000003, 1000033, 1000037, 1000039, 1000081, 1000099, 1000117, 1000121, 1000133, 1000151, 1000159, 1000171, 1000183, 1000187, 1000193, 1000199])
    }).pipe(Effect.provide(NodePython.layer({ workers: 2 }))))

  it.live("streaming: five squares of a million pulled, progress in order", () =>
    Effect.gen(function* () {
      const out = yield* streaming
      expect(out.squares.map((s) => s.square)).toEqual([0, 1, 4, 9, 16])
      expect(out.progress).toEqual([20, 40, 60, 80, 100])
      expect(out.fitted).toBe("fitted")
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("errors: the exception points at the lines of errors.ts", () =>
    Effect.gen(function* () {
      const e = yield* errors
      expect(typeof e === "object" && e._tag).toBe("PythonException")
      if (typeof e !== "object") return
      const file = new URL("./errors.ts", import.meta.url).pathname
      // `return int(text)` and `total += ${parse}(text)` in errors.ts
      expect(e.locations).toEqual([`${file}:15`, `${file}:21`])
    }).pipe(Effect.provide(NodePython.layer())))

  it.live("dataframes: a matrix through numpy and a table through pandas, both as raw buffers", () =>
    Effect.gen(function* () {
      const out = yield* dataframes
      expect(out.shape).toEqual([4, 3])
      const z = -1.5 / Math.sqrt(1.25) // (1 - 2.5) / std of 1, 2, 3, 4
      for (const x of out.firstRow) expect(x).toBeCloseTo(z, 12)
      expect(out.byStore).toEqual(["north 21", "east 20", "south 12"])
    }).pipe(Effect.provide(NodePython.layer())))

  it("tracing: spans of drops are exported to the console by OpenTelemetry", () => {
    const out = runExample("examples/tracing.ts")
    expect(out).toContain("name: 'snakebridge.drop'")
    expect(out).toContain("'snakebridge.first_line': 'import statistics'")
    expect(out).toContain("name: 'report'")
  })

  it("revenue: the main example runs as `pnpm demo` does and prints the total", () => {
    const out = runExample("examples/revenue.ts")
    expect(out).toContain("total 122.00 over 3 rows; best seller: coffee")
  })
})
