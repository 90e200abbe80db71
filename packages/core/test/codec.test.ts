import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import * as Codec from "../src/Codec.js"
import * as NdArray from "../src/NdArray.js"
import { BIG_BYTES, DecodeFailure, decode, encode, Encoder } from "../src/internal/codec.js"
import { decodeMessage, encodeCall, encodeRun, FrameDecoder } from "../src/internal/protocol.js"

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

describe("Codec: typed arrays", () => {
  it("round-trips every typed array, an NdArray keeps its shape", () => {
    const arrays = [
      new Int8Array([-1, 2]),
      new Int16Array([-300, 2]),
      new Uint16Array([65535]),
      new Int32Array([-(2 ** 31)]),
      new Uint32Array([2 ** 32 - 1]),
      new BigInt64Array([-(2n ** 63n)]),
      new BigUint64Array([2n ** 64n - 1n]),
      new Float32Array([1.5]),
      new Float64Array([NaN, -0, Infinity])
    ]
    for (const a of arrays) expect(roundTrip(a)).toEqual(a)
    expect(roundTrip(new Uint8ClampedArray([1, 255]))).toEqual(new Uint8Array([1, 255]))
    const m = roundTrip(NdArray.make(new Float32Array(6).fill(2), [3, 1, 2])) as NdArray.NdArray
    expect(m).toBeInstanceOf(NdArray.NdArray)
    expect(m.shape).toEqual([3, 1, 2])
    expect(m.dtype).toBe("float32")
    expect(() => NdArray.make(new Float64Array(5), [2, 3])).toThrow(/holds 6 elements, the data has 5/)
  })

  it("a typed array that is a view of a bigger buffer sends only its own elements", () => {
    const whole = new Float64Array([1, 2, 3, 4, 5])
    expect(roundTrip(whole.subarray(1, 3))).toEqual(new Float64Array([2, 3]))
  })

  it("puts the elements at a multiple of 8 bytes, in any position", () => {
    for (let prefix = 0; prefix < 9; prefix++) {
      const e = new Encoder()
      e.value(["x".repeat(prefix), new Float64Array([1, 2])])
      const bytes = e.bytes()
      // the elements are the last 16 bytes
      expect((bytes.length - 16) % 8).toBe(0)
    }
  })

  it("a value with no big payload is encoded in one piece, with no array of parts around it", () => {
    const e = new Encoder()
    e.value([1, "two", new Float64Array(4)])
    const { length, parts, whole } = e.encoded()
    expect(parts).toBeUndefined()
    expect(whole!.length).toBe(length)
    expect(decode(whole!)).toEqual([1, "two", new Float64Array(4)])
  })

  it("big payloads are parts of the encoding, not copies, and a request frame carries them aligned", () => {
    const big = new Float64Array(BIG_BYTES / 4)
    const bytes = new Uint8Array(BIG_BYTES)
    const e = new Encoder()
    e.value([1, big, "between", bytes])
    const { length, parts, whole } = e.encoded()
    expect(whole).toBeUndefined()
    expect(parts!.some((c) => c.buffer === big.buffer)).toBe(true)
    expect(parts!.some((c) => c.buffer === bytes.buffer)).toBe(true)
    expect(parts!.reduce((n, c) => n + c.length, 0)).toBe(length)
    expect(decode(e.bytes())).toEqual([1, big, "between", bytes])

    // The header's length varies with the hash and with the keys sent (code, mode): the
    // elements stay aligned in every case.
    const cases = [
      { hash: "h", code: "return _sb_0", mode: "value" as const },
      { hash: "hash-of-another-length", code: "return _sb_0", mode: "value" as const },
      { hash: "h", code: null, mode: "value" as const },
      { hash: "h", code: null, mode: "handle" as const },
      { hash: "hash-of-another-length", code: "return _sb_0", mode: "stream" as const }
    ]
    for (const { code, hash, mode } of cases) {
      const frame = encodeRun({ id: 7, hash, code, args: e.encoded(), mode }) as Array<Uint8Array>
      expect(Array.isArray(frame)).toBe(true)
      const joined = new Uint8Array(frame.reduce((n, c) => n + c.length, 0))
      let at = 0
      for (const c of frame) {
        if (c.buffer === big.buffer) expect((at - 4) % 8).toBe(0) // body offset of the elements
        joined.set(c, at)
        at += c.length
      }
      const [body] = new FrameDecoder().push(joined)
      const msg = decode(body!) as { id: number; args: Array<unknown>; code?: string; mode?: string }
      expect(msg.id).toBe(7)
      expect(msg.args).toEqual([1, big, "between", bytes])
      // Left out when they say nothing: no code after the first send, the "value" mode.
      expect(msg.code).toBe(code ?? undefined)
      expect(msg.mode).toBe(mode === "value" ? undefined : mode)
    }
  })

  it("a call request carries kwargs and mode only when it has them, its big arrays aligned", () => {
    const big = new Float64Array(BIG_BYTES / 8).fill(2)
    const encodedOf = (v: unknown) => {
      const e = new Encoder()
      e.value(v)
      return e.encoded()
    }
    const read = (frame: ReturnType<typeof encodeCall>) => {
      const chunks = frame instanceof Uint8Array ? [frame] : frame
      const joined = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
      let at = 0
      for (const c of chunks) {
        if (c.buffer === big.buffer) expect((at - 4) % 8).toBe(0)
        joined.set(c, at)
        at += c.length
      }
      const [body] = new FrameDecoder().push(joined)
      return decode(body!) as Record<string, unknown>
    }
    const plain = read(encodeCall({ id: 1, target: "math.sqrt", args: encodedOf([2]), kwargs: undefined, mode: "value" }))
    expect(plain).toEqual({ t: "call", id: 1, target: "math.sqrt", args: [2] })
    const full = read(
      encodeCall({ id: 2, target: "f", args: encodedOf([big]), kwargs: encodedOf({ x: big, y: 1 }), mode: "handle" })
    )
    expect(full.mode).toBe("handle")
    expect(full.args).toEqual([big])
    expect(full.kwargs).toEqual({ x: big, y: 1 })
  })

  it("a decoded big array is a view of its frame when aligned, a copy otherwise", () => {
    const big = new Float64Array(BIG_BYTES / 8).fill(3)
    const encoded = encode(big)
    const aligned = new Uint8Array(encoded.length + 8)
    aligned.set(encoded)
    const view = decode(aligned.subarray(0, encoded.length)) as Float64Array
    expect(view.buffer).toBe(aligned.buffer)
    const shifted = new Uint8Array(encoded.length + 1)
    shifted.set(encoded, 1)
    const copy = decode(shifted.subarray(1)) as Float64Array
    expect(copy.buffer).not.toBe(shifted.buffer)
    expect(copy).toEqual(big)
  })

  it("rejects an array whose bytes do not match its shape", () => {
    const bytes = encode(NdArray.make(new Int32Array(4), [2, 2]))
    // ext32 header (6), code, ndim, pad, then two big-endian uint32 dimensions: the last one 2 -> 3
    expect(bytes[6 + 3 + 8 - 1]).toBe(2)
    bytes[6 + 3 + 8 - 1] = 3
    expect(() => decode(bytes)).toThrow(DecodeFailure)
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

describe("decodeMessage", () => {
  const failure = (body: Uint8Array): string => {
    try {
      decodeMessage(body)
    } catch (e) {
      if (e instanceof DecodeFailure) return e.detail
      throw e
    }
    throw new Error("decoded")
  }

  it("gives every kind of message one layout, whatever keys it came with", () => {
    const ok = decodeMessage(encode({ t: "ok", id: 1, value: [1, "a"] }))
    const err = decodeMessage(encode({ traceback: "tb", t: "err", line: 3, id: 2, kind: "exception", type: "ValueError", message: "m" }))
    const log = decodeMessage(encode({ t: "log", level: 30, name: "x", message: "careful" }))
    expect(ok).toMatchObject({ t: "ok", id: 1, value: [1, "a"] })
    expect(err).toMatchObject({ t: "err", id: 2, kind: "exception", type: "ValueError", line: 3, traceback: "tb" })
    expect(log).toMatchObject({ t: "log", level: 30, name: "x", message: "careful" })
    // Same keys in the same order: one hidden class for the code that reads them.
    expect(Object.keys(err)).toEqual(Object.keys(ok))
    expect(Object.keys(log)).toEqual(Object.keys(ok))
  })

  it("skips keys it does not know, and a __proto__ key changes nothing", () => {
    const m = decodeMessage(encode({ t: "ok", id: 1, value: 2, later: "x", ["__proto__"]: { polluted: true } }))
    expect(m).toMatchObject({ t: "ok", id: 1, value: 2 })
    expect("later" in m).toBe(false)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect((m as unknown as Record<string, unknown>).polluted).toBeUndefined()
  })

  it("rejects what is not a message: not a map, a kind it does not know, a field of the wrong type, trailing bytes", () => {
    expect(failure(encode([1, 2]))).toBe("a message must be a map")
    expect(failure(encode("ok"))).toBe("a message must be a map")
    expect(failure(encode({ t: "nope", id: 1 }))).toBe('unexpected message "nope"')
    expect(failure(encode({ t: "ok", id: "1", value: 2 }))).toBe('unexpected message "ok"')
    expect(failure(encode({ t: "err", id: 1 }))).toBe('unexpected message "err"')
    expect(failure(new Uint8Array([...encode({ t: "ok", id: 1, value: 2 }), 0xc0]))).toBe("trailing bytes after the message")
    expect(failure(encode({ t: "ok", id: 1, value: 2 }).subarray(0, 6))).toBe("truncated MessagePack value")
  })
})
