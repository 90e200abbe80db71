import { describe, expect, it, layer } from "@effect/vitest"
import { Drop, NdArray, py } from "@snakebridge/core"
import * as Arrow from "@snakebridge/core/Arrow"
import { NodePython } from "@snakebridge/node"
import { tableFromArrays } from "apache-arrow"
import { Effect } from "effect"
import { fileURLToPath } from "node:url"

const withoutNumpy = NodePython.layer({
  workers: 1,
  env: { PYTHONPATH: fileURLToPath(new URL("fixtures/without-numpy", import.meta.url)) }
})

const kinds = [
  [Int8Array, "int8", [-128, 0, 127]],
  [Uint8ClampedArray, "uint8", [0, 1, 255]],
  [Int16Array, "int16", [-32768, 7, 32767]],
  [Uint16Array, "uint16", [0, 7, 65535]],
  [Int32Array, "int32", [-(2 ** 31), 7, 2 ** 31 - 1]],
  [Uint32Array, "uint32", [0, 7, 2 ** 32 - 1]],
  [Float32Array, "float32", [-1.5, 0, 3.25]],
  [Float64Array, "float64", [Number.NaN, -0, 1e300]],
  [BigInt64Array, "int64", [-(2n ** 63n), 7n, 2n ** 63n - 1n]],
  [BigUint64Array, "uint64", [0n, 7n, 2n ** 64n - 1n]]
] as const

layer(NodePython.layer({ workers: 1 }), { excludeTestServices: true })("typed arrays and numpy", (it) => {
  it.effect("every typed array becomes a numpy array of its dtype and comes back as the same typed array", () =>
    Effect.gen(function* () {
      for (const [Ctor, dtype, values] of kinds) {
        const sent = new (Ctor as any)(values)
        const [seen, shape, writable, back] = (yield* py`
a = ${sent}
(str(a.dtype), list(a.shape), a.flags.writeable, a)
`) as [string, Array<number>, boolean, unknown]
        expect([seen, shape, writable]).toEqual([dtype, [3], true])
        expect(seen === "uint8" || back instanceof Ctor).toBe(true)
        expect([...(back as Iterable<unknown>)]).toEqual([...sent])
        expect(back).not.toBe(sent)
      }
    }))

  it.effect("an NdArray keeps its shape, is writable in Python, and n-d results come back as NdArray", () =>
    Effect.gen(function* () {
      const m = NdArray.make(new Float64Array([1, 2, 3, 4, 5, 6]), [2, 3])
      const back = yield* py`
a = ${m}
assert a.shape == (2, 3) and a.flags.writeable and a.flags.c_contiguous
a += 1          # in place: the worker's own memory
a.T             # transposed: not contiguous, sent in C order
`.pipe(Drop.returning(NdArray.schema))
      expect(back.shape).toEqual([3, 2])
      expect(back.dtype).toBe("float64")
      expect([...back.data]).toEqual([2, 5, 3, 6, 4, 7])

      const zeroD = yield* py`import numpy as np; np.array(2.5, dtype=np.float32)`.pipe(
        Drop.returning(NdArray.schema)
      )
      expect(zeroD.shape).toEqual([])
      expect(zeroD.data).toBeInstanceOf(Float32Array)
      expect([...zeroD.data]).toEqual([2.5])

      const empty = yield* py`import numpy as np; np.zeros((0, 4), dtype=np.int32)`.pipe(Drop.returning(NdArray.schema))
      expect(empty.shape).toEqual([0, 4])
      expect(empty.data).toBeInstanceOf(Int32Array)
    }))

  it.effect("numpy results: int64 as BigInt64Array, bool as Uint8Array, big-endian and strided arrays converted", () =>
    Effect.gen(function* () {
      const [ints, bools, swapped, strided, scalar] = (yield* py`
import numpy as np
(np.arange(3, dtype=np.int64), np.array([True, False, True]), np.arange(3, dtype=">f8"), np.arange(10, dtype=np.int16)[::3], np.float64(1.5))
`) as [unknown, unknown, unknown, unknown, unknown]
      expect(ints).toEqual(new BigInt64Array([0n, 1n, 2n]))
      expect(bools).toEqual(new Uint8Array([1, 0, 1]))
      expect(swapped).toEqual(new Float64Array([0, 1, 2]))
      expect(strided).toEqual(new Int16Array([0, 3, 6, 9]))
      expect(scalar).toBe(1.5)
    }))

  it.effect("dtypes without a mapping fail with the path, and a DataView does too", () =>
    Effect.gen(function* () {
      const complex = yield* Effect.flip(py`import numpy as np; {"z": np.ones(2, dtype=complex)}`)
      expect(complex._tag).toBe("EncodeError")
      if (complex._tag !== "EncodeError") return
      expect(complex.side).toBe("python")
      expect(complex.path).toEqual(["z"])
      expect(complex.detail).toContain("complex128")
      const objects = yield* Effect.flip(py`import numpy as np; np.array([1, "a"], dtype=object)`)
      expect(objects._tag === "EncodeError" && objects.detail).toContain(".tolist()")
      const view = yield* Effect.flip(py`${[new DataView(new ArrayBuffer(8))]}`)
      expect(view._tag === "EncodeError" && view.side === "node" && view.path).toEqual([0, 0])
    }))
})

layer(NodePython.layer({ workers: 1 }), { excludeTestServices: true })("Arrow tables", (it) => {
  it.effect("an apache-arrow Table becomes a pyarrow Table, a DataFrame result comes back as a Table", () =>
    Effect.gen(function* () {
      const rows = 100_000
      const price = new Float64Array(rows).map((_, i) => i / 2)
      const qty = new Int32Array(rows).map((_, i) => i % 7)
      const table = tableFromArrays({ price, qty })
      const back = yield* py`
import pyarrow as pa
t = ${table}
assert isinstance(t, pa.Table) and t.num_rows == ${rows}
assert str(t.schema.field("qty").type) == "int32"
df = t.to_pandas()
df["total"] = df["price"] * df["qty"]
df
`.pipe(Drop.returning(Arrow.schema))
      expect(back.numRows).toBe(rows)
      expect(back.schema.fields.map((f) => f.name)).toEqual(["price", "qty", "total"])
      expect(back.getChild("total")!.get(9)).toBe(4.5 * 2)
      expect(back.getChild("qty")!.get(13)).toBe(6)
    }))

  it.effect("pyarrow Tables and RecordBatches come back as Tables", () =>
    Effect.gen(function* () {
      const [t, b] = (yield* py`
import pyarrow as pa
(pa.table({"a": [1, 2, 3]}), pa.record_batch({"s": ["x", "y"]}))
`) as [InstanceType<typeof import("apache-arrow").Table>, InstanceType<typeof import("apache-arrow").Table>]
      expect(t.numRows).toBe(3)
      expect(t.getChild("a")!.toArray()).toEqual(new BigInt64Array([1n, 2n, 3n]))
      expect(b.getChild("s")!.toArray()).toEqual(["x", "y"])
    }))
})

describe("big arrays without shared memory", () => {
  it.live("through the pipe: 64 MiB Float64Array into numpy without a copy in Python, and back", () =>
    Effect.gen(function* () {
      const n = (64 * 1024 * 1024) / 8
      const data = new Float64Array(n)
      for (let i = 0; i < n; i += 4096) data[i] = i
      const [owns, aligned, back] = (yield* py`
a = ${data}
owns = a.flags.owndata      # False: a view of the request frame, not a copy
a *= 2
(owns, a.flags.aligned, a)
`) as [boolean, boolean, Float64Array]
      expect(owns).toBe(false)
      expect(aligned).toBe(true)
      expect(back).toBeInstanceOf(Float64Array)
      expect(back.length).toBe(n)
      expect(back[4096]).toBe(8192)
      expect(back[n - 4096]).toBe(2 * (n - 4096))
      expect(data[4096]).toBe(4096) // the caller's array is untouched
    }).pipe(Effect.provide(NodePython.layer({ workers: 1, sharedMemoryThreshold: false }))))
})

describe("without numpy or pyarrow in the worker", () => {
  it.live("typed arrays become array.array (1-d) and memoryview (n-d), and come back", () =>
    Effect.gen(function* () {
      const [kind, code, back] = (yield* py`
a = ${new Float64Array([1.5, 2.5])}
(type(a).__name__, a.typecode, a)
`) as [string, string, unknown]
      expect([kind, code]).toEqual(["array", "d"])
      expect(back).toEqual(new Float64Array([1.5, 2.5]))
      const [nd, shape, sum] = (yield* py`
m = ${NdArray.make(new Int32Array([1, 2, 3, 4, 5, 6]), [3, 2])}
(type(m).__name__, list(m.shape), sum(m.tolist()[2]))
`) as [string, Array<number>, number]
      expect([nd, shape, sum]).toEqual(["memoryview", [3, 2], 11])
      const view = yield* py`memoryview(bytearray(16)).cast("i", (2, 2))`.pipe(Drop.returning(NdArray.schema))
      expect(view.shape).toEqual([2, 2])
      expect(view.data).toEqual(new Int32Array(4))
    }).pipe(Effect.provide(withoutNumpy)))

  it.live("an Arrow table sent to a worker without pyarrow fails the drop with ModuleNotFoundError", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(py`${tableFromArrays({ a: new Float64Array([1]) })}.num_rows`)
      expect(e._tag).toBe("PythonException")
      if (e._tag !== "PythonException") return
      expect(e.type).toBe("ModuleNotFoundError")
      expect(e.message).toContain("install pyarrow")
      // the worker still serves
      expect(yield* py`1 + 1`).toBe(2)
    }).pipe(Effect.provide(withoutNumpy)))
})
