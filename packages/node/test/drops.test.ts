import { describe, expect, it, layer } from "@effect/vitest"
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Cause, Context, Effect, Either, Layer, Logger, Runtime, Schema } from "effect"
import fc from "fast-check"

// Live clock: a shared pool of real processes, where timeouts must really fire.
layer(NodePython.layer({ workers: 1 }), { excludeTestServices: true })("drops", (it) => {
  it.effect("returns the value of a top-level return", () =>
    Effect.gen(function* () {
      const n = yield* py`
x = ${20}
return x + 1
`.pipe(Drop.returning(Schema.Number))
      expect(n).toBe(21)
    }))

  it.effect("returns the last expression when there is no return, else None", () =>
    Effect.gen(function* () {
      expect(yield* py`
a = ${[1, 2, 3]}
sum(a) * 2
`).toBe(12)
      expect(yield* py`x = 1`).toBe(null)
      expect(yield* py`import math; math.floor(${2.7})`).toBe(2)
    }))

  it.effect("runs top-level await", () =>
    Effect.gen(function* () {
      const v = yield* py`
import asyncio
await asyncio.sleep(0.01)
async def double(x):
    await asyncio.sleep(0)
    return x * 2
return await double(${21})
`
      expect(v).toBe(42)
    }))

  it.effect("dedents code written indented inside TypeScript", () =>
    Effect.gen(function* () {
      const v = yield* py`
        total = 0
        for i in range(${4}):
            total += i
        return total
      `
      expect(v).toBe(6)
    }))

  it.effect("keeps names local to one run of a drop", () =>
    Effect.gen(function* () {
      yield* py`leaked = 1`
      const e = yield* Effect.flip(py`return leaked`)
      expect(e._tag === "PythonException" && e.type).toBe("NameError")
    }))

  it.effect("sends interpolated strings as data: quotes, newlines and code come back byte-identical (property)", () =>
    Effect.gen(function* () {
      const payloads = [
        `"""`,
        `'''\n"""`,
        `\\`,
        `"); __import__('os')._exit(3); ("`,
        `__import__('os').system('kill -9 $PPID')`,
        "line1\nline2\r\n\ttab",
        "\u0000nul and 🐍 and \u2028"
      ]
      const echo = (s: string) => py`return ${s}`.pipe(Drop.returning(Schema.String))
      for (const p of payloads) expect(yield* echo(p)).toBe(p)
      const runtime = yield* Effect.runtime<Python.Python>()
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.string({ unit: "binary" }), async (s) => {
            const text = s.replace(/[\uD800-\uDFFF]/g, "") // lone surrogates are not Unicode text
            expect(await Runtime.runPromise(runtime)(echo(text))).toBe(text)
          }),
          { numRuns: 200 }
        )
      )
      // Had any payload run, the worker would have exited: it is the same one, alive.
      const [worker] = yield* Python.workers
      expect(yield* py`import os; return os.getpid()`).toBe(worker!.pid)
    }))

  it.effect("round-trips every value of the mapping table", () =>
    Effect.gen(function* () {
      const date = new Date("2025-06-01T10:20:30.456Z")
      const value = {
        none: null,
        t: true,
        f: false,
        int: 42,
        neg: -7,
        float: 1.25,
        nan: NaN,
        inf: Infinity,
        ninf: -Infinity,
        negZero: -0,
        big: 2n ** 64n + 1n,
        negBig: -(2n ** 70n),
        str: "naïve 🐍\u0000end",
        list: [1, "two", [3]],
        obj: { nested: { deep: [true] } },
        map: new Map<unknown, unknown>([[1, "one"], [2, "two"]]),
        set: new Set([1, 2, 3]),
        date,
        bytes: new Uint8Array([0, 255, 10, 13])
      }
      const back = (yield* py`
v = ${value}
assert v["none"] is None and v["t"] is True and isinstance(v["int"], int)
assert isinstance(v["big"], int) and v["big"] == 2**64 + 1
assert isinstance(v["map"], dict) and v["map"][1] == "one"
assert isinstance(v["set"], set)
assert v["date"].tzinfo is not None and v["date"].microsecond == 456000
assert isinstance(v["bytes"], bytes) and v["bytes"] == bytes([0, 255, 10, 13])
import math
assert math.isnan(v["nan"]) and math.copysign(1.0, v["negZero"]) == -1.0
return v
`) as Record<string, unknown>
      expect(back).toEqual({ ...value, negZero: -0 })
      expect(Object.is(back.negZero, -0)).toBe(true)
      expect(back.big).toBe(2n ** 64n + 1n)
      expect(back.negBig).toBe(-(2n ** 70n))
      expect((back.date as Date).getTime()).toBe(date.getTime())
    }))

  it.effect("brings Python-only shapes back as their nearest TypeScript value", () =>
    Effect.gen(function* () {
      const v = yield* py`
import datetime
return {
  "tuple": (1, 2),
  "frozen": frozenset([1]),
  "tuple_key": {(1, 2): "a"},
  "bytearray": bytearray(b"ab"),
  "naive": datetime.datetime(2020, 1, 2, 3, 4, 5),
  "small": 2**53 - 1,
  "huge": -(2**100),
}
`
      expect(v).toEqual({
        tuple: [1, 2],
        frozen: new Set([1]),
        tuple_key: new Map([[[1, 2], "a"]]),
        bytearray: new Uint8Array([97, 98]),
        naive: new Date("2020-01-02T03:04:05Z"),
        small: 2 ** 53 - 1,
        huge: -(2n ** 100n)
      })
    }))

  it.effect("fails with an EncodeError naming the path of a value that cannot cross", () =>
    Effect.gen(function* () {
      const toPython = yield* Effect.flip(py`return ${{ a: [1, { f: () => 1 }] }}`)
      expect(toPython._tag).toBe("EncodeError")
      if (toPython._tag !== "EncodeError") return
      expect(toPython.side).toBe("node")
      expect(toPython.path).toEqual([0, "a", 1, "f"])
      const fromPython = yield* Effect.flip(py`return {"rows": [1, object()]}`)
      expect(fromPython._tag).toBe("EncodeError")
      if (fromPython._tag !== "EncodeError") return
      expect(fromPython.side).toBe("python")
      expect(fromPython.path).toEqual(["rows", 1])
    }))

  it.effect("decodes with a Schema and fails with its ParseError, path included", () =>
    Effect.gen(function* () {
      const Row = Schema.Struct({ name: Schema.String, qty: Schema.Int })
      const ok = yield* py`return [{"name": "a", "qty": 2}]`.pipe(Drop.returning(Schema.Array(Row)))
      expect(ok).toEqual([{ name: "a", qty: 2 }])
      const bad = yield* Effect.flip(py`return [{"name": "a", "qty": "2"}]`.pipe(Drop.returning(Schema.Array(Row))))
      expect(bad._tag).toBe("ParseError")
      expect(String(bad)).toContain("[0]")
      expect(String(bad)).toContain('["qty"]')
    }))

  it.effect("decodes in the reply's callback, yet a schema that throws, waits or needs a service behaves as in a fiber", () =>
    Effect.gen(function* () {
      // A transformation that throws is a defect of that drop: the worker and its channel are fine.
      const Throws = Schema.transform(Schema.Number, Schema.Number, {
        strict: true,
        decode: () => {
          throw new Error("decoder bug")
        },
        encode: (n) => n
      })
      const exit = yield* Effect.exit(py`return ${1}`.pipe(Drop.returning(Throws)))
      expect(exit._tag === "Failure" && Cause.isDie(exit.cause)).toBe(true)
      expect(String(exit._tag === "Failure" ? Cause.squash(exit.cause) : "")).toContain("decoder bug")
      // Asynchronous decoding, and decoding that needs a service of the caller's context.
      const Later = Schema.transformOrFail(Schema.Number, Schema.Number, {
        strict: true,
        decode: (n) => Effect.as(Effect.sleep("5 millis"), n * 2),
        encode: (n) => Effect.succeed(n)
      })
      class Offset extends Context.Tag("Offset")<Offset, number>() {}
      const Shifted = Schema.transformOrFail(Schema.Number, Schema.Number, {
        strict: true,
        decode: (n) => Effect.map(Offset, (o) => n + o),
        encode: (n) => Effect.succeed(n)
      })
      expect(yield* py`return ${20}`.pipe(Drop.returning(Later))).toBe(40)
      expect(yield* py`return ${20}`.pipe(Drop.returning(Shifted), Effect.provideService(Offset, 100))).toBe(120)
      expect(yield* py`return ${2} + 1`.pipe(Drop.returning(Schema.Number))).toBe(3)
    }))

  it.effect("decodes through a Python service of the caller's own making too", () =>
    Effect.gen(function* () {
      const real = yield* Python.Python
      // A service that is not the one NodePython.layer builds: its own run, then the schema.
      const own = Python.Python.of({ ...real, run: (drop) => Effect.map(real.run(drop), (v) => (v as number) * 10) })
      const n = yield* py`return ${4}`.pipe(Drop.returning(Schema.Number), Effect.provideService(Python.Python, own))
      expect(n).toBe(40)
      expect(yield* py`return ${4}`.pipe(Effect.provideService(Python.Python, own))).toBe(40)
    }))

  it.effect("fails with a PythonException carrying type, message, traceback and line", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(py`
x = ${1}
y = 2
raise ValueError(f"bad {x}")
`)
      expect(e._tag).toBe("PythonException")
      if (e._tag !== "PythonException") return
      expect(e.type).toBe("ValueError")
      expect(e.message).toBe("bad 1")
      expect(e.line).toBe(4)
      expect(e.traceback).toContain("ValueError: bad 1")
      expect(e.traceback).toContain('raise ValueError(f"bad {x}")')
      expect(e.location).toMatch(/drops\.test\.ts:\d+$/)
      const syntax = yield* Effect.flip(py`
return (1 +
`)
      expect(syntax._tag === "PythonException" && syntax.type).toBe("SyntaxError")
      const caught = yield* py`raise KeyError("k")`.pipe(
        Effect.catchTag("PythonException", (e) => Effect.succeed(e.type))
      )
      expect(caught).toBe("KeyError")
    }))

  it.effect("calls a Python function by its dotted path", () =>
    Effect.gen(function* () {
      expect(yield* Python.call("math.sqrt", [16]).pipe(Drop.returning(Schema.Number))).toBe(4)
      expect(yield* Python.call("os.path.join", ["a", "b"])).toBe("a/b")
      expect(yield* Python.call("builtins.sorted", [[3, 1, 2]], { reverse: true })).toEqual([3, 2, 1])
      const missing = yield* Effect.flip(Python.call("math.nope"))
      expect(missing._tag === "PythonException" && missing.type).toBe("AttributeError")
    }))

  it.effect("runs many drops queued on one worker", () =>
    Effect.gen(function* () {
      const xs = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => py`return ${i} * 2`, {
        concurrency: 10
      })
      expect(xs).toEqual(Array.from({ length: 50 }, (_, i) => i * 2))
    }))

  it.effect("compiles a drop once per worker and reuses it by hash", () =>
    Effect.gen(function* () {
      const counter = (i: number) => py`
import sys
return ${i}
`
      for (let i = 0; i < 3; i++) expect(yield* counter(i)).toBe(i)
    }))

  it.effect("sends the code again when the worker's compile cache has dropped it", () =>
    Effect.gen(function* () {
      // More distinct drops than the worker caches (1,024): the first is evicted there while
      // Node still thinks it is compiled, so the worker asks for it and gets it.
      const distinct = (i: number) => py(Object.assign([`return ${i} + `, ""], { raw: [`return ${i} + `, ""] }), 1000)
      for (let i = 0; i < 1030; i++) expect(yield* distinct(i)).toBe(i + 1000)
      expect(yield* distinct(0)).toBe(1000)
      expect(yield* distinct(1)).toBe(1001)
      // A handle drop whose code was dropped there too gets its handle, and it is released.
      const kept = yield* Effect.scoped(Effect.flatMap(Drop.handle(distinct(2)), (h) => py`return ${h}`))
      expect(kept).toBe(1002)
      expect(yield* Python.liveHandles).toBe(0)
    }))
})

describe("failures that carry their tag", () => {
  it.live("catchTag works for each error of a drop", () =>
    Effect.gen(function* () {
      const tags = yield* Effect.all([
        py`raise RuntimeError()`.pipe(Effect.catchTag("PythonException", () => Effect.succeed("PythonException"))),
        py`return ${Symbol("x")}`.pipe(Effect.catchTag("EncodeError", () => Effect.succeed("EncodeError")))
      ])
      expect(tags).toEqual(["PythonException", "EncodeError"])
      const either = yield* Effect.either(py`return 1`)
      expect(Either.isRight(either)).toBe(true)
    }).pipe(Effect.provide(NodePython.layer())))
})

describe("output", () => {
  it.live("forwards print and stderr line by line to the Logger, annotated with the worker, without corrupting replies", () => {
    const lines: Array<{ readonly text: string; readonly stream: unknown; readonly workerId: unknown }> = []
    const capture = Logger.make(({ message, annotations }) => {
      const text = String(Array.isArray(message) ? message[0] : message)
      const ann = Object.fromEntries(annotations)
      if (ann.stream !== undefined) lines.push({ text, stream: ann.stream, workerId: ann.workerId })
    })
    const python = NodePython.layer().pipe(Layer.provide(Logger.replace(Logger.defaultLogger, capture)))
    return Effect.gen(function* () {
      const v = yield* py`
import sys
print("hello from python")
print("to stderr", file=sys.stderr)
print("x" * 3_000_000)
for i in range(20000):
    print("line", i)
return "still fine"
`
      expect(v).toBe("still fine")
      const [worker] = yield* Python.workers
      // Output is forwarded as it is read; wait for the last line.
      yield* Effect.sleep("50 millis").pipe(Effect.repeat({ until: () => lines.some((l) => l.text === "line 19999") }), Effect.timeout("20 seconds"))
      expect(lines).toContainEqual({ text: "hello from python", stream: "stdout", workerId: worker!.id })
      expect(lines).toContainEqual({ text: "to stderr", stream: "stderr", workerId: worker!.id })
      const numbered = lines.filter((l) => l.text.startsWith("line "))
      expect(numbered.length).toBe(20000)
      expect(numbered.map((l) => l.text)).toEqual(Array.from({ length: 20000 }, (_, i) => `line ${i}`))
      // 3 MB on one line is forwarded in bounded pieces.
      const xs = lines.filter((l) => l.text.startsWith("xxx")).map((l) => l.text)
      expect(xs.join("")).toBe("x".repeat(3_000_000))
      expect(Math.max(...xs.map((x) => x.length))).toBeLessThanOrEqual(16 * 1024)
    }).pipe(Effect.provide(python))
  })
})
