import { describe, expect, it, layer, type Vitest } from "@effect/vitest"
import { Drop, NdArray, py, Python } from "@snakebridge/core"
import * as Arrow from "@snakebridge/core/Arrow"
import { tableFromArrays } from "apache-arrow"
import { NodePython } from "@snakebridge/node"
import { Chunk, Deferred, Effect, Exit, Fiber, Layer, Logger, Schema, Scope, Stream } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import * as v8 from "node:v8"
import { runInNewContext } from "node:vm"
import { waitUntil } from "./helpers.js"

const MiB = 1024 * 1024

/** This process's open shared memory segments (files in /dev/shm, unlinked at once). */
const nodeSegments = (): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`/dev/shm/snakebridge-${process.pid}-`)
    } catch {
      return false
    }
  }).length

/** The worker's own segments (memfds, by inode: mmap holds a duplicate of each fd) and its mappings of this process's segments. */
const workerSegments = py`
import os
inodes = set()
for fd in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:snakebridge"):
            inodes.add(os.stat(f"/proc/self/fd/{fd}").st_ino)
    except OSError:
        pass
own = len(inodes)
with open("/proc/self/maps") as maps:
    mapped = sum("/dev/shm/snakebridge-" in line for line in maps)
return {"own": own, "mapped": mapped}
`.pipe(Drop.returning(Schema.Struct({ own: Schema.Number, mapped: Schema.Number })))

/** This process's mappings of workers' segments (a memfd each). */
const nodeMappings = (): number => fs.readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("/memfd:snakebridge")).length

/** The worker's segments named in replies and not yet given back by Node. */
const busySegments = py`
from snakebridge_worker import codec
return len(codec._outbox.busy)
`.pipe(Drop.returning(Schema.Number))

v8.setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

/** Collects garbage until every mapping of a worker's segment is gone and the worker has them back. */
const collected = waitUntil(
  Effect.sync(gc).pipe(
    Effect.zipRight(Effect.sleep("10 millis")),
    Effect.zipRight(Effect.orDie(busySegments)),
    Effect.map((busy) => busy === 0 && nodeMappings() === 0)
  ),
  (done) => done
)

const ramp = (n: number): Float64Array => {
  const a = new Float64Array(n)
  for (let i = 0; i < n; i++) a[i] = i
  return a
}

/** Defines `in_shared_memory(a)` in the worker: whether numpy's array wraps a mapping. */
const defineProbe = py`
import builtins, mmap

def in_shared_memory(a):
    base = a
    while getattr(base, "base", None) is not None:
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)

builtins.in_shared_memory = in_shared_memory
`

/** What the worker sees of an array: whether numpy wraps a mapping of shared memory, and if writable. */
const seen = (value: unknown) => py`
a = ${value}
return {
    "shared": in_shared_memory(a),
    "writable": bool(a.flags.writeable),
    "dtype": str(a.dtype),
    "shape": list(a.shape),
}
`

/**
 * What must hold whether a worker's segments are mapped or copied (`mapping`): results of every
 * kind arrive whole, and a segment Node cannot have is a ProtocolError, or WorkerLost if its
 * worker died.
 */
const eitherWay = (it: Vitest.MethodsNonLive<Python.Python, true>, mapping: boolean) => {
  it.effect("big results of every kind arrive whole: a typed array, bytes, an Arrow table, progress events", () =>
    Effect.gen(function* () {
      const arrays = yield* py`
import numpy as np
np.arange(${MiB}, dtype=np.float64) * 3
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)), Effect.map((a) => [a.length, a[MiB - 1]]))
      expect(arrays).toEqual([MiB, 3 * (MiB - 1)])
      const bytes = yield* py`b"q" * ${3 * MiB}`.pipe(Drop.returning(Schema.Uint8ArrayFromSelf), Effect.map((b) => [b.length, b[3 * MiB - 1]]))
      expect(bytes).toEqual([3 * MiB, 0x71])
      const table = yield* py`
import numpy as np, pyarrow as pa
pa.table({"x": np.arange(${MiB}, dtype=np.int64)})
`.pipe(Drop.returning(Arrow.schema), Effect.map((t) => [t.numRows, t.getChild("x")!.get(MiB - 1)]))
      expect(table).toEqual([MiB, BigInt(MiB - 1)])
      const events: Array<number> = []
      yield* py`
import numpy as np, snakebridge
snakebridge.emit(np.full(${MiB / 8}, 1.0))
snakebridge.emit(np.full(${MiB / 8}, 2.0))
`.pipe(Drop.onProgress((e) => Effect.sync(() => events.push((e as Float64Array)[MiB / 8 - 1]!))))
      expect(events).toEqual([1, 2])
      // Changed in place where Node lent it (named there), and a view of it (copied).
      const inPlace = yield* py`
a = ${ramp(MiB / 8)}
a *= 2
return [a, a[1:]]
`.pipe(
        Drop.returning(Schema.Tuple(Schema.instanceOf(Float64Array), Schema.instanceOf(Float64Array))),
        Effect.map(([whole, view]) => [whole.length, whole[3], whole[MiB / 8 - 1], view.length, view[0]])
      )
      expect(inPlace).toEqual([MiB / 8, 6, MiB / 4 - 2, MiB / 8 - 1, 2])
      yield* collected
      expect(yield* busySegments).toBe(0)
    }))

  it.effect("a worker that names a segment of Node's that Node did not lend it: ProtocolError", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(py`
import os, struct, time
from snakebridge_worker import codec
head = bytes((ord("d"), 1, 0)) + struct.pack(">I", 1024)
ext = head + struct.pack(">IIQ", os.getppid(), 1, 8192)  # Node's fd 1: its stdout
body = codec.encode({"t": "emit", "id": 0, "value": None})[:-1] + b"\xc9" + struct.pack(">I", len(ext)) + b"\x06" + ext
os.write(4, struct.pack(">I", len(body)) + body)
time.sleep(30)
`)
      expect(error).toMatchObject({ _tag: "ProtocolError" })
      expect((error as { detail: string }).detail).toContain("did not lend")
      yield* waitUntil(Python.workers, (ws) => ws.length === 1)
    }))

it.effect("a worker that names a segment Node cannot read: ProtocolError for the drop, the worker replaced", () =>
    Effect.gen(function* () {
      const [before] = yield* Python.workers
      const error = yield* Effect.flip(py`
import os, struct, time
from snakebridge_worker import codec
# An emit whose array claims to be in segment 999 of this process, which has no fd 999.
head = bytes((ord("d"), 1, 0)) + struct.pack(">I", 1024)
ext = head + struct.pack(">IIQ", os.getpid(), 999, 8192)
body = codec.encode({"t": "emit", "id": 0, "value": None})[:-1] + b"\xc9" + struct.pack(">I", len(ext)) + b"\x06" + ext
os.write(4, struct.pack(">I", len(body)) + body)
time.sleep(30)
`)
      expect(error).toMatchObject({ _tag: "ProtocolError", workerId: before!.id })
      expect((error as { detail: string }).detail).toContain(mapping ? "cannot map shared memory" : "cannot read shared memory")
      yield* waitUntil(Python.workers, (ws) => ws.length === 1 && ws[0]!.pid !== before!.pid)
      expect(yield* py`1 + 1`).toBe(2)
    }))

it.effect("a worker killed just after it names a segment of its own: WorkerLost (the segment went with it), not ProtocolError", () =>
    Effect.gen(function* () {
      const [before] = yield* Python.workers
      const error = yield* Effect.flip(py`
import numpy as np, os, signal, snakebridge
# Node reads the second array only once it has read the first (32 MiB): by then this process is gone.
snakebridge.emit(np.full(2**22, 1.0))
snakebridge.emit(np.full(2**18, 2.0))
os.kill(os.getpid(), signal.SIGKILL)
`.pipe(Drop.onProgress(() => Effect.void)))
      expect(error).toMatchObject({ _tag: "WorkerLost", workerId: before!.id, signal: "SIGKILL" })
      yield* waitUntil(Python.workers, (ws) => ws.length === 1 && ws[0]!.pid !== before!.pid)
      expect(yield* py`1 + 1`).toBe(2)
    }))

}

layer(NodePython.layer({ workers: 1, sharedMemoryThreshold: MiB }), { excludeTestServices: true })(
  "shared memory for big typed arrays",
  (it) => {
    it.effect("an array at the threshold is mapped by numpy in place, writable; one below goes through the pipe", () =>
      Effect.gen(function* () {
        yield* defineProbe
        expect(yield* seen(new Float64Array(MiB / 8))).toEqual({ shared: true, writable: true, dtype: "float64", shape: [MiB / 8] })
        expect(yield* seen(new Float64Array(MiB / 8 - 1))).toMatchObject({ shared: false, writable: true })
        const nd = NdArray.make(new Int32Array(MiB), [512, 2048])
        expect(yield* seen(nd)).toEqual({ shared: true, writable: true, dtype: "int32", shape: [512, 2048] })
        expect(yield* seen(new BigInt64Array(MiB / 8))).toMatchObject({ shared: true, dtype: "int64" })
      }))

    it.effect("64 MiB both ways: numpy changes it in place, the result comes back whole, the caller's array is untouched", () =>
      Effect.gen(function* () {
        const data = ramp((64 * MiB) / 8)
        const back = yield* py`
a = ${data}
a *= 2
a
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
        expect(back.length).toBe(data.length)
        expect(back[1]).toBe(2)
        expect(back[data.length - 1]).toBe(2 * (data.length - 1))
        expect(data[1]).toBe(1)
        const nd = yield* py`
import numpy as np
np.arange(3 * 2**20, dtype=np.float32).reshape(3, 2**20)
`
        expect(nd).toBeInstanceOf(NdArray.NdArray)
        expect((nd as NdArray.NdArray).shape).toEqual([3, 2 ** 20])
        expect((nd as NdArray.NdArray).data[3 * 2 ** 20 - 1]).toBe(3 * 2 ** 20 - 1)
      }))

    it.effect("segments are reused: repeated transfers keep one segment open on each side and no mapping in the worker", () =>
      Effect.gen(function* () {
        const data = ramp((4 * MiB) / 8)
        const counts = []
        for (let i = 0; i < 6; i++) {
          expect((yield* py`${data} + ${i}`.pipe(Drop.returning(Schema.instanceOf(Float64Array))))[10]).toBe(10 + i)
          // The result is mapped where the worker wrote it; collected, its segment goes back.
          yield* collected
          counts.push({ node: nodeSegments(), ...(yield* workerSegments) })
        }
        expect(counts.every((c) => c.mapped === 0)).toBe(true)
        expect(new Set(counts.slice(1).map((c) => `${c.node}/${c.own}`)).size).toBe(1)
      }))

    it.effect("a big result is mapped, not copied: the worker writes its segment again only once the result is collected, which may outlive the worker", () =>
      Effect.gen(function* () {
        yield* collected
        const first = yield* py`${ramp((4 * MiB) / 8)} * 2`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
        expect(nodeMappings()).toBe(1)
        expect(yield* busySegments).toBe(1)
        // Another big result while the first is held goes into another segment.
        const second = yield* py`
import numpy as np
np.full(${(4 * MiB) / 8}, -1.0)
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
        expect(yield* busySegments).toBe(2)
        expect([first[0], first[12345], first[first.length - 1]]).toEqual([0, 24690, 2 * (first.length - 1)])
        expect(second[99]).toBe(-1)
        // Writable, as a copy would be, and the worker's death takes nothing from it.
        first[1] = 7
        const [worker] = yield* Python.workers
        yield* Effect.flip(py`import os, signal; os.kill(os.getpid(), signal.SIGKILL)`)
        yield* waitUntil(Python.workers, (ws) => ws.length === 1 && ws[0]!.pid !== worker!.pid)
        expect([first[1], first[first.length - 1], second[second.length - 1]]).toEqual([7, 2 * (first.length - 1), -1])
        expect(nodeMappings()).toBe(2)
        yield* defineProbe
      }))

    it.effect("an array changed in place comes back in the segment Node lent: no copy either way, and the segment is not lent again while the result lives", () =>
      Effect.gen(function* () {
        yield* collected
        const before = nodeMappings()
        const doubled = yield* py`
a = ${ramp((4 * MiB) / 8)}
a *= 2
a
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
        expect([doubled[1], doubled[doubled.length - 1]]).toEqual([2, 2 * (doubled.length - 1)])
        // Nothing went into the worker's segments, and Node maps none of them.
        expect(yield* busySegments).toBe(0)
        expect(nodeMappings()).toBe(before)
        // The next big argument gets another segment; the result is untouched by it.
        expect(yield* py`float(${new Float64Array((4 * MiB) / 8).fill(-1)}.sum())`).toBe(-(MiB / 2))
        expect(doubled[1]).toBe(2)
      }))

    it.effect("an array the drop both keeps and returns comes back as a copy: changing the kept one later changes nothing in Node", () =>
      Effect.gen(function* () {
        yield* collected
        const result = yield* Effect.scoped(
          Effect.gen(function* () {
            const kept = yield* Drop.handle(py`
a = ${ramp(MiB / 8)}
a += 1
a
`)
            // A drop that keeps the lent array in its handle and returns it too.
            const both = yield* py`
import builtins
a = ${ramp(MiB / 8)}
a *= 3
builtins.both = a
a
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
            expect(yield* busySegments).toBe(1) // the copy, in a segment of the worker's own
            yield* py`
import builtins
builtins.both[:] = -1
${kept}[:] = -1
`
            return both
          })
        )
        expect([result[0], result[5], result[result.length - 1]]).toEqual([0, 15, 3 * (result.length - 1)])
        yield* py`import builtins; del builtins.both`
      }))

    it.effect("Python.sharedArray: crosses without a copy at any size, a change in place is seen here, and the result is the same memory", () =>
      Effect.gen(function* () {
        yield* defineProbe
        const before = nodeSegments()
        const released = yield* Effect.scoped(
          Effect.gen(function* () {
            const a = yield* Python.sharedArray(Float64Array, 1000) // 8 KB: far below the threshold
            a.set(ramp(1000))
            expect(nodeSegments()).toBe(before + 1)
            expect(yield* seen(a)).toMatchObject({ shared: true, writable: true, shape: [1000] })
            yield* py`${a} *= 2`
            expect([a[1], a[999]]).toEqual([2, 1998])
            const result = yield* py`
x = ${a}
x += 1
x
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
            expect(result.buffer).toBe(a.buffer)
            expect([a[1], result[999]]).toEqual([3, 1999])
            // With a shape too; a view that does not start at the array's start is copied.
            expect(yield* seen(NdArray.make(a, [10, 100]))).toMatchObject({ shared: true, shape: [10, 100] })
            yield* py`${a.subarray(1)} *= 0` // a copy: its change stays there
            expect(a[1]).toBe(3)
            // Kept by a drop, it is still shared: a change here is seen there.
            const kept = yield* Drop.handle(py`${a}`)
            a[0] = 42
            expect(yield* py`float(${kept}[0])`).toBe(42)
            expect(nodeSegments()).toBe(before + 1) // nothing lent for any of it
            return a
          })
        )
        // Released: still readable, and an ordinary array from now on.
        expect(released[999]).toBe(1999)
        expect(yield* seen(released)).toMatchObject({ shared: false })
      }))

    it.effect("Python.sharedArray released while a drop has it: its segment stays open until that drop is done", () =>
      Effect.gen(function* () {
        const before = nodeSegments()
        const scope = yield* Scope.make()
        const a = yield* Python.sharedArray(Float64Array, 100).pipe(Scope.extend(scope))
        a.fill(5)
        const started = yield* Deferred.make<void>()
        const drop = yield* py`
import snakebridge, time
snakebridge.emit(1)
time.sleep(0.3)
float(${a}.sum())
`.pipe(Drop.onProgress(() => Deferred.succeed(started, undefined)), Effect.fork)
        yield* Deferred.await(started)
        yield* Scope.close(scope, Exit.void)
        expect(nodeSegments()).toBe(before + 1) // released, but the drop has it
        expect(yield* Fiber.join(drop)).toBe(500)
        expect(nodeSegments()).toBe(before)
        expect(a[99]).toBe(5)
      }))

    it.effect("big results nobody holds do not pile up: V8 counts their mappings as memory, collects them, and the worker reuses their segments", () =>
      Effect.gen(function* () {
        yield* collected
        // 1.25 GB of results, each dropped at once, in a loop that allocates almost nothing else.
        for (let i = 0; i < 40; i++) {
          const last = yield* py`
import numpy as np
np.full(${(32 * MiB) / 8}, float(${i}))
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)), Effect.map((a) => a[a.length - 1]))
          expect(last).toBe(i)
        }
        const { own } = yield* workerSegments
        expect(own).toBeLessThanOrEqual(8)
      }))

    it.effect("an array the drop keeps stays intact: its segment is never written again, and unmapped once released", () =>
      Effect.gen(function* () {
        const before = nodeSegments()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const kept = yield* Drop.handle(py`${ramp(MiB / 8)}`)
            expect(yield* py`in_shared_memory(${kept})`).toBe(true)
            // Node closed the kept segment: the next array gets another one.
            expect(nodeSegments()).toBe(before - 1)
            const other = new Float64Array(MiB / 8).fill(-1)
            expect(yield* py`float(${other}.sum())`).toBe(-(MiB / 8))
            expect(yield* py`float(${kept}[12345])`).toBe(12345)
            expect(yield* py`float(${kept}.sum())`).toBe(((MiB / 8) * (MiB / 8 - 1)) / 2)
            expect((yield* workerSegments).mapped).toBe(1)
          })
        )
        expect((yield* workerSegments).mapped).toBe(0)
      }))

    it.effect("Arrow tables above the threshold cross through shared memory both ways, intact; a kept table keeps its segment", () =>
      Effect.gen(function* () {
        const rows = 200_000
        const table = tableFromArrays({ x: ramp(rows), n: Int32Array.from({ length: rows }, (_, i) => i % 7) })
        // Into Python: a pyarrow Table over the mapping of Node's segment.
        const seenThere = yield* py`
import pyarrow.compute as pc
t = ${table}
with open("/proc/self/maps") as maps:
    mapped = sum("/dev/shm/snakebridge-" in line for line in maps)
return [t.num_rows, pc.sum(t["x"]).as_py(), pc.sum(t["n"]).as_py(), mapped]
`.pipe(Drop.returning(Schema.Tuple(Schema.Number, Schema.Number, Schema.Number, Schema.Number)))
        expect(seenThere).toEqual([rows, (rows * (rows - 1)) / 2, Array.from({ length: rows }, (_, i) => i % 7).reduce((a, b) => a + b, 0), 1])
        // Back to Node: out of a segment of the worker's own (tests/test_shm.py shows the encoding).
        const back = yield* py`
import numpy as np, pyarrow as pa
pa.table({"x": np.arange(${rows}, dtype=np.float64) * 2})
`.pipe(Drop.returning(Arrow.schema))
        expect(back.numRows).toBe(rows)
        expect(back.getChild("x")!.get(rows - 1)).toBe(2 * (rows - 1))
        // A table the drop keeps: its segment is never written again.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const kept = yield* Drop.handle(py`${table}`)
            const other = tableFromArrays({ x: new Float64Array(rows).fill(-1), n: new Int32Array(rows) })
            expect(yield* py`${other}.num_rows`).toBe(rows)
            expect(yield* py`
import pyarrow.compute as pc
pc.sum(${kept}["x"]).as_py()
`).toBe((rows * (rows - 1)) / 2)
          })
        )
        expect((yield* workerSegments).mapped).toBe(0)
      }))

    it.effect("a drop that raises gives its segment back for reuse", () =>
      Effect.gen(function* () {
        const before = nodeSegments()
        const error = yield* Effect.flip(py`
a = ${new Float64Array(MiB / 8)}
raise ValueError(f"refused {a.nbytes}")
`)
        expect(error).toMatchObject({ _tag: "PythonException", type: "ValueError", message: `refused ${MiB}` })
        expect(nodeSegments()).toBe(before)
        expect((yield* workerSegments).mapped).toBe(0)
      }))

    it.effect("a stream keeps its arguments while it runs: the items are right, the mapping goes with the generator", () =>
      Effect.gen(function* () {
        const items = yield* py`
a = ${ramp(MiB / 8)}
def items():
    for i in range(3):
        yield float(a[i * 1000])
return items()
`.pipe(Drop.stream(Schema.Number, { chunkSize: 1 }), Stream.runCollect)
        expect(Chunk.toArray(items)).toEqual([0, 1000, 2000])
        expect((yield* workerSegments).mapped).toBe(0)
      }))

    it.effect("progress events with big arrays arrive whole and in order, all before the result", () =>
      Effect.gen(function* () {
        const seen: Array<number> = []
        const result = yield* py`
import numpy as np, snakebridge
for i in range(4):
    snakebridge.emit(np.full(2**18, i, dtype=np.float64) if i % 2 == 0 else i)
return np.full(2**18, 9.0)
`.pipe(
          Drop.onProgress((event) =>
            Effect.sync(() => seen.push(event instanceof Float64Array ? event[2 ** 18 - 1]! : (event as number)))
          ),
          Drop.returning(Schema.instanceOf(Float64Array))
        )
        expect(seen).toEqual([0, 1, 2, 3])
        expect(result[2 ** 18 - 1]).toBe(9)
      }))

    it.effect("a worker killed with SIGKILL mid-drop: WorkerLost, its segment closed, not reused; the next worker serves", () =>
      Effect.gen(function* () {
        // A segment given back for reuse, which the next array takes.
        expect(yield* py`float(${ramp(MiB / 8)}[3])`).toBe(3)
        const before = nodeSegments()
        expect(before).toBeGreaterThan(0)
        const error = yield* Effect.flip(py`
import os, signal
a = ${ramp(MiB / 8)}
os.kill(os.getpid(), signal.SIGKILL)
`)
        expect(error).toMatchObject({ _tag: "WorkerLost", signal: "SIGKILL" })
        expect(nodeSegments()).toBe(before - 1)
        yield* defineProbe
        const back = yield* py`${ramp(MiB / 8)} * 3`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
        expect(back[7]).toBe(21)
      }))

    it.effect("a drop interrupted while it holds a mapped array: the timeout returns, the worker serves on, nothing stays mapped", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          py`
import time
a = ${ramp(MiB / 8)}
time.sleep(30)
`.pipe(Effect.timeout("300 millis"))
        )
        expect(error._tag).toBe("TimeoutException")
        expect(yield* py`${ramp(MiB / 8)}[99]`).toBe(99)
        expect((yield* workerSegments).mapped).toBe(0)
      }))

    eitherWay(it, true)
  }
)

layer(NodePython.layer({ workers: 1, sharedMemoryThreshold: MiB, sharedMemoryMapping: false }), { excludeTestServices: true })(
  "big results copied (sharedMemoryMapping: false)",
  (it) => {
    it.effect("a result is read into new memory: nothing mapped, the worker's segment back at once and reused", () =>
      Effect.gen(function* () {
        yield* collected // what the tests before left mapped
        const owned = []
        for (let i = 0; i < 4; i++) {
          const back = yield* py`${ramp((4 * MiB) / 8)} + ${i}`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
          expect(back[10]).toBe(10 + i)
          expect(nodeMappings()).toBe(0)
          expect(yield* busySegments).toBe(0)
          owned.push((yield* workerSegments).own)
        }
        expect(owned).toEqual([1, 1, 1, 1])
      }))

    eitherWay(it, false)
  }
)

describe("shared memory for big bytes", () => {
  it.live("a big Uint8Array is `bytes` in Python and big bytes come back as a Uint8Array, both through reused segments", () =>
    Effect.gen(function* () {
      const data = new Uint8Array(4 * MiB).map((_, i) => (i * 7) % 251)
      const before = nodeSegments()
      const reversed = py`
b = ${data}
assert type(b) is bytes, type(b)
return b[::-1]
`.pipe(
        Drop.returning(Schema.Uint8ArrayFromSelf),
        Effect.map((back) => [back.length, back[0], back[12345], back[data.length - 1]])
      )
      for (let i = 0; i < 3; i++) {
        expect(yield* reversed).toEqual([data.length, data[data.length - 1], data[data.length - 12346], data[0]])
        yield* collected
      }
      // One segment on each side, reused by the three round trips, nothing left mapped.
      expect(nodeSegments()).toBe(before + 1)
      expect(yield* workerSegments).toEqual({ own: 1, mapped: 0 })
      // Below the threshold the pipe carries them.
      expect(yield* py`len(${new Uint8Array(MiB - 1)})`).toBe(MiB - 1)
      expect(yield* py`b"x" * (${MiB} - 1)`.pipe(Drop.returning(Schema.Uint8ArrayFromSelf), Effect.map((b) => b.length))).toBe(MiB - 1)
      expect(nodeSegments()).toBe(before + 1)
      // A reply that fails to encode after its big bytes were written gives their segment back.
      const error = yield* Effect.flip(py`[frozenset([b"y" * ${2 * MiB}]), object()]`)
      expect(error._tag).toBe("EncodeError")
      expect((yield* py`b"z" * ${2 * MiB}`.pipe(Drop.returning(Schema.Uint8ArrayFromSelf)))[2 * MiB - 1]).toBe(0x7a)
      yield* collected
      expect(yield* workerSegments).toEqual({ own: 1, mapped: 0 })
    }).pipe(Effect.provide(NodePython.layer({ workers: 1, sharedMemoryThreshold: MiB }))))
})

describe("Python.sharedArray where this process cannot map memory", () => {
  it.live("SharedMemoryUnavailable, saying why: no addon mapping, or no shared memory at all", () =>
    Effect.gen(function* () {
      const unmapped = yield* Effect.flip(
        Effect.scoped(Python.sharedArray(Float64Array, 10)).pipe(
          Effect.provide(NodePython.layer({ workers: 1, sharedMemoryMapping: false }))
        )
      )
      expect(unmapped).toMatchObject({ _tag: "SharedMemoryUnavailable" })
      expect(unmapped.reason).toContain("sharedMemoryMapping")
      const off = yield* Effect.flip(
        Effect.scoped(Python.sharedArray(Int32Array, 10)).pipe(
          Effect.provide(NodePython.layer({ workers: 1, sharedMemoryThreshold: false }))
        )
      )
      expect(off.reason).toContain("sharedMemoryThreshold")
    }))
})

describe("results that outlive their layer", () => {
  it.live("an array changed in place, and one the worker wrote, stay readable after the layer and its segments are closed", () =>
    Effect.gen(function* () {
      const [inPlace, theirs] = yield* Effect.scoped(
        Effect.gen(function* () {
          const inPlace = yield* py`
a = ${ramp((2 * MiB) / 8)}
a += 1
a
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
          const theirs = yield* py`
import numpy as np
np.arange(${(2 * MiB) / 8}, dtype=np.float64) * 3
`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
          return [inPlace, theirs] as const
        }).pipe(Effect.provide(NodePython.layer({ workers: 1, sharedMemoryThreshold: MiB })))
      )
      // The pool, its workers and Node's segments are gone; what they mapped lives with the results.
      for (let i = 0; i < 3; i++) {
        gc()
        yield* Effect.sleep("10 millis")
      }
      const last = (2 * MiB) / 8 - 1
      expect([inPlace[0], inPlace[last], theirs[1], theirs[last]]).toEqual([1, last + 1, 3, 3 * last])
      inPlace[0] = 42
      expect(inPlace[0]).toBe(42)
    }))
})

describe("shared memory off", () => {
  it.live("sharedMemoryThreshold: false: every array goes through the pipe both ways, no segment anywhere", () =>
    Effect.gen(function* () {
      const before = nodeSegments()
      yield* defineProbe
      expect(yield* seen(new Float64Array(4 * MiB))).toMatchObject({ shared: false, writable: true })
      const back = yield* py`${ramp(MiB)} * 2`.pipe(Drop.returning(Schema.instanceOf(Float64Array)))
      expect(back[MiB - 1]).toBe(2 * (MiB - 1))
      expect(nodeSegments()).toBe(before)
      expect(yield* workerSegments).toEqual({ own: 0, mapped: 0 })
      expect(yield* py`import os; return os.environ.get("SNAKEBRIDGE_SHM_THRESHOLD")`).toBeNull()
    }).pipe(Effect.provide(NodePython.layer({ workers: 1, sharedMemoryThreshold: false }))))

  it.live("a directory that will not take a segment: a warning says so, and the pipe carries everything", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const capture = Logger.make(({ message }) => {
        logs.push(String(Array.isArray(message) ? message[0] : message))
      })
      const missing = fileURLToPath(new URL("fixtures/no-such-dir", import.meta.url))
      const back = yield* Effect.scoped(
        py`${ramp(MiB)} + 1`.pipe(
          Drop.returning(Schema.instanceOf(Float64Array)),
          Effect.provide(
            NodePython.layer({ workers: 1, sharedMemoryDir: missing }).pipe(
              Layer.provide(Logger.replace(Logger.defaultLogger, capture))
            )
          )
        )
      )
      expect(back[5]).toBe(6)
      expect(logs.some((l) => l.includes("shared memory off") && l.includes(missing))).toBe(true)
    }))

  it.live("a worker without numpy copies the mapped array into an array.array and lets the segment go", () =>
    Effect.gen(function* () {
      const [kind, value] = (yield* py`
a = ${ramp(MiB / 8)}
(type(a).__name__, a[4321])
`) as [string, number]
      expect([kind, value]).toEqual(["array", 4321])
      expect((yield* workerSegments).mapped).toBe(0)
    }).pipe(
      Effect.provide(
        NodePython.layer({
          workers: 1,
          env: { PYTHONPATH: fileURLToPath(new URL("fixtures/without-numpy", import.meta.url)) }
        })
      )
    ))
})

describe("a full tmpfs", () => {
  // A tmpfs of 3 MiB as sharedMemoryDir: root may mount one (CI runs as root).
  const root = process.getuid?.() === 0
  it.live.skipIf(!root)("an argument that does not fit goes through the pipe: an error from the allocation, never a SIGBUS in a mapping", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        const dir = fs.mkdtempSync("/tmp/snakebridge-tiny-")
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dir])
        return dir
      }),
      (dir) =>
        Effect.gen(function* () {
          yield* defineProbe
          const probe = (...arrays: Array<Float64Array>) => py`return [[in_shared_memory(a), float(a[-1])] for a in ${arrays}]`
          const filled = (mib: number, x: number) => new Float64Array((mib * MiB) / 8).fill(x)
          // 2 MiB fits; 4 MiB does not (the free 2 MiB segment is too small, a new one cannot be
          // had), nor does a second 2 MiB while the first is lent; the segment that fits is reused.
          expect(yield* probe(filled(2, 1))).toEqual([[true, 1]])
          expect(yield* probe(filled(4, 2))).toEqual([[false, 2]])
          expect(yield* probe(filled(2, 3), filled(2, 4))).toEqual([[true, 3], [false, 4]])
          expect(yield* probe(filled(2, 5))).toEqual([[true, 5]])
        }).pipe(Effect.provide(NodePython.layer({ workers: 1, sharedMemoryThreshold: MiB, sharedMemoryDir: dir }))),
      (dir) => Effect.sync(() => {
        execFileSync("umount", ["--lazy", dir]) // this process unmaps its segments when it collects them
        fs.rmdirSync(dir)
      })
    ))
})

describe("shared memory across a pool", () => {
  it.live("two workers, many big arrays in flight at once: each result is its own input's", () =>
    Effect.gen(function* () {
      const results = yield* Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        (i) => py`${new Float64Array(MiB / 8).fill(i)} * 2`.pipe(Drop.returning(Schema.instanceOf(Float64Array))),
        { concurrency: 6 }
      )
      results.forEach((r, i) => {
        expect(r[0]).toBe(2 * i)
        expect(r[r.length - 1]).toBe(2 * i)
      })
      expect((yield* Python.workers).length).toBe(2)
    }).pipe(Effect.provide(NodePython.layer({ workers: 2, concurrency: 2 }))))
})
