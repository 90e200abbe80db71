/**
 * MessagePack with the extension types of PROTOCOL.md. Written here rather than
 * taken from msgpackr because msgpackr registers extensions process-wide (they
 * would clash with other users of msgpackr in the same process) and cannot name the
 * path of a value that fails to encode.
 */
import * as NdArray from "../NdArray.js"
import type { Segment, SharedMemory } from "../Worker.js"

export const EXT_TIMESTAMP = -1
export const EXT_BIGINT = 1
export const EXT_SET = 2
export const EXT_HANDLE = 3
export const EXT_NDARRAY = 4
export const EXT_ARROW = 5
export const EXT_SHARED_NDARRAY = 6

/**
 * Binary payloads at least this long are not copied into the encoder's buffer: the encoding
 * becomes a list of parts that go to the channel as they are (one `writev`), and a decoded
 * payload that fills most of its frame is a view of the frame instead of a copy.
 */
export const BIG_BYTES = 64 * 1024


/** Thrown inside the encoder; turned into an `EncodeError` by the caller. */
export class EncodeFailure {
  constructor(
    readonly path: ReadonlyArray<string | number>,
    readonly detail: string
  ) {}
}

/**
 * A worker's segment (ext 6) named by a message: mapped already (`into` is the mapping), or
 * still to be copied into `into`.
 */
export interface SegmentRead {
  readonly pid: number
  readonly fd: number
  readonly into: Uint8Array
  /** An Arrow stream: its table can be made only once read, by decoding the message again (`filled`). */
  readonly table: boolean
  readonly mapped: boolean
  /** A segment this process lent, where the worker left an array it changed in place. */
  readonly own: boolean
}

/** Thrown inside the decoder; turned into a `ProtocolError` by the caller. */
export class DecodeFailure {
  constructor(readonly detail: string) {}
}

/** A segment a message names could not be mapped: a protocol error only if its worker still lives. */
export class UnreadableSegment extends DecodeFailure {}

/**
 * How the encoder recognises a handle: the Handle module registers a reader that
 * returns the handle's registry id (and records the handle for affinity checks).
 */
export interface HandleSink {
  readonly isHandle: (u: object) => boolean
  readonly add: (u: object, path: ReadonlyArray<string | number>) => number
}

/**
 * Arrow tables: set by `@snakebridge/core/Arrow` when it is imported, so that `apache-arrow`
 * stays an optional peer dependency.
 */
export interface TableCodec {
  readonly isTable: (u: object) => boolean
  readonly toIPC: (table: object) => Uint8Array
  readonly fromIPC: (bytes: Uint8Array) => unknown
}

let tables: TableCodec | undefined

const ARROW_MISSING = "an Arrow table came back: import \"@snakebridge/core/Arrow\" (and install apache-arrow) to receive it"

export const registerTables = (codec: TableCodec): void => {
  tables = codec
}

type TypedArrayConstructor = new (buffer: ArrayBufferLike, byteOffset?: number, length?: number) => NdArray.TypedArray

/** Each typed array and numpy's one-letter type code for it (a `struct` format character). */
const NDARRAY_TYPES: ReadonlyArray<readonly [TypedArrayConstructor, number]> = [
  [Int8Array, 0x62], // b
  [Uint8Array, 0x42], // B
  [Int16Array, 0x68], // h
  [Uint16Array, 0x48], // H
  [Int32Array, 0x69], // i
  [Uint32Array, 0x49], // I
  [BigInt64Array, 0x71], // q
  [BigUint64Array, 0x51], // Q
  [Float32Array, 0x66], // f
  [Float64Array, 0x64] // d
]
const NDARRAY_CODE = new Map<Function, number>([...NDARRAY_TYPES, [Uint8ClampedArray, 0x42]])
/** ext 6 with this code (`s`) carries a `Uint8Array` that Python receives as `bytes`. */
const BYTES_CODE = 0x73
/** The element code of ext 6 that carries an Arrow IPC stream (a big table, either way). */
const ARROW_CODE = 0x61
const NDARRAY_TYPE = new Map(NDARRAY_TYPES.map(([ctor, code]) => [code, ctor]))

/** Typed arrays travel in the host's byte order, which the format fixes as little-endian. */
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

const SLAB_BYTES = 64 * 1024
let slab = new ArrayBuffer(SLAB_BYTES)
let slabUsed = 0

/**
 * A buffer for encoding. Small ones are carved out of a shared slab, as Node's `Buffer` pool
 * does: a typed array of its own sits on V8's heap until a view of it is taken, and the frame
 * taken from every encoder would then cost more than the encoding.
 */
const allocate = (n: number): Uint8Array => {
  if (n > SLAB_BYTES / 8) return new Uint8Array(n)
  if (slabUsed + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES)
    slabUsed = 0
  }
  const out = new Uint8Array(slab, slabUsed, n)
  slabUsed = (slabUsed + n + 7) & ~7
  return out
}

/** Where floats are turned into bytes and back, one at a time. */
const scratchFloat = new Float64Array(1)
const scratchBytes = new Uint8Array(scratchFloat.buffer)

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder("utf-8", { fatal: false })
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/**
 * An encoded value: in one piece, or, when it holds big payloads by reference, as parts to write
 * in order; and the shared memory segments lent to carry its biggest typed arrays.
 *
 * A class, not an object literal, and no array for the one piece: V8 tracks where each literal is
 * made, and one made per request can look long-lived when a full collection's marking keeps a
 * burst of requests alive; it is then made in the old generation, where, dead, it holds the young
 * objects it points to through every scavenge (see exit.ts). The one-element array this held
 * for the piece was such a literal: tenured, it promoted every request's view of the encoding.
 */
export class Encoded {
  constructor(
    /** The whole encoding, when it holds no big payload by reference (`parts` is undefined then). */
    readonly whole: Uint8Array | undefined,
    /** Otherwise its parts: the bytes between the big payloads, and the payloads, in order. */
    readonly parts: ReadonlyArray<Uint8Array> | undefined,
    readonly length: number,
    readonly segments: ReadonlyArray<Segment>
  ) {}
}

/** A growable buffer that writes MessagePack. */
export class Encoder {
  buf: Uint8Array
  pos = 0
  /** Made on first use: a DataView over a small on-heap buffer costs more than a trivial encoding. */
  private dataView: DataView | undefined
  /** Finished parts before `buf[start..pos]`: earlier buffer slices and big payloads, not copied. */
  private readonly parts: Array<Uint8Array> = []
  private partsLength = 0
  private begin = 0
  /** Above 0 while writing a payload whose length is patched afterwards: no parts then. */
  private inline = 0
  private readonly path: Array<string | number> = []
  /** The containers being written, outermost first: a cycle is one met again (an array, as
   * nesting is shallow and a Set per encoding costs more than the search). */
  private readonly ancestors: Array<object> = []
  /** Segments lent to this encoding (ext 6), given back by whoever sends it. */
  readonly segments: Array<Segment> = []

  constructor(
    initial = 256,
    readonly handles?: HandleSink,
    readonly shared?: SharedMemory
  ) {
    this.buf = allocate(initial)
  }

  private get view(): DataView {
    return (this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength))
  }

  /** Writes a big-endian uint16 at `at`. */
  put16(at: number, v: number): void {
    this.buf[at] = v >>> 8
    this.buf[at + 1] = v
  }

  /** Writes a big-endian uint32 at `at`. */
  put32(at: number, v: number): void {
    this.buf[at] = v >>> 24
    this.buf[at + 1] = v >>> 16
    this.buf[at + 2] = v >>> 8
    this.buf[at + 3] = v
  }

  /** The bytes written so far, joined into one buffer (a view when nothing big was written). */
  bytes(): Uint8Array {
    if (this.parts.length === 0) return this.buf.subarray(this.begin, this.pos)
    const out = new Uint8Array(this.length)
    let at = 0
    for (const part of this.chunks()) {
      out.set(part, at)
      at += part.length
    }
    return out
  }

  /** The index in `buf` where the bytes not yet moved to parts begin. */
  start(): number {
    return this.begin
  }

  /** Moves the bytes written so far out of the way: they were taken as a part by the caller. */
  restart(): void {
    this.parts.length = 0
    this.partsLength = 0
    this.begin = this.pos
  }

  /** The encoding, for a frame to carry without copying. */
  encoded(): Encoded {
    if (this.parts.length === 0) return new Encoded(this.buf.subarray(this.begin, this.pos), undefined, this.length, this.segments)
    const chunks = this.chunks()
    return chunks.length === 1
      ? new Encoded(chunks[0], undefined, this.length, this.segments)
      : new Encoded(undefined, chunks, this.length, this.segments)
  }

  /** The bytes written so far as parts to write in order, without joining them. */
  chunks(): Array<Uint8Array> {
    const tail = this.buf.subarray(this.begin, this.pos)
    return this.parts.length === 0 ? [tail] : tail.length === 0 ? [...this.parts] : [...this.parts, tail]
  }

  /** How many bytes were written. */
  get length(): number {
    return this.partsLength + this.pos - this.begin
  }

  /** Appends a big payload by reference: it is written to the channel from where it is. */
  private part(bytes: Uint8Array): void {
    if (this.inline > 0) return this.raw(bytes)
    if (this.pos > this.begin) {
      this.parts.push(this.buf.subarray(this.begin, this.pos))
      this.partsLength += this.pos - this.begin
    }
    this.parts.push(bytes)
    this.partsLength += bytes.length
    this.begin = this.pos
  }

  reserve(n: number): void {
    const need = this.pos + n
    if (need <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const next = allocate(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.dataView = undefined
  }

  u8(b: number): void {
    this.reserve(1)
    this.buf[this.pos++] = b
  }

  u8u8(a: number, b: number): void {
    this.reserve(2)
    this.buf[this.pos++] = a
    this.buf[this.pos++] = b
  }

  u8u16(a: number, b: number): void {
    this.reserve(3)
    this.buf[this.pos++] = a
    this.put16(this.pos, b)
    this.pos += 2
  }

  u8u32(a: number, b: number): void {
    this.reserve(5)
    this.buf[this.pos++] = a
    this.put32(this.pos, b)
    this.pos += 4
  }

  raw(bytes: Uint8Array): void {
    this.reserve(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
  }

  nil(): void {
    this.u8(0xc0)
  }

  int(n: number): void {
    if (n >= 0) {
      if (n < 0x80) this.u8(n)
      else if (n < 0x100) this.u8u8(0xcc, n)
      else if (n < 0x10000) this.u8u16(0xcd, n)
      else if (n < 0x100000000) this.u8u32(0xce, n)
      else this.uint64(BigInt(n))
    } else {
      if (n >= -32) this.u8(n & 0xff)
      else if (n >= -0x80) this.u8u8(0xd0, n & 0xff)
      else if (n >= -0x8000) {
        this.reserve(3)
        this.buf[this.pos++] = 0xd1
        this.view.setInt16(this.pos, n)
        this.pos += 2
      } else if (n >= -0x80000000) {
        this.reserve(5)
        this.buf[this.pos++] = 0xd2
        this.view.setInt32(this.pos, n)
        this.pos += 4
      } else this.int64(BigInt(n))
    }
  }

  private uint64(n: bigint): void {
    this.reserve(9)
    this.buf[this.pos++] = 0xcf
    this.view.setBigUint64(this.pos, n)
    this.pos += 8
  }

  private int64(n: bigint): void {
    this.reserve(9)
    this.buf[this.pos++] = 0xd3
    this.view.setBigInt64(this.pos, n)
    this.pos += 8
  }

  float(n: number): void {
    this.reserve(9)
    this.buf[this.pos++] = 0xcb
    scratchFloat[0] = n
    for (let i = 7; i >= 0; i--) this.buf[this.pos++] = scratchBytes[littleEndian ? i : 7 - i]!
  }

  number(n: number): void {
    if (Number.isSafeInteger(n) && !Object.is(n, -0)) this.int(n)
    else this.float(n)
  }

  bigint(n: bigint): void {
    if (n >= INT64_MIN && n <= INT64_MAX) {
      if (n >= -0x80000000n && n < 0x100000000n) this.int(Number(n))
      else this.int64(n)
    } else {
      this.ext(EXT_BIGINT, textEncoder.encode(n.toString()))
    }
  }

  str(s: string): void {
    const len = s.length
    if (len < 32) {
      // Short strings: most keys and names. ASCII fast path, no TextEncoder call.
      this.reserve(1 + len * 3)
      const start = this.pos
      let p = start + 1
      let ascii = true
      for (let i = 0; i < len; i++) {
        const c = s.charCodeAt(i)
        if (c >= 0x80) {
          ascii = false
          break
        }
        this.buf[p++] = c
      }
      if (ascii) {
        this.buf[start] = 0xa0 | len
        this.pos = p
        return
      }
    }
    // Worst case 3 bytes per UTF-16 unit; write after a 5-byte header, then move if shorter.
    this.reserve(5 + len * 3)
    const headerAt = this.pos
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(headerAt + 5))
    const headerLen = written < 32 ? 1 : written < 0x100 ? 2 : written < 0x10000 ? 3 : 5
    if (headerLen !== 5) this.buf.copyWithin(headerAt + headerLen, headerAt + 5, headerAt + 5 + written)
    if (headerLen === 1) this.buf[headerAt] = 0xa0 | written
    else if (headerLen === 2) {
      this.buf[headerAt] = 0xd9
      this.buf[headerAt + 1] = written
    } else if (headerLen === 3) {
      this.buf[headerAt] = 0xda
      this.put16(headerAt + 1, written)
    } else {
      this.buf[headerAt] = 0xdb
      this.put32(headerAt + 1, written)
    }
    this.pos = headerAt + headerLen + written
  }

  bin(bytes: Uint8Array): void {
    const n = bytes.length
    if (this.shared !== undefined && n >= this.shared.threshold) {
      // Big bytes go through shared memory like a typed array, with the code that makes them `bytes`.
      const segment = this.shared.lend(bytes)
      if (segment !== undefined) return this.sharedNdarray(BYTES_CODE, [n], n, segment)
    }
    if (n < 0x100) this.u8u8(0xc4, n)
    else if (n < 0x10000) this.u8u16(0xc5, n)
    else this.u8u32(0xc6, n)
    this.bulk(bytes)
  }

  private bulk(bytes: Uint8Array): void {
    if (bytes.length >= BIG_BYTES) this.part(bytes)
    else this.raw(bytes)
  }

  /**
   * ext 4: a typed array with its shape. The payload is the type code, the number of
   * dimensions, a pad count, each dimension (uint32), the pad, then the elements in
   * little-endian C order. The pad puts the elements at a multiple of 8 bytes from the start
   * of the encoding, so the receiver can view them in place.
   */
  ndarray(data: NdArray.TypedArray, shape: ReadonlyArray<number>): void {
    const code = NDARRAY_CODE.get(data.constructor)
    if (code === undefined) throw new EncodeFailure([...this.path], `a ${data.constructor.name} has no Python mapping`)
    if (!littleEndian) throw new EncodeFailure([...this.path], "typed arrays cross only from a little-endian host")
    const head = 3 + 4 * shape.length
    const n = data.byteLength
    const bytes = new Uint8Array(data.buffer, data.byteOffset, n)
    if (this.shared !== undefined && (n >= this.shared.threshold || this.shared.allocated?.(data.buffer) === true)) {
      const segment = this.shared.lend(bytes)
      if (segment !== undefined) return this.sharedNdarray(code, shape, n, segment)
    }
    // The ext32 header is 6 bytes; the elements start after it and the head.
    const pad = (8 - ((this.length + 6 + head) % 8)) % 8
    this.extHeader32(EXT_NDARRAY, head + pad + n)
    this.reserve(head + pad)
    this.buf[this.pos++] = code
    this.buf[this.pos++] = shape.length
    this.buf[this.pos++] = pad
    for (const d of shape) {
      this.put32(this.pos, d)
      this.pos += 4
    }
    this.buf.fill(0, this.pos, this.pos + pad)
    this.pos += pad
    this.bulk(bytes)
  }

  /** ext 6: the head of ext 4 (pad 0), then the segment that holds the elements: pid, fd, byte length. */
  private sharedNdarray(code: number, shape: ReadonlyArray<number>, n: number, segment: Segment): void {
    this.segments.push(segment)
    const head = 3 + 4 * shape.length
    this.extHeader(EXT_SHARED_NDARRAY, head + 16)
    this.reserve(head + 16)
    this.buf[this.pos++] = code
    this.buf[this.pos++] = shape.length
    this.buf[this.pos++] = 0
    for (const d of shape) {
      this.put32(this.pos, d)
      this.pos += 4
    }
    this.put32(this.pos, segment.pid)
    this.put32(this.pos + 4, segment.fd)
    this.view.setBigUint64(this.pos + 8, BigInt(n))
    this.pos += 16
  }

  /** ext 5: an Arrow table as an Arrow IPC stream. */
  private table(t: object): void {
    let ipc: Uint8Array
    try {
      ipc = tables!.toIPC(t)
    } catch (e) {
      throw new EncodeFailure([...this.path], `an Arrow table failed to serialise: ${e instanceof Error ? e.message : String(e)}`)
    }
    if (this.shared !== undefined && ipc.length >= this.shared.threshold) {
      const segment = this.shared.lend(ipc)
      if (segment !== undefined) return this.sharedNdarray(ARROW_CODE, [ipc.length], ipc.length, segment)
    }
    this.extHeader32(EXT_ARROW, ipc.length)
    this.bulk(ipc)
  }

  private extHeader32(type: number, n: number): void {
    this.reserve(6)
    this.buf[this.pos] = 0xc9
    this.put32(this.pos + 1, n)
    this.buf[this.pos + 5] = type & 0xff
    this.pos += 6
  }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n)
    else if (n < 0x10000) this.u8u16(0xdc, n)
    else this.u8u32(0xdd, n)
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n)
    else if (n < 0x10000) this.u8u16(0xde, n)
    else this.u8u32(0xdf, n)
  }

  extHeader(type: number, n: number): void {
    if (n === 1) this.u8(0xd4)
    else if (n === 2) this.u8(0xd5)
    else if (n === 4) this.u8(0xd6)
    else if (n === 8) this.u8(0xd7)
    else if (n === 16) this.u8(0xd8)
    else if (n < 0x100) this.u8u8(0xc7, n)
    else if (n < 0x10000) this.u8u16(0xc8, n)
    else this.u8u32(0xc9, n)
    this.u8(type & 0xff)
  }

  ext(type: number, payload: Uint8Array): void {
    this.extHeader(type, payload.length)
    this.raw(payload)
  }

  /** An extension whose payload is itself MessagePack, written in place. */
  private nestedExt(type: number, write: () => void): void {
    // ext32 header with a length patched afterwards.
    this.reserve(6)
    const at = this.pos
    this.buf[at] = 0xc9
    this.buf[at + 5] = type & 0xff
    this.pos += 6
    // Inline only: the length patched below must stay in `buf`.
    this.inline++
    try {
      write()
    } finally {
      this.inline--
    }
    this.put32(at + 1, this.pos - at - 6)
  }

  date(d: Date): void {
    const ms = d.getTime()
    if (Number.isNaN(ms)) throw new EncodeFailure([...this.path], "an invalid Date cannot cross")
    const sec = Math.floor(ms / 1000)
    const nsec = (ms - sec * 1000) * 1_000_000
    this.extHeader(EXT_TIMESTAMP, 12)
    this.reserve(12)
    this.view.setUint32(this.pos, nsec)
    this.view.setBigInt64(this.pos + 4, BigInt(sec))
    this.pos += 12
  }

  /** Encodes any value of the mapping table, naming the path of what cannot cross. */
  value(v: unknown): void {
    switch (typeof v) {
      case "number":
        return this.number(v)
      case "string":
        return this.str(v)
      case "boolean":
        return this.u8(v ? 0xc3 : 0xc2)
      case "undefined":
        return this.nil()
      case "bigint":
        return this.bigint(v)
      case "object":
        if (v === null) return this.nil()
        return this.object(v)
      case "function":
        throw new EncodeFailure([...this.path], `a function (${v.name || "anonymous"}) cannot cross to Python`)
      case "symbol":
        throw new EncodeFailure([...this.path], `a symbol (${String(v)}) cannot cross to Python`)
    }
  }

  private object(v: object): void {
    if (ArrayBuffer.isView(v)) {
      // Every Uint8Array (a Node Buffer too) is bytes; other typed arrays are 1-d numpy arrays.
      if (v instanceof Uint8Array) return this.bin(v)
      if (v instanceof DataView) throw new EncodeFailure([...this.path], "a DataView has no Python mapping: send a typed array")
      return this.ndarray(v as NdArray.TypedArray, [(v as NdArray.TypedArray).length])
    }
    if (v instanceof NdArray.NdArray) return this.ndarray(v.data, v.shape)
    if (v instanceof Date) return this.date(v)
    if (tables?.isTable(v)) return this.table(v)
    if (this.handles?.isHandle(v)) {
      const id = this.handles.add(v, this.path)
      this.nestedExt(EXT_HANDLE, () => this.int(id))
      return
    }
    if (this.ancestors.includes(v)) throw new EncodeFailure([...this.path], "a cycle cannot cross to Python")
    this.ancestors.push(v)
    const path = this.path
    if (Array.isArray(v)) {
      const n = v.length
      this.arrayHeader(n)
      for (let i = 0; i < n; i++) {
        path.push(i)
        this.value(v[i])
        path.pop()
      }
    } else if (v instanceof Map) {
      this.mapHeader(v.size)
      for (const [k, x] of v) {
        path.push(typeof k === "string" || typeof k === "number" ? k : String(k))
        this.value(k)
        this.value(x)
        path.pop()
      }
    } else if (v instanceof Set) {
      this.nestedExt(EXT_SET, () => {
        this.arrayHeader(v.size)
        let i = 0
        for (const x of v) {
          path.push(i++)
          this.value(x)
          path.pop()
        }
      })
    } else {
      const proto = Object.getPrototypeOf(v)
      if (proto !== Object.prototype && proto !== null) {
        const name = (v as { constructor?: { name?: string } }).constructor?.name ?? "unknown"
        throw new EncodeFailure([...path], `an instance of ${name} has no Python mapping`)
      }
      const keys = Object.keys(v)
      this.mapHeader(keys.length)
      for (const k of keys) {
        path.push(k)
        this.str(k)
        this.value((v as Record<string, unknown>)[k])
        path.pop()
      }
    }
    this.ancestors.pop()
  }
}

/** Reads MessagePack from one buffer. */
export class Decoder {
  pos = 0
  /** Set when a value was read that this process cannot represent (see EXT_ARROW). */
  unsupported: string | undefined
  /**
   * The worker's segments (ext 6): the arrays decoded from those not mapped are empty until
   * they are read, and the worker may write a segment again once told it was read, or that its
   * mapping was collected.
   */
  readonly reads: Array<SegmentRead> = []
  /** Made on first use, as the encoder's. */
  private dataView: DataView | undefined

  constructor(
    readonly buf: Uint8Array,
    readonly shared?: SharedMemory,
    /** The second decoding of a message whose segments are read: their bytes, by fd. */
    readonly filled?: ReadonlyMap<number, Uint8Array>
  ) {}

  private get view(): DataView {
    return (this.dataView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength))
  }

  /** The big-endian uint32 at `at`. */
  private get32(at: number): number {
    const b = this.buf
    return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new DecodeFailure("truncated MessagePack value")
  }

  private u8(): number {
    this.need(1)
    return this.buf[this.pos++]!
  }

  private u16(): number {
    this.need(2)
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!
    this.pos += 2
    return v
  }

  private u32(): number {
    this.need(4)
    const v = this.get32(this.pos)
    this.pos += 4
    return v
  }

  private bigToValue(n: bigint): number | bigint {
    return n >= -9007199254740991n && n <= 9007199254740991n ? Number(n) : n
  }

  value(): unknown {
    const b = this.u8()
    if (b < 0x80) return b
    if (b >= 0xe0) return b - 0x100
    if (b <= 0x8f) return this.map(b & 0x0f)
    if (b <= 0x9f) return this.array(b & 0x0f)
    if (b <= 0xbf) return this.str(b & 0x1f)
    switch (b) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xc4:
        return this.bin(this.u8())
      case 0xc5:
        return this.bin(this.u16())
      case 0xc6:
        return this.bin(this.u32())
      case 0xc7:
        return this.ext(this.u8())
      case 0xc8:
        return this.ext(this.u16())
      case 0xc9:
        return this.ext(this.u32())
      case 0xca: {
        this.need(4)
        const v = this.view.getFloat32(this.pos)
        this.pos += 4
        return v
      }
      case 0xcb: {
        this.need(8)
        for (let i = 0; i < 8; i++) scratchBytes[littleEndian ? 7 - i : i] = this.buf[this.pos++]!
        return scratchFloat[0]!
      }
      case 0xcc:
        return this.u8()
      case 0xcd:
        return this.u16()
      case 0xce:
        return this.u32()
      case 0xcf: {
        this.need(8)
        const v = this.view.getBigUint64(this.pos)
        this.pos += 8
        return this.bigToValue(v)
      }
      case 0xd0: {
        this.need(1)
        return this.view.getInt8(this.pos++)
      }
      case 0xd1: {
        this.need(2)
        const v = this.view.getInt16(this.pos)
        this.pos += 2
        return v
      }
      case 0xd2: {
        this.need(4)
        const v = this.view.getInt32(this.pos)
        this.pos += 4
        return v
      }
      case 0xd3: {
        this.need(8)
        const v = this.view.getBigInt64(this.pos)
        this.pos += 8
        return this.bigToValue(v)
      }
      case 0xd4:
        return this.ext(1)
      case 0xd5:
        return this.ext(2)
      case 0xd6:
        return this.ext(4)
      case 0xd7:
        return this.ext(8)
      case 0xd8:
        return this.ext(16)
      case 0xd9:
        return this.str(this.u8())
      case 0xda:
        return this.str(this.u16())
      case 0xdb:
        return this.str(this.u32())
      case 0xdc:
        return this.array(this.u16())
      case 0xdd:
        return this.array(this.u32())
      case 0xde:
        return this.map(this.u16())
      case 0xdf:
        return this.map(this.u32())
    }
    throw new DecodeFailure(`invalid MessagePack type byte 0x${b.toString(16)}`)
  }

  /** The entry count of the map that starts here, its header read; -1, nothing read, if what starts here is not a map. */
  mapLength(): number {
    this.need(1)
    const b = this.buf[this.pos]!
    if (b >= 0x80 && b <= 0x8f) {
      this.pos++
      return b & 0x0f
    }
    if (b !== 0xde && b !== 0xdf) return -1
    this.pos++
    return b === 0xde ? this.u16() : this.u32()
  }

  private str(n: number): string {
    this.need(n)
    const start = this.pos
    this.pos += n
    if (n < 24) {
      let s = ""
      for (let i = start; i < start + n; i++) {
        const c = this.buf[i]!
        if (c >= 0x80) return textDecoder.decode(this.buf.subarray(start, start + n))
        s += String.fromCharCode(c)
      }
      return s
    }
    return textDecoder.decode(this.buf.subarray(start, start + n))
  }

  private bin(n: number): Uint8Array {
    this.need(n)
    const at = this.pos
    this.pos += n
    // A plain Uint8Array, not a Buffer even when the frame came from one. A big payload that
    // fills most of the frame is a view of it; a smaller one is copied, so that it does not pin
    // the whole frame.
    if (this.ownsMostOf(n)) return new Uint8Array(this.buf.buffer, this.buf.byteOffset + at, n)
    return this.copy(at, at + n)
  }

  /** A plain Uint8Array with its own memory (`slice` of a Buffer would be a Buffer view). */
  private copy(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start)
    out.set(this.buf.subarray(start, end))
    return out
  }

  private ownsMostOf(n: number): boolean {
    return n >= BIG_BYTES && n * 2 >= this.buf.length
  }

  /** The head of ext 4 and 6: element type, shape, element count and where the head (pad included) ends. */
  private ndarrayHead(start: number, end: number) {
    if (end - start < 3) throw new DecodeFailure("invalid typed array payload")
    const code = this.buf[start]!
    const ndim = this.buf[start + 1]!
    const pad = this.buf[start + 2]!
    const Ctor = NDARRAY_TYPE.get(code)
    if (Ctor === undefined) throw new DecodeFailure(`unknown typed array code 0x${code.toString(16)}`)
    if (!littleEndian) throw new DecodeFailure("typed arrays cross only to a little-endian host")
    if (start + 3 + 4 * ndim + pad > end) throw new DecodeFailure("invalid typed array payload")
    const shape: Array<number> = []
    let count = 1
    let at = start + 3
    for (let i = 0; i < ndim; i++) {
      const d = this.get32(at)
      shape.push(d)
      count *= d
      at += 4
    }
    const size = (Ctor as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT
    return { Ctor, shape, count, size, at: at + pad }
  }

  /** ext 4 (see `Encoder.ndarray`): a typed array, or an `NdArray` unless it has one dimension. */
  private ndarray(start: number, end: number): NdArray.TypedArray | NdArray.NdArray {
    const { Ctor, at, count, shape, size } = this.ndarrayHead(start, end)
    if (end - at !== count * size) throw new DecodeFailure(`an array of shape [${shape.join(", ")}] does not match its ${end - at} bytes`)
    const offset = this.buf.byteOffset + at
    let data: NdArray.TypedArray
    if (offset % size === 0 && this.ownsMostOf(end - at)) {
      data = new Ctor(this.buf.buffer, offset, count)
    } else {
      data = new Ctor(new ArrayBuffer(count * size), 0, count)
      new Uint8Array(data.buffer).set(this.buf.subarray(at, end))
    }
    return shaped(data, shape)
  }

  /** ext 6 (see `Encoder.sharedNdarray`): the elements are read out of the worker's segment. */
  private sharedNdarray(start: number, end: number): unknown {
    if (this.buf[start] === ARROW_CODE) return this.sharedTable(start, end)
    const { Ctor, at, count, shape, size } = this.ndarrayHead(start, end)
    const into = this.segment(at, end, count * size, false)
    return shaped(new Ctor(into.buffer, 0, count), shape)
  }

  /** ext 6 with an Arrow stream: null until the segment is read, the table in the second decoding. */
  private sharedTable(start: number, end: number): unknown {
    if (end - start !== 3 + 4 + 16 || this.buf[start + 1] !== 1) throw new DecodeFailure("invalid shared Arrow payload")
    const ipc = this.segment(start + 7, end, this.get32(start + 3), true)
    if (this.filled === undefined && this.shared?.map === undefined) return null
    if (tables === undefined) {
      this.unsupported ??= ARROW_MISSING
      return null
    }
    return this.fromIPC(ipc)
  }

  /** The segment named at `at` (pid, fd, byte length): its bytes, read already or to be read. */
  private segment(at: number, end: number, expected: number, table: boolean): Uint8Array {
    if (end - at !== 16) throw new DecodeFailure("invalid shared typed array payload")
    const pid = this.get32(at)
    const fd = this.get32(at + 4)
    const length = Number(this.view.getBigUint64(at + 8))
    if (length !== expected) throw new DecodeFailure(`a shared payload of ${expected} bytes claims ${length}`)
    if (this.shared === undefined) throw new DecodeFailure("shared memory where none was offered")
    if (this.filled !== undefined) {
      // The second decoding reads nothing: every segment it names was read for the first.
      const filled = this.filled.get(fd)
      if (filled === undefined || filled.length !== length) throw new DecodeFailure(`segment ${fd} was not read as named`)
      return filled
    }
    const own = pid === this.shared.pid
    if (own && (table || !this.shared.lends(fd))) throw new DecodeFailure(`a reply names segment ${fd} of this process, which it did not lend`)
    if (this.shared.map !== undefined) {
      let into: Uint8Array
      try {
        into = this.shared.map(pid, fd, length)
      } catch (e) {
        throw new UnreadableSegment(`cannot map shared memory of process ${pid}: ${e instanceof Error ? e.message : String(e)}`)
      }
      this.reads.push({ pid, fd, into, table, mapped: true, own })
      return into
    }
    const into = new Uint8Array(length)
    this.reads.push({ pid, fd, into, table, mapped: false, own })
    return into
  }

  private fromIPC(ipc: Uint8Array): unknown {
    try {
      return tables!.fromIPC(ipc)
    } catch (e) {
      throw new DecodeFailure(`invalid Arrow IPC stream: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  private array(n: number): Array<unknown> {
    // Each element takes at least one byte: a bogus count fails here, not in allocation.
    this.need(n)
    const out = new Array<unknown>(n)
    for (let i = 0; i < n; i++) out[i] = this.value()
    return out
  }

  private map(n: number): Record<string, unknown> | Map<unknown, unknown> {
    this.need(n * 2)
    const obj: Record<string, unknown> = {}
    for (let i = 0; i < n; i++) {
      const k = this.value()
      if (typeof k !== "string") return this.mapFrom(obj, i, k, n)
      const v = this.value()
      if (k === "__proto__") Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true })
      else obj[k] = v
    }
    return obj
  }

  /** A map with a non-string key becomes a Map, keeping the entries read so far. */
  private mapFrom(obj: Record<string, unknown>, done: number, key: unknown, n: number): Map<unknown, unknown> {
    const m = new Map<unknown, unknown>(Object.entries(obj))
    m.set(key, this.value())
    for (let i = done + 1; i < n; i++) {
      const k = this.value()
      m.set(k, this.value())
    }
    return m
  }

  private ext(n: number): unknown {
    this.need(1 + n)
    const type = this.view.getInt8(this.pos)
    this.pos += 1
    const start = this.pos
    const end = start + n
    switch (type) {
      case EXT_TIMESTAMP: {
        this.pos = end
        return this.timestamp(start, n)
      }
      case EXT_BIGINT: {
        this.pos = end
        const text = textDecoder.decode(this.buf.subarray(start, end))
        if (!/^-?\d+$/.test(text)) throw new DecodeFailure(`invalid bigint payload ${JSON.stringify(text)}`)
        return this.bigToValue(BigInt(text))
      }
      case EXT_SET: {
        const elements = this.value()
        if (!Array.isArray(elements) || this.pos !== end) throw new DecodeFailure("invalid set payload")
        return new Set(elements)
      }
      case EXT_NDARRAY: {
        this.pos = end
        return this.ndarray(start, end)
      }
      case EXT_SHARED_NDARRAY: {
        this.pos = end
        return this.sharedNdarray(start, end)
      }
      case EXT_ARROW: {
        this.pos = end
        if (tables === undefined) {
          // Not a protocol fault: this value alone cannot be read here, the reply fails with it.
          this.unsupported ??= ARROW_MISSING
          return null
        }
        return this.fromIPC(this.ownsMostOf(n) ? this.buf.subarray(start, end) : this.copy(start, end))
      }
    }
    throw new DecodeFailure(`unknown extension type ${type}`)
  }

  private timestamp(at: number, n: number): Date {
    let sec: number
    let nsec: number
    if (n === 4) {
      sec = this.view.getUint32(at)
      nsec = 0
    } else if (n === 8) {
      const hi = this.view.getUint32(at)
      const lo = this.view.getUint32(at + 4)
      nsec = hi >>> 2
      sec = (hi & 0x3) * 0x100000000 + lo
    } else if (n === 12) {
      nsec = this.view.getUint32(at)
      sec = Number(this.view.getBigInt64(at + 4))
    } else throw new DecodeFailure(`invalid timestamp length ${n}`)
    return new Date(sec * 1000 + Math.floor(nsec / 1_000_000))
  }
}

const shaped = (data: NdArray.TypedArray, shape: ReadonlyArray<number>): NdArray.TypedArray | NdArray.NdArray =>
  shape.length === 1 ? data : new NdArray.NdArray(data, Object.freeze(shape))

/** Encodes one value into a fresh buffer. Throws `EncodeFailure`. */
export const encode = (value: unknown, handles?: HandleSink): Uint8Array => {
  const e = new Encoder(256, handles)
  e.value(value)
  return e.bytes()
}

/** Decodes exactly one value. Throws `DecodeFailure`. */
export const decode = (bytes: Uint8Array): unknown => {
  const d = new Decoder(bytes)
  const v = d.value()
  if (d.pos !== bytes.length) throw new DecodeFailure(`${bytes.length - d.pos} trailing bytes after the value`)
  return v
}
