/**
 * The floor: what a minimal Node <-> Python channel of the same kind as snakebridge's
 * costs on this machine. Node spawns the real interpreter on `floor_echo.py` with the
 * protocol on fds 3 (Node -> Python) and 4 (Python -> Node), frames being a 4-byte
 * big-endian length and a body. No Effect, no MessagePack: plain callbacks and Buffers.
 */
import { type ChildProcess, spawn } from "node:child_process"
import type { Readable, Writable } from "node:stream"
import { fileURLToPath } from "node:url"
import { cpuMeter, latencyRep, type LatencyRep, nowUs, type ThroughputRep } from "./stats.js"

const ECHO_SCRIPT = fileURLToPath(new URL("./floor_echo.py", import.meta.url))

/** Every process started here, so that an abnormal exit can still kill them. */
const started = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
})

/** Rejects after `ms` so that no measurement can hang the run. */
export const withTimeout = <A>(promise: Promise<A>, ms: number, label: string): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${label}: no result within ${ms} ms`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

const frame = (body: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(4 + body.length)
  out.writeUInt32BE(body.length, 0)
  body.copy(out, 4)
  return out
}

/** One echo process and a frame reader on its fd 4. */
export class FloorPeer {
  private readonly child: ChildProcess
  private readonly input: Writable
  private readonly output: Readable
  private chunks: Array<Buffer> = []
  private buffered = 0
  private need = -1
  private onFrame: (body: Buffer) => void = () => {}
  private failure: Error | undefined
  private onFailure: (error: Error) => void = () => {}
  // Whether this tick of the event loop has written, and whether it corked the channel (`write`).
  private wrote = false
  private corked = false
  readonly exited: Promise<void>

  get pid(): number {
    return this.child.pid!
  }

  constructor(python: string) {
    this.child = spawn(python, [ECHO_SCRIPT], { stdio: ["ignore", "inherit", "inherit", "pipe", "pipe"] })
    started.add(this.child)
    this.input = this.child.stdio[3] as Writable
    this.output = this.child.stdio[4] as Readable
    this.input.on("error", () => {})
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        started.delete(this.child)
        this.fail(new Error(`floor echo exited (code ${code}, signal ${signal})`))
        resolve()
      })
      this.child.once("error", (error) => {
        started.delete(this.child)
        this.fail(error)
        resolve()
      })
    })
    this.output.on("data", (chunk: Buffer) => this.onData(chunk))
  }

  private fail(error: Error) {
    if (this.failure === undefined) {
      this.failure = error
      this.onFailure(error)
    }
  }

  /** Takes `n` buffered bytes, copying only when they span several chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0]!
    let out: Buffer
    if (first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
    } else {
      out = Buffer.allocUnsafe(n)
      let filled = 0
      while (filled < n) {
        const c = this.chunks[0]!
        const k = Math.min(c.length, n - filled)
        c.copy(out, filled, 0, k)
        filled += k
        if (k === c.length) this.chunks.shift()
        else this.chunks[0] = c.subarray(k)
      }
    }
    this.buffered -= n
    return out
  }

  private onData(chunk: Buffer) {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    // Replies sent while handling this chunk leave in one write.
    this.input.cork()
    try {
      for (;;) {
        if (this.need < 0) {
          if (this.buffered < 4) break
          this.need = this.take(4).readUInt32BE(0)
        }
        if (this.buffered < this.need) break
        const body = this.take(this.need)
        this.need = -1
        this.onFrame(body)
      }
    } finally {
      process.nextTick(() => this.input.uncork())
    }
  }

  send(body: Buffer) {
    this.write(frame(body))
  }

  /**
   * The workers' write policy (spawner.ts): the first frame of a tick of the event loop leaves
   * at once, the ones after it in the same tick together on the next, in one system call. A
   * reply's callback corks the channel for its whole batch itself (`onData`).
   */
  private write(bytes: Buffer) {
    if (!this.wrote) {
      this.wrote = true
      process.nextTick(() => {
        this.wrote = false
        if (this.corked) {
          this.corked = false
          this.input.uncork()
        }
      })
    } else if (!this.corked) {
      this.corked = true
      this.input.cork()
    }
    this.input.write(bytes)
  }

  /** Writes bytes that are already framed. */
  sendFramed(bytes: Buffer) {
    this.write(bytes)
  }

  /** Feeds every reply to `onFrame` from now on, and the death of the process (at once if it is dead) to `onFailure`. */
  listen(onFrame: (body: Buffer) => void, onFailure: (error: Error) => void): void {
    this.onFrame = onFrame
    this.onFailure = onFailure
    if (this.failure !== undefined) onFailure(this.failure)
  }

  /**
   * Runs `start`, then feeds every reply to `handle` until it returns true; resolves then.
   * Fails if the process dies or nothing completes within `timeoutMs`.
   */
  exchange(start: () => void, handle: (body: Buffer) => boolean, timeoutMs: number, label: string): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const done = new Promise<void>((resolve, reject) => {
      this.listen((body) => {
        if (handle(body)) {
          this.onFrame = () => {}
          resolve()
        }
      }, reject)
    })
    start()
    return withTimeout(done, timeoutMs, label)
  }

  /** One round trip of `body`. */
  roundTrip(body: Buffer, timeoutMs = 5_000): Promise<Buffer> {
    let reply: Buffer | undefined
    return this.exchange(
      () => this.send(body),
      (b) => {
        reply = b
        return true
      },
      timeoutMs,
      "floor round trip"
    ).then(() => reply!)
  }

  /** EOF on fd 3, then SIGKILL if the process has not left within 2 s. */
  async close(): Promise<void> {
    this.input.end()
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 2_000)
    await this.exited
    clearTimeout(timer)
  }
}

/** A tiny echo request carrying `i` at offset 4. */
export const tinyBody = (i: number): Buffer => {
  const b = Buffer.alloc(16)
  b.write("e", 0)
  b.writeUInt32BE(i >>> 0, 4)
  return b
}

/**
 * Tiny round trips on `peer` matched to their callers by the number each carries, for a loop that
 * keeps many in flight: `send(i, resume)` sends `i`, and its echo calls `resume` with `ok(i)`;
 * the death of the process calls every waiting `resume` with `failed(error)`. The Effect floors
 * (effectFloor.ts, effect4/floor4.ts) wrap it in the `Effect` of their effect major.
 */
export const correlated = <R>(peer: FloorPeer, ok: (i: number) => R, failed: (error: Error) => R) => {
  const waiting = new Map<number, (result: R) => void>()
  peer.listen(
    (body) => {
      const id = body.readUInt32BE(4)
      const resume = waiting.get(id)
      waiting.delete(id)
      resume?.(ok(id))
    },
    (error) => {
      for (const resume of waiting.values()) resume(failed(error))
      waiting.clear()
    }
  )
  return (i: number, resume: (result: R) => void): void => {
    waiting.set(i >>> 0, resume)
    peer.send(tinyBody(i))
  }
}

/** Sequential tiny round trips: latency of each, and the rate over the loop. */
export const sequential = async (peer: FloorPeer, n: number, budgetMs: number): Promise<LatencyRep> => {
  const samples: Array<number> = []
  const deadline = nowUs() + budgetMs * 1e3
  const start = nowUs()
  const cpu = cpuMeter(peer.pid)
  for (let i = 0; i < n && nowUs() < deadline; i++) {
    const t = nowUs()
    const reply = await peer.roundTrip(tinyBody(i))
    samples.push(nowUs() - t)
    if (reply.readUInt32BE(4) !== i >>> 0) throw new Error("floor: echo mismatch")
  }
  return latencyRep(samples, nowUs() - start, cpu(samples.length))
}

/**
 * The same, through a cached `exec` of a code string and JSON both ways: the least a
 * "run this code with these arguments" server has to do beyond the transport.
 */
export const sequentialExecJson = async (peer: FloorPeer, n: number, budgetMs: number): Promise<LatencyRep> => {
  const samples: Array<number> = []
  const deadline = nowUs() + budgetMs * 1e3
  const start = nowUs()
  const cpu = cpuMeter(peer.pid)
  for (let i = 0; i < n && nowUs() < deadline; i++) {
    const t = nowUs()
    const reply = await peer.roundTrip(Buffer.from("j" + JSON.stringify(["_r = _a + 1", i])))
    const value = JSON.parse(reply.subarray(1).toString("utf8")) as number
    samples.push(nowUs() - t)
    if (value !== i + 1) throw new Error("floor: exec mismatch")
  }
  return latencyRep(samples, nowUs() - start, cpu(samples.length))
}

/** `total` tiny messages with `inFlight` outstanding at all times: messages per second, and the CPU per message. */
export const pipelined = async (peer: FloorPeer, total: number, inFlight: number, timeoutMs: number): Promise<ThroughputRep> => {
  let sent = 0
  let received = 0
  const start = nowUs()
  const cpu = cpuMeter(peer.pid)
  await peer.exchange(
    () => {
      for (; sent < Math.min(inFlight, total); sent++) peer.send(tinyBody(sent))
    },
    () => {
      received++
      if (sent < total) peer.send(tinyBody(sent++))
      return received === total
    },
    timeoutMs,
    "floor pipelined"
  )
  return { perSecond: (total / (nowUs() - start)) * 1e6, ...cpu(total) }
}

const MiB = 1024 * 1024

/** `bytes` Node -> Python in frames of `chunk` bytes, then a ping; MB/s (10^6) until its echo. */
export const bulkToPython = async (peer: FloorPeer, bytes: number, chunk: number, timeoutMs: number): Promise<number> => {
  const body = Buffer.alloc(chunk, 0x78)
  body.write("s", 0)
  const framed = frame(body)
  const start = nowUs()
  await peer.exchange(
    () => {
      for (let sent = 0; sent < bytes; sent += chunk) peer.sendFramed(framed)
      peer.send(tinyBody(0))
    },
    () => true,
    timeoutMs,
    "floor bulk to Python"
  )
  return bytes / (nowUs() - start)
}

/** `bytes` Python -> Node in frames of `chunk` bytes; MB/s (10^6) until the last frame is read. */
export const bulkFromPython = async (
  peer: FloorPeer,
  bytes: number,
  chunk: number,
  timeoutMs: number
): Promise<number> => {
  const request = Buffer.alloc(13)
  request.write("g", 0)
  request.writeBigUInt64BE(BigInt(bytes), 1)
  request.writeUInt32BE(chunk, 9)
  let got = 0
  const start = nowUs()
  await peer.exchange(
    () => peer.send(request),
    (body) => {
      got += body.length
      return got >= bytes
    },
    timeoutMs,
    "floor bulk from Python"
  )
  return bytes / (nowUs() - start)
}

/** Spawn the interpreter on `-c pass` and wait for its exit; milliseconds. */
export const bareStart = (python: string): Promise<number> =>
  withTimeout(
    new Promise<number>((resolve, reject) => {
      const start = nowUs()
      const child = spawn(python, ["-c", "pass"], { stdio: "ignore" })
      started.add(child)
      child.once("error", reject)
      child.once("exit", (code) => {
        started.delete(child)
        if (code === 0) resolve((nowUs() - start) / 1e3)
        else reject(new Error(`python -c pass exited with ${code}`))
      })
    }),
    30_000,
    "bare start"
  )

/** Spawn the echo process and time to its first echo; milliseconds. The peer is closed. */
export const echoStart = async (python: string): Promise<number> => {
  const start = nowUs()
  const peer = new FloorPeer(python)
  try {
    await peer.roundTrip(tinyBody(0), 30_000)
    return (nowUs() - start) / 1e3
  } finally {
    await peer.close()
  }
}

export { MiB }
