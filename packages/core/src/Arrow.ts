/**
 * Arrow tables across the boundary: an `apache-arrow` `Table` becomes a `pyarrow.Table` in
 * Python (`.to_pandas()` away from a DataFrame), and a `pyarrow.Table`, `RecordBatch` or
 * pandas `DataFrame` result comes back as a `Table`. Both ways the table travels as an Arrow
 * IPC stream: columns as raw buffers, no per-row work on either side.
 *
 * Importing this module enables the mapping (`apache-arrow` is an optional peer dependency,
 * so the rest of the library does not load it).
 *
 * @example
 * ```ts
 * import { Drop, py } from "@snakebridge/core"
 * import * as Arrow from "@snakebridge/core/Arrow"
 * import { tableFromArrays } from "apache-arrow"
 *
 * const prices = tableFromArrays({ price: new Float64Array([1.5, 2.5]) })
 * const described = py`
 * import pyarrow as pa
 * df = ${prices}.to_pandas()
 * df["double"] = df["price"] * 2
 * return df
 * `.pipe(Drop.returning(Arrow.schema))
 * ```
 *
 * @since 0.1.0
 */
import { Table, tableFromIPC, tableToIPC } from "apache-arrow"
import { Schema } from "effect"
import { registerTables } from "./internal/codec.js"

registerTables({
  isTable: (u) => u instanceof Table,
  toIPC: (table) => tableToIPC(table as Table, "stream"),
  fromIPC: (bytes) => tableFromIPC(bytes)
})

/**
 * A Schema for an Arrow `Table` result.
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema: Schema.Schema<Table> = Schema.instanceOf(Table)
