/**
 * The main example: revenue over a CSV, computed in Python with the standard library.
 *
 *   pnpm demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Schema } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const revenue = (csvPath: string) =>
  py`
import csv
with open(${csvPath}, newline="") as f:
    rows = list(csv.DictReader(f))
return sum(float(r["price"]) * int(r["quantity"]) for r in rows)
`.pipe(Drop.returning(Schema.Number))

const writeSample = Effect.sync(() => {
  const dir = join(import.meta.dirname, "data")
  mkdirSync(dir, { recursive: true })
  const path = join(dir, "sales.csv")
  const rows = [["product", "price", "quantity"], ["tea", "3.5", "10"], ["cake", "4.25", "4"], ["coffee", "2.8", "25"]]
  writeFileSync(path, rows.map((r) => r.join(",")).join("\n") + "\n")
  return path
})

const program = Effect.gen(function* () {
  const path = yield* writeSample
  const total = yield* revenue(path)
  // The rows stay in Python as a handle; drops that use it run where it lives.
  const rows = yield* py`
import csv
with open(${path}, newline="") as f:
    return list(csv.DictReader(f))
`.pipe(Drop.handle)
  const count = yield* py`return len(${rows})`.pipe(Drop.returning(Schema.Int))
  const best = yield* py`return max(${rows}, key=lambda r: float(r["price"]) * int(r["quantity"]))["product"]`.pipe(
    Drop.returning(Schema.String)
  )
  yield* Effect.log(`total ${total.toFixed(2)} over ${count} rows; best seller: ${best}`)
}).pipe(Effect.scoped) // rows is released on the worker here

program.pipe(Effect.provide(NodePython.layer({ workers: 2 })), NodeRuntime.runMain)
