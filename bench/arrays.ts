/**
 * Typed arrays into numpy and back, Arrow tables into pandas and back, and the machine's
 * fresh-allocation rate: the ceiling of any transfer that lands in new memory.
 */
import { Drop, py, Python } from "@snakebridge/core"
import * as Arrow from "@snakebridge/core/Arrow"
import { type Table, tableFromArrays } from "apache-arrow"
import { Effect, Schema } from "effect"
import { nowUs, PAGE_BYTES, touchBytes } from "./stats.js"

const Float64 = Schema.instanceOf(Float64Array)

/**
 * Reads one element of every 4 KiB page: a result mapped where the worker wrote it is faulted
 * in page by page when first read, and a transfer is not done before its pages can be read.
 */
const PAGE_ELEMENTS = PAGE_BYTES / Float64Array.BYTES_PER_ELEMENT

const touchPages = (a: Float64Array): number => {
  let sum = 0
  for (let i = 0; i < a.length; i += PAGE_ELEMENTS) sum += a[i]!
  return sum
}

/**
 * `input` into numpy, doubled in place there (`a *= 2`) and back, `times` times in a row: MB/s of
 * payload per round trip, in order. Each page of `input` holds its index first.
 */
const doublings = (input: Float64Array, times: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < input.length; i += PAGE_ELEMENTS) input[i] = i
    const rates: Array<number> = []
    for (let k = 0; k < times; k++) {
      const before = touchPages(input) // changed by the last round trip if it is shared
      const t = nowUs()
      const out = yield* py`
a = ${input}
a *= 2
a
`.pipe(Drop.returning(Float64))
      const sum = touchPages(out)
      rates.push(input.byteLength / (nowUs() - t))
      if (out.length !== input.length || sum !== 2 * before) return yield* Effect.fail(new Error("round trip: wrong result"))
    }
    return rates
  })

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!

/** A `Float64Array` of `bytes` round trip (`doublings`), `times` times: the first, and the median of the rest. */
export const ndarrayRoundTrips = (bytes: number, times: number) =>
  Effect.map(doublings(new Float64Array(bytes / 8), times), (rates) => ({
    first: rates[0]!,
    repeated: rates.length > 1 ? median(rates.slice(1)) : rates[0]!
  }))

/**
 * The same round trip with the array made by `Python.sharedArray`: it crosses without a copy
 * and comes back as the same memory; the median of `times` after a first one.
 */
export const sharedArrayRoundTrips = (bytes: number, times: number) =>
  Effect.gen(function* () {
    const rates = yield* doublings(yield* Python.sharedArray(Float64Array, bytes / 8), times + 1)
    return median(rates.slice(1))
  }).pipe(Effect.scoped)

/**
 * One way at a time, `times` in a row, median MB/s: a `Float64Array` of `bytes` into numpy (the
 * drop returns its length), and a numpy array kept in the worker (a handle) back as a
 * `Float64Array`: transfer alone, no work in Python on either.
 */
export const ndarrayOneWay = (bytes: number, times: number) =>
  Effect.gen(function* () {
    const input = new Float64Array(bytes / 8).fill(1)
    const kept = yield* Drop.handle(py`
import numpy as np
np.ones(${bytes / 8})
`)
    const into: Array<number> = []
    const back: Array<number> = []
    for (let k = 0; k < times; k++) {
      let t = nowUs()
      const n = yield* py`${input}.shape[0]`.pipe(Drop.returning(Schema.Number))
      into.push(bytes / (nowUs() - t))
      t = nowUs()
      const out = yield* py`${kept}`.pipe(Drop.returning(Float64))
      const sum = touchPages(out)
      back.push(bytes / (nowUs() - t))
      if (n !== input.length || out.length !== input.length || sum !== out.length / PAGE_ELEMENTS) {
        return yield* Effect.fail(new Error("ndarray one way: wrong result"))
      }
    }
    return { into: median(into), back: median(back) }
  }).pipe(Effect.scoped)

/** Reads one byte of every page of every column, as `touchPages` does for an array. */
const touchTable = (t: Table): number => {
  let sum = 0
  for (const field of t.schema.fields) {
    for (const data of t.getChild(field.name)!.data) {
      sum += touchBytes(new Uint8Array(data.values.buffer, data.values.byteOffset, data.values.byteLength))
    }
  }
  return sum
}

/**
 * A table of `rows` rows and four numeric columns: into Python as a pyarrow Table, back from a
 * Table kept in the worker (a handle), and into pandas with a column added and back; rows/s.
 */
export const arrowRoundTrip = (rows: number) =>
  Effect.gen(function* () {
    const table = tableFromArrays({
      id: BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)),
      price: Float64Array.from({ length: rows }, (_, i) => i * 0.5),
      qty: Int32Array.from({ length: rows }, (_, i) => i % 100),
      weight: Float32Array.from({ length: rows }, (_, i) => i % 3)
    })
    let t = nowUs()
    const n = yield* py`${table}.num_rows`.pipe(Drop.returning(Schema.Number))
    const transferIn = (rows / (nowUs() - t)) * 1e6
    if (n !== rows) return yield* Effect.fail(new Error(`arrow in: ${n} rows arrived`))
    const kept = yield* Drop.handle(py`${table}`)
    t = nowUs()
    const copy = yield* py`${kept}`.pipe(Drop.returning(Arrow.schema))
    touchTable(copy)
    const transferOut = (rows / (nowUs() - t)) * 1e6
    if (copy.numRows !== rows) return yield* Effect.fail(new Error("arrow out: wrong result"))
    t = nowUs()
    const m = yield* py`len(${table}.to_pandas())`.pipe(Drop.returning(Schema.Number))
    const inRate = (rows / (nowUs() - t)) * 1e6
    if (m !== rows) return yield* Effect.fail(new Error(`arrow into pandas: ${m} rows arrived`))
    t = nowUs()
    const back = yield* py`
df = ${table}.to_pandas()
df["total"] = df["price"] * df["qty"]
df
`.pipe(Drop.returning(Arrow.schema))
    touchTable(back)
    const roundTrip = (rows / (nowUs() - t)) * 1e6
    if (back.numRows !== rows || back.getChild("total")?.get(3) !== 1.5 * 3) {
      return yield* Effect.fail(new Error("arrow round trip: wrong result"))
    }
    t = nowUs()
    const out = yield* py`
import numpy as np, pandas as pd
pd.DataFrame({"x": np.arange(${rows}, dtype=np.float64), "y": np.arange(${rows}, dtype=np.int64)})
`.pipe(Drop.returning(Arrow.schema))
    touchTable(out)
    const outRate = (rows / (nowUs() - t)) * 1e6
    if (out.numRows !== rows) return yield* Effect.fail(new Error("arrow out: wrong result"))
    return { transferIn, transferOut, inRate, outRate, roundTrip }
  }).pipe(Effect.scoped)

/** Allocating `bytes` of new memory and writing all of it once, MB/s: what first-touch costs here. */
export const freshAllocation = (bytes: number): number => {
  const src = new Uint8Array(bytes).fill(1)
  const rates: Array<number> = []
  for (let k = 0; k < 3; k++) {
    const t = nowUs()
    const fresh = new Uint8Array(bytes)
    fresh.set(src)
    rates.push(bytes / (nowUs() - t))
    if (fresh[bytes - 1] !== 1) throw new Error("fresh allocation: wrong copy")
  }
  return rates.sort((a, b) => a - b)[1]!
}
