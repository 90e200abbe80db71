import type { Segment, SharedMemory } from "@snakebridge/core/Worker"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { load, type Native } from "./native.js"

/**
 * Free segments kept open for reuse: at most 4 and 256 MiB, the least recently used closed
 * first, but always the last one given back whatever its size, so that repeated transfers of
 * one big array reuse its segment.
 */
const KEEP_FREE = 4
const KEEP_FREE_BYTES = 256 * 1024 * 1024

/** A segment is read in up to 4 parts of at least 4 MiB each. */
const READ_PARTS = 4
const READ_PART_MIN = 4 * 1024 * 1024

const readAt = (fd: number, into: Uint8Array, at: number, end: number): Promise<number> =>
  new Promise((resolve, reject) => fs.read(fd, into, at, end - at, at, (e, n) => (e ? reject(e) : resolve(n))))

/** Reads `into[start..end)` from the same offsets of `fd`. */
const readRange = async (fd: number, into: Uint8Array, start: number, end: number): Promise<void> => {
  for (let at = start; at < end; ) {
    const got = await readAt(fd, into, at, end)
    if (got === 0) throw new Error(`the segment ends at ${at} of ${into.length} bytes`)
    at += got
  }
}

interface Owned {
  readonly fd: number
  /** Bytes the segment holds (its file's length). */
  size: number
  /** The worker kept an array over it: never written again. */
  kept: boolean
  /**
   * What keeps it from being reused or closed: results mapped over it (an array a drop changed
   * in place, not yet collected), or, for a shared array's segment, the requests it is lent to.
   */
  held: number
  /** Given back for reuse (or, a shared array's, released) while held: settled once nothing holds it. */
  returned: boolean
  /** This process's mapping of it, written in place of a pwrite (with the addon). */
  view: Uint8Array<ArrayBuffer> | undefined
}

/** The first `length` bytes of segment `fd` of process `pid`, mapped here (shared). */
const mapSegment = (native: Native, pid: number, fd: number, length: number): Uint8Array<ArrayBuffer> =>
  new Uint8Array(native.map(`/proc/${pid}/fd/${fd}`, length))

/**
 * Segments in `dir` (a tmpfs: `/dev/shm`), each a file unlinked as soon as it is open, so that
 * nothing outlives this process and the workers that map it: a worker opens one as
 * `/proc/<pid>/fd/<fd>`; the worker maps it and numpy wraps the mapping. Where the addon is
 * built (`native`), a segment is written through a mapping of it here and a worker's segment
 * is mapped; without it, a segment is written with one `pwrite` and a worker's is read with
 * parallel `pread`s.
 */
export class Segments implements SharedMemory {
  readonly pid = process.pid
  private readonly free: Array<Owned> = []
  private readonly lent = new Map<number, Owned>()
  /**
   * Segments behind `Python.sharedArray`s: by fd (until released and no request has them: `held`
   * counts those requests, `returned` says released), and by the buffer of their mapping (until
   * released).
   */
  private readonly shared = new Map<number, Owned>()
  private readonly sharedBuffers = new WeakMap<ArrayBufferLike, Owned>()
  private readonly holders = new FinalizationRegistry<Owned>((segment) => {
    if (--segment.held === 0 && segment.returned) this.settle(segment)
  })
  private made = 0
  private closed = false
  readonly map?: (pid: number, fd: number, length: number) => Uint8Array
  readonly allocate?: (bytes: number) => { readonly buffer: ArrayBuffer; readonly release: () => void }

  constructor(
    readonly threshold: number,
    private readonly dir: string,
    private readonly native?: Native
  ) {
    if (native !== undefined) {
      this.map = (pid, fd, length) => {
        const shared = pid === this.pid ? this.shared.get(fd) : undefined
        // A shared array the drop changed in place: the same memory, the same buffer.
        if (shared !== undefined) return shared.view!.subarray(0, length)
        const own = pid === this.pid ? this.lent.get(fd) : undefined
        if (own === undefined) return mapSegment(native, pid, fd, length)
        // An array changed in place in a segment of ours: a buffer of its own over the mapping
        // this process wrote it through (`write`: its pages mapped already), held apart from lending.
        const buffer = native.alias(own.view!.buffer, length)
        own.held++
        this.holders.register(buffer, own)
        return new Uint8Array(buffer)
      }
      this.allocate = (bytes) => this.allocateShared(native, bytes)
    }
  }

  lends(fd: number): boolean {
    const segment = this.lent.get(fd)
    return (segment !== undefined && !segment.kept) || this.shared.has(fd)
  }

  allocated(buffer: ArrayBufferLike): boolean {
    return this.sharedBuffers.has(buffer)
  }

  /** A new segment mapped here for a shared array, lent as it is (no copy) until released. */
  private allocateShared(native: Native, bytes: number): { readonly buffer: ArrayBuffer; readonly release: () => void } {
    const segment = this.create()
    try {
      native.reserve(segment.fd, bytes)
      segment.size = bytes
      segment.view = mapSegment(native, this.pid, segment.fd, bytes)
    } catch (e) {
      this.discard(segment)
      throw e
    }
    const buffer = segment.view.buffer
    this.shared.set(segment.fd, segment)
    this.sharedBuffers.set(buffer, segment)
    return {
      buffer,
      release: () => {
        // From now on an ordinary array, which keeps its mapping (and its memory) as long as it
        // lives; the segment closes once no request has it.
        this.sharedBuffers.delete(buffer)
        segment.returned = true
        if (segment.held === 0) this.closeShared(segment)
      }
    }
  }

  private closeShared(segment: Owned): void {
    this.shared.delete(segment.fd)
    this.discard(segment)
  }

  /** Opens a new, empty segment (throws if the directory will not have it). */
  create(): Owned {
    const file = path.join(this.dir, `snakebridge-${process.pid}-${++this.made}`)
    const fd = fs.openSync(file, "wx+", 0o600)
    fs.unlinkSync(file)
    return { fd, size: 0, kept: false, held: 0, returned: false, view: undefined }
  }

  lend(bytes: Uint8Array): Segment | undefined {
    if (this.closed) return undefined
    const shared = bytes.byteOffset === 0 ? this.sharedBuffers.get(bytes.buffer) : undefined
    if (shared !== undefined) {
      shared.held++
      return { pid: this.pid, fd: shared.fd }
    }
    const n = bytes.length
    let best = -1
    for (let i = 0; i < this.free.length; i++) {
      const size = this.free[i]!.size
      if (size >= n && (best === -1 || size < this.free[best]!.size)) best = i
    }
    let segment: Owned
    try {
      segment = best === -1 ? this.create() : this.free.splice(best, 1)[0]!
    } catch {
      return undefined
    }
    try {
      this.write(segment, bytes)
    } catch {
      // Out of room (a small /dev/shm): this one goes through the pipe.
      this.discard(segment)
      return undefined
    }
    segment.size = Math.max(segment.size, n)
    this.lent.set(segment.fd, segment)
    return { pid: this.pid, fd: segment.fd }
  }

  /**
   * Copies `bytes` to the start of the segment: into this process's mapping of it where the addon
   * is (a memcpy: twice as fast as a pwrite for 64 MiB here), else with one pwrite.
   */
  private write(segment: Owned, bytes: Uint8Array): void {
    const n = bytes.length
    if (this.native === undefined) {
      for (let at = 0; at < n; ) at += fs.writeSync(segment.fd, bytes, at, n - at, at)
      return
    }
    if (segment.view === undefined || segment.view.length < n) {
      if (segment.size < n) this.native.reserve(segment.fd, n)
      segment.view = mapSegment(this.native, this.pid, segment.fd, Math.max(n, segment.size))
    }
    segment.view.set(bytes)
  }

  /** Closes a segment for good (its mapping goes with the last view over it). */
  private discard(segment: Owned): void {
    segment.view = undefined
    fs.closeSync(segment.fd)
  }

  keep(fds: ReadonlyArray<number>): void {
    for (const fd of fds) {
      const segment = this.lent.get(fd)
      if (segment !== undefined) segment.kept = true
    }
  }

  giveBack(segments: ReadonlyArray<Segment>, reuse: boolean): void {
    for (const { fd } of segments) {
      const shared = this.shared.get(fd)
      if (shared !== undefined) {
        if (--shared.held === 0 && shared.returned) this.closeShared(shared)
        continue
      }
      const segment = this.lent.get(fd)
      if (segment === undefined) continue
      this.lent.delete(fd)
      if (reuse && !segment.kept && segment.held > 0) segment.returned = true
      else if (reuse && !segment.kept) this.settle(segment)
      else this.discard(segment)
    }
  }

  /** A segment back for good: kept for reuse, or closed with the rest. */
  private settle(segment: Owned): void {
    segment.returned = false
    if (this.closed) this.discard(segment)
    else this.keepFree(segment)
  }

  private keepFree(segment: Owned): void {
    this.free.push(segment)
    let bytes = this.free.reduce((n, s) => n + s.size, 0)
    while (this.free.length > 1 && (this.free.length > KEEP_FREE || bytes > KEEP_FREE_BYTES)) {
      const oldest = this.free.shift()!
      bytes -= oldest.size
      this.discard(oldest)
    }
  }

  async read(pid: number, fd: number, into: Uint8Array): Promise<void> {
    const f = fs.openSync(`/proc/${pid}/fd/${fd}`, "r")
    try {
      // In parallel on the thread pool: the copy into new memory is bound by first-touch page
      // faults, which several threads take at once (64 MiB: 28 ms in one read, 16 ms in four).
      const parts = Math.max(1, Math.min(READ_PARTS, Math.floor(into.length / READ_PART_MIN)))
      const step = Math.ceil(into.length / parts)
      await Promise.all(
        Array.from({ length: parts }, (_, i) => readRange(f, into, i * step, Math.min(into.length, (i + 1) * step)))
      )
    } finally {
      fs.closeSync(f)
    }
  }

  /** Closes the free segments; lent ones are closed as they come back. */
  close(): void {
    this.closed = true
    for (const segment of this.free.splice(0)) this.discard(segment)
  }
}

/**
 * Shared memory for the layer's lifetime, or undefined (logged) where it cannot be had: not
 * Linux, or a directory that will not take a segment. Workers' segments are mapped if `mapping`
 * and the addon is built.
 */
export const make = (threshold: number, dir: string, mapping: boolean) =>
  Effect.gen(function* () {
    if (process.platform !== "linux") {
      yield* Effect.logDebug("snakebridge: shared memory off (Linux only): big arrays go through the pipe")
      return undefined
    }
    const native = mapping ? load() : "sharedMemoryMapping is false"
    const segments = new Segments(threshold, dir, typeof native === "string" ? undefined : native)
    try {
      fs.closeSync(segments.create().fd)
    } catch (e) {
      yield* Effect.logWarning(
        `snakebridge: shared memory off, ${dir} will not take a segment (${e instanceof Error ? e.message : String(e)}): big arrays go through the pipe`
      )
      return undefined
    }
    yield* Effect.logDebug(
      typeof native === "string"
        ? `snakebridge: shared memory on; big results are copied, not mapped (${native})`
        : "snakebridge: shared memory on; big results are mapped (native addon)"
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => segments.close()))
    return segments as SharedMemory
  })
