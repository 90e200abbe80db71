/**
 * numpy and pandas from TypeScript: a matrix into numpy and back, an Arrow table into pandas
 * and back. Needs numpy, pandas and pyarrow in the worker's environment (`pnpm test` installs
 * them into .venv) and apache-arrow in the Node project.
 *
 *   pnpm tsx --conditions=source examples/dataframes.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Drop, NdArray, py } from "@snakebridge/core"
import * as Arrow from "@snakebridge/core/Arrow"
import { NodePython } from "@snakebridge/node"
import { tableFromArrays } from "apache-arrow"
import { Effect } from "effect"

export const program = Effect.gen(function* () {
  // 4 samples × 3 features, centred and scaled per feature in numpy: the matrix travels as raw
  // float64 bytes and numpy works on it in place.
  const samples = NdArray.make(new Float64Array([1, 10, 100, 2, 20, 200, 3, 30, 300, 4, 40, 400]), [4, 3])
  const scaled = yield* py`
a = ${samples}
a -= a.mean(axis=0)
a /= a.std(axis=0)
a
`.pipe(Drop.returning(NdArray.schema))

  // Sales as an Arrow table into pandas, a group-by there, the result back as an Arrow table.
  const sales = tableFromArrays({
    store: ["north", "south", "north", "east", "south", "north"],
    amount: new Float64Array([12.5, 3, 7.5, 20, 9, 1])
  })
  const totals = yield* py`
df = ${sales}.to_pandas()
df.groupby("store", as_index=False)["amount"].sum().sort_values("amount", ascending=False)
`.pipe(Drop.returning(Arrow.schema))

  const firstRow = Array.from(scaled.data.slice(0, 3), Number)
  const byStore = totals.toArray().map((row) => `${row.store} ${row.amount}`)
  yield* Effect.log(`scaled ${scaled.shape.join("×")} (first row ${firstRow.map((x) => x.toFixed(3)).join(", ")}); totals: ${byStore.join(", ")}`)
  return { shape: scaled.shape, firstRow, byStore }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(Effect.provide(NodePython.layer({ requires: ["numpy", "pandas", "pyarrow"] })), NodeRuntime.runMain)
}
