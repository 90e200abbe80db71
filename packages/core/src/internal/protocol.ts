import type { SharedMemory } from "../Worker.js"
import { DecodeFailure, Decoder, type Encoded, Encoder, type SegmentRead } from "./codec.js"

export const PROTOCOL_VERSION = 1
/** The exit status of a worker whose interpreter is older than it supports (before any hello). */
export const EXIT_TOO_OLD = 78
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024 * 1024

export type Mode = "value" | "handle" | "stream"

export interface Hello {
  readonly t: "hello"
  readonly protocol: number
  readonly pid: number
  readonly python: string
  readonly executable: string
  /** Whether the worker can map this process's shared memory segments (ext 6). */
  readonly shm?: boolean
}

export interface Ok {
  readonly t: "ok"
  readonly id: number
  readonly value: unknown
}

export type Err =
  | {
      readonly t: "err"
      readonly id: number
      readonly kind: "exception"
      readonly type: string
      readonly message: string
      readonly traceback: string
      readonly line: number | null
    }
  | { readonly t: "err"; readonly id: number; readonly kind: "encode"; readonly path: Array<string | number>; readonly message: string }
  | { readonly t: "err"; readonly id: number; readonly kind: "handle"; readonly handle: number; readonly message: string }
  | {
      readonly t: "err"
      readonly id: number
      readonly kind: "interrupted" | "need_code" | "protocol"
      readonly message: string
    }

/** A Python `logging` record. */
export interface Log {
  readonly t: "log"
  readonly level: number
  readonly name: string
  readonly message: string
}

/** A progress event of the running request (`snakebridge.emit`). */
export interface Emit {
  readonly t: "emit"
  readonly id: number
  readonly value: unknown
}

/** The request about to be answered kept arrays over these lent segments (by fd). */
export interface Kept {
  readonly t: "kept"
  readonly fds: ReadonlyArray<number>
}

export type Reply = Ok | Err
export type WorkerMessage = Hello | Reply | Log | Emit | Kept

/**
 * Splits a byte stream into frame bodies. Bodies that lie inside one chunk are
 * views of it; only a frame spread over several chunks is copied.
 */
export class FrameDecoder {
  private chunks: Array<Uint8Array> = []
  private buffered = 0

  constructor(readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Feeds one chunk; returns the complete bodies. Throws `DecodeFailure` on an oversized claim. */
  push(chunk: Uint8Array): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    if (this.buffered === 0) {
      // Fast path: frames that start at this chunk's beginning.
      let pos = 0
      while (chunk.length - pos >= 4) {
        const len = readLength(chunk, pos)
        if (len > this.maxFrameBytes) throw oversized(len, this.maxFrameBytes)
        if (chunk.length - pos - 4 < len) break
        out.push(chunk.subarray(pos + 4, pos + 4 + len))
        pos += 4 + len
      }
      if (pos < chunk.length) {
        this.chunks.push(chunk.subarray(pos))
        this.buffered = chunk.length - pos
      }
      return out
    }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    while (this.buffered >= 4) {
      const head = this.peek(4)
      const len = readLength(head, 0)
      if (len > this.maxFrameBytes) throw oversized(len, this.maxFrameBytes)
      if (this.buffered < 4 + len) break
      const whole = this.take(4 + len)
      out.push(whole.subarray(4))
    }
    return out
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!
    if (first.length >= n) return first
    return this.concat(n)
  }

  private concat(n: number): Uint8Array {
    const out = new Uint8Array(n)
    let at = 0
    for (const c of this.chunks) {
      const part = c.subarray(0, Math.min(c.length, n - at))
      out.set(part, at)
      at += part.length
      if (at === n) break
    }
    return out
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!
    let result: Uint8Array
    if (first.length >= n) {
      result = first.subarray(0, n)
    } else {
      result = this.concat(n)
    }
    // Drop the consumed bytes.
    let left = n
    while (left > 0) {
      const c = this.chunks[0]!
      if (c.length <= left) {
        this.chunks.shift()
        left -= c.length
      } else {
        this.chunks[0] = c.subarray(left)
        left = 0
      }
    }
    this.buffered -= n
    return result
  }
}

const readLength = (b: Uint8Array, at: number): number =>
  ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!

const oversized = (len: number, max: number) =>
  new DecodeFailure(`a frame claims ${len} bytes, above the limit of ${max}`)

/** Starts a frame: 4 bytes for the length, patched by `finishFrame`. */
const startFrame = (size: number): Encoder => {
  const e = new Encoder(Math.max(size, 16))
  e.pos = 4
  return e
}

const finishFrame = (e: Encoder): Uint8Array => {
  e.put32(0, e.pos - 4)
  return e.bytes()
}

/**
 * A frame to write: one buffer, or parts written in order in one system call when the
 * request carries big binary payloads (they are not copied into the frame).
 */
export type Frame = Uint8Array | ReadonlyArray<Uint8Array>

/** A request; `args` and `kwargs` are already encoded (MessagePack array and map). */
export interface RunRequest {
  readonly id: number
  readonly hash: string
  readonly code: string | null
  readonly args: Encoded
  readonly mode: Mode
}

export interface CallRequest {
  readonly id: number
  readonly target: string
  readonly args: Encoded
  /** Left out when the call passes none. */
  readonly kwargs: Encoded | undefined
  readonly mode: Mode
}

/** Whether an encoding carries big payloads by reference (and typed arrays aligned to its start). */
const hasParts = (v: Encoded): boolean => v.parts !== undefined

/**
 * Writes `key` and the encoded value. A value with big parts goes by reference, after a pad
 * entry that puts it at a multiple of 8 bytes from the start of the body, so that the typed
 * arrays inside it stay aligned for the worker.
 */
const field = (
  e: Encoder,
  parts: Array<Uint8Array> | undefined,
  padKey: string,
  key: string,
  v: Encoded
): Array<Uint8Array> | undefined => {
  if (v.parts === undefined) {
    e.str(key)
    e.raw(v.whole!)
    return parts
  }
  // body offset after: pos - 4 (frame header) + pad entry (1 + padKey, 1 + L) + key (1 + key)
  const fixed = e.pos - 4 + 1 + padKey.length + 1 + 1 + key.length
  const L = (8 - (fixed % 8)) % 8
  e.str(padKey)
  e.str(" ".repeat(L))
  e.str(key)
  const out = parts ?? []
  out.push(e.buf.slice(e.start(), e.pos))
  e.restart()
  for (const chunk of v.parts) out.push(chunk)
  return out
}

/** Ends a frame that may hold parts (made only by a value with big payloads): its length covers every part. */
const finishParts = (e: Encoder, parts: Array<Uint8Array> | undefined): Frame => {
  if (parts === undefined) return finishFrame(e)
  if (e.pos > e.start()) parts.push(e.buf.subarray(e.start(), e.pos))
  let length = -4
  for (const part of parts) length += part.length
  const head = parts[0]!
  head[0] = length >>> 24
  head[1] = length >>> 16
  head[2] = length >>> 8
  head[3] = length
  return parts
}

/** The bytes a value adds to the frame's own buffer: all of them, unless it goes by reference. */
const inline = (v: Encoded | undefined): number => (v === undefined || hasParts(v) ? 0 : v.length)

/** `base` keys, and a pad entry before each value that has big parts. */
const entries = (base: number, args: Encoded, kwargs?: Encoded): number =>
  base + (hasParts(args) ? 1 : 0) + (kwargs !== undefined && hasParts(kwargs) ? 1 : 0)

export const encodeRun = (req: RunRequest): Frame => {
  const e = startFrame(64 + inline(req.args) + (req.code === null ? 0 : req.code.length * 3))
  // `code` and `mode` only when they say something (the code sent, a mode other than "value"):
  // two keys fewer took a third off the worker's decoding of a trivial request.
  e.mapHeader(entries(4 + (req.code === null ? 0 : 1) + (req.mode === "value" ? 0 : 1), req.args))
  e.str("t")
  e.str("run")
  e.str("id")
  e.int(req.id)
  e.str("hash")
  e.str(req.hash)
  if (req.code !== null) {
    e.str("code")
    e.str(req.code)
  }
  if (req.mode !== "value") {
    e.str("mode")
    e.str(req.mode)
  }
  return finishParts(e, field(e, undefined, "_a", "args", req.args))
}

export const encodeCall = (req: CallRequest): Frame => {
  const { kwargs } = req
  const e = startFrame(64 + req.target.length * 3 + inline(req.args) + inline(kwargs))
  const keys = 4 + (kwargs === undefined ? 0 : 1) + (req.mode === "value" ? 0 : 1)
  e.mapHeader(entries(keys, req.args, kwargs))
  e.str("t")
  e.str("call")
  e.str("id")
  e.int(req.id)
  e.str("target")
  e.str(req.target)
  if (req.mode !== "value") {
    e.str("mode")
    e.str(req.mode)
  }
  const parts = field(e, undefined, "_a", "args", req.args)
  return finishParts(e, kwargs === undefined ? parts : field(e, parts, "_k", "kwargs", kwargs))
}

/** `{t, [key]: numbers}`: a message with no reply that names a list of ids. */
const encodeIds = (t: string, key: string, ids: ReadonlyArray<number>): Uint8Array => {
  const e = startFrame(16 + ids.length * 5)
  e.mapHeader(2)
  e.str("t")
  e.str(t)
  e.str(key)
  e.value(ids)
  return finishFrame(e)
}

export const encodeRelease = (ids: ReadonlyArray<number>): Uint8Array => encodeIds("release", "ids", ids)

/** The worker's segments named by `fds` have been read: it may write them again. */
export const encodeFree = (fds: ReadonlyArray<number>): Uint8Array => encodeIds("free", "fds", fds)

export const encodeCancel = (id: number): Uint8Array => {
  const e = startFrame(24)
  e.mapHeader(2)
  e.str("t")
  e.str("cancel")
  e.str("id")
  e.int(id)
  return finishFrame(e)
}

/** Asks for up to `n` more items of an open stream. */
export const encodePull = (id: number, stream: number, n: number): Uint8Array => {
  const e = startFrame(40)
  e.mapHeader(4)
  e.str("t")
  e.str("pull")
  e.str("id")
  e.int(id)
  e.str("stream")
  e.int(stream)
  e.str("n")
  e.int(n)
  return finishFrame(e)
}

/** Closes a stream early: the generator's `finally` runs. */
export const encodeClose = (stream: number): Uint8Array => {
  const e = startFrame(32)
  e.mapHeader(2)
  e.str("t")
  e.str("close")
  e.str("stream")
  e.int(stream)
  return finishFrame(e)
}

/**
 * Every message from the worker, whatever its kind, in this one shape: the code that routes and
 * reads messages then sees one object layout (a process that has decoded maps of many shapes
 * would otherwise make its property accesses megamorphic). Keys not listed here are skipped.
 */
class Fields {
  t: unknown = undefined
  id: unknown = undefined
  value: unknown = undefined
  kind: unknown = undefined
  type: unknown = undefined
  message: unknown = undefined
  traceback: unknown = undefined
  line: unknown = undefined
  path: unknown = undefined
  handle: unknown = undefined
  protocol: unknown = undefined
  pid: unknown = undefined
  python: unknown = undefined
  executable: unknown = undefined
  shm: unknown = undefined
  level: unknown = undefined
  name: unknown = undefined
  fds: unknown = undefined

  set(key: unknown, v: unknown): void {
    switch (key) {
      case "t":
        this.t = v
        return
      case "id":
        this.id = v
        return
      case "value":
        this.value = v
        return
      case "kind":
        this.kind = v
        return
      case "type":
        this.type = v
        return
      case "message":
        this.message = v
        return
      case "traceback":
        this.traceback = v
        return
      case "line":
        this.line = v
        return
      case "path":
        this.path = v
        return
      case "handle":
        this.handle = v
        return
      case "protocol":
        this.protocol = v
        return
      case "pid":
        this.pid = v
        return
      case "python":
        this.python = v
        return
      case "executable":
        this.executable = v
        return
      case "shm":
        this.shm = v
        return
      case "level":
        this.level = v
        return
      case "name":
        this.name = v
        return
      case "fds":
        this.fds = v
    }
  }
}

/**
 * Decodes and shape-checks one message from the worker. Throws `DecodeFailure`. Arrays in the
 * worker's segments (ext 6) are added to `reads`: the message is whole once they are read. A
 * message with an Arrow stream in a segment is decoded again then, with their bytes as `filled`.
 */
export const decodeMessage = (
  body: Uint8Array,
  shared?: SharedMemory,
  reads?: Array<SegmentRead>,
  filled?: ReadonlyMap<number, Uint8Array>
): WorkerMessage => {
  const d = new Decoder(body, shared, filled)
  const n = d.mapLength()
  if (n < 0) throw new DecodeFailure("a message must be a map")
  const m = new Fields()
  for (let i = 0; i < n; i++) {
    const key = d.value()
    m.set(key, d.value())
  }
  if (d.reads.length > 0) reads?.push(...d.reads)
  if (d.pos !== body.length) throw new DecodeFailure("trailing bytes after the message")
  switch (m.t) {
    case "ok":
      if (typeof m.id !== "number") break
      if (d.unsupported !== undefined) {
        // The reply is sound but its value cannot be represented here: that drop fails, not the channel.
        m.t = "err"
        m.value = undefined
        m.kind = "encode"
        m.path = []
        m.message = d.unsupported
        return m as unknown as Err
      }
      return m as unknown as Ok
    case "err":
      if (typeof m.id !== "number" || typeof m.kind !== "string") break
      return m as unknown as Err
    case "hello":
      if (typeof m.protocol !== "number") break
      return m as unknown as Hello
    case "log":
      if (typeof m.level !== "number" || typeof m.message !== "string") break
      return m as unknown as Log
    case "emit":
      if (typeof m.id !== "number") break
      return m as unknown as Emit
    case "kept":
      if (!Array.isArray(m.fds) || !m.fds.every((fd) => typeof fd === "number")) break
      return m as unknown as Kept
  }
  throw new DecodeFailure(`unexpected message ${JSON.stringify(m.t)}`)
}
