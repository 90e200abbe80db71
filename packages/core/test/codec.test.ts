import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import * as Codec from "../src/Codec.js"
import { DecodeFailure, decode, encode } from "../src/internal/codec.js"
import { FrameDecoder } from "../src/internal/protocol.js"

const roundTrip = (v: unknown) => decode(encode(v))

describe("Codec", () => {
  it("keeps numbers exactly, NaN, infinities and -0 included", () => {
    for (const n of [0, 1, -1, 127, 128, -32, -33, 255, 65535, 65536, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 - 1, 1.5, NaN, Infinity, -Infinity]) {
      expect(roundTrip(n)).toBe(n)
    }
    expect(Object.is(roundTrip(-0), -0)).toBe(true)
  })

  it("returns integers beyond 2^53 as bigint and small bigints as numbers", () => {
    expect(roundTrip(2n ** 80n)).toBe(2n ** 80n)
    expect(roundTrip(-(2n ** 70n) - 5n)).toBe(-(2n ** 70n) - 5n)
    expect(roundTrip(2n ** 60n)).toBe(2n ** 60n)
    expect(roundTrip(42n)).toBe(42)
  })

  it("maps strings, binary, arrays, objects, Maps, Sets and Dates", () => {
    const bytes = new Uint8Array([0, 1, 2, 255])
    expect(roundTrip("héllo\u0000wörld 🐍")).toBe("héllo\u0000wörld 🐍")
    expect(roundTrip("x".repeat(70000))).toBe("x".repeat(70000))
    expect(roundTrip(bytes)).toEqual(bytes)
    expect(roundTrip([1, "a", [null, true]])).toEqual([1, "a", [null, true]])
    expect(roundTrip({ a: 1, b: { c: [1, 2] } })).toEqual({ a: 1, b: { c: [1, 2] } })
    expect(roundTrip(new Map<unknown, unknown>([[1, "one"], ["two", 2]]))).toEqual(new Map<unknown, unknown>([[1, "one"], ["two", 2]]))
    expect(roundTrip(new Set([1, "a"]))).toEqual(new Set([1, "a"]))
    const d = new Date("2024-02-29T12:34:56.789Z")
    expect((roundTrip(d) as Date).getTime()).toBe(d.getTime())
    expect((roundTrip(new Date(-86_400_001)) as Date).getTime()).toBe(-86_400_001)
  })

  it("sends undefined as None, in arrays too, never dropping it", () => {
    expect(roundTrip([1, undefined, 3])).toEqual([1, null, 3])
    expect(roundTrip(undefined)).toBe(null)
  })

  it("does not let a __proto__ key change an object's prototype", () => {
    const bytes = encode(new Map([["__proto__", { polluted: true }]]))
    const out = decode(bytes) as Record<string, unknown>
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype)
    expect(Object.keys(out)).toEqual(["__proto__"])
  })

  it.effect("fails with the path of a value that cannot cross", () =>
    Effect.gen(function* () {
      const fn = yield* Effect.flip(Codec.encode({ rows: [{ ok: 1 }, { when: () => 1 }] }))
      expect(fn._tag).toBe("EncodeError")
      expect(fn.path).toEqual(["rows", 1, "when"])
      expect(fn.message).toContain('["rows"][1]["when"]')
      const sym = yield* Effect.flip(Codec.encode([Symbol("s")]))
      expect(sym.path).toEqual([0])
      const cyclic: Record<string, unknown> = { a: { b: [] as Array<unknown> } }
      ;((cyclic.a as { b: Array<unknown> }).b).push(cyclic)
      const cycle = yield* Effect.flip(Codec.encode(cyclic))
      expect(cycle.path).toEqual(["a", "b", 0])
      expect(cycle.detail).toContain("cycle")
      class Point {
        x = 1
      }
      const instance = yield* Effect.flip(Codec.encode({ p: new Point() }))
      expect(instance.path).toEqual(["p"])
      expect(instance.detail).toContain("Point")
    }))

  it("accepts shared (non-cyclic) references", () => {
    const shared = { x: 1 }
    expect(roundTrip([shared, shared])).toEqual([{ x: 1 }, { x: 1 }])
  })

  it.effect("fails with a ProtocolError on truncated or trailing input", () =>
    Effect.gen(function* () {
      const whole = encode({ a: "hello" })
      const truncated = yield* Effect.flip(Codec.decode(whole.subarray(0, whole.length - 2)))
      expect(truncated._tag).toBe("ProtocolError")
      const trailing = yield* Effect.flip(Codec.decode(new Uint8Array([...whole, 0])))
      expect(trailing.detail).toContain("trailing")
      const bogusCount = yield* Effect.flip(Codec.decode(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])))
      expect(bogusCount._tag).toBe("ProtocolError")
    }))

  it("round-trips arbitrary JSON-like values (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(roundTrip(v)).toEqual(v)
      }),
      { numRuns: 300 }
    )
  })
})

describe("FrameDecoder", () => {
  const frame = (body: Array<number>) => new Uint8Array([0, 0, 0, body.length, ...body])

  it("reassembles frames split across chunks and splits several in one chunk", () => {
    const d = new FrameDecoder()
    const all = new Uint8Array([...frame([1, 2, 3]), ...frame([4]), ...frame([5, 6])])
    const out: Array<Array<number>> = []
    for (let i = 0; i < all.length; i += 2) out.push(...d.push(all.subarray(i, i + 2)).map((b) => [...b]))
    expect(out).toEqual([[1, 2, 3], [4], [5, 6]])
    expect(d.push(all).map((b) => [...b])).toEqual([[1, 2, 3], [4], [5, 6]])
  })

  it("rejects a claimed length above the limit without allocating it", () => {
    const d = new FrameDecoder(1024)
    let thrown: unknown
    try {
      d.push(new Uint8Array([0xff, 0xff, 0xff, 0xff]))
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(DecodeFailure)
    expect((thrown as DecodeFailure).detail).toMatch(/above the limit of 1024/)
  })
})
