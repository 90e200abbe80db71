import { Cause, Deferred, Duration, Effect, Exit, LogLevel, Option, Runtime, Scope } from "effect"
import * as Metrics from "../Metrics.js"
import { ProtocolError, WorkerLost, WorkerStartupError } from "../PythonError.js"
import type { SharedMemory, WorkerProcess } from "../Worker.js"
import { DecodeFailure, type SegmentRead, UnreadableSegment } from "./codec.js"
import * as Exits from "./exit.js"
import { IdMap } from "./idMap.js"
import {
  decodeMessage,
  type Frame,
  encodeCancel,
  encodeFree,
  encodeRelease,
  EXIT_TOO_OLD,
  FrameDecoder,
  type Hello,
  type Log,
  PROTOCOL_VERSION,
  type Reply,
  type WorkerMessage
} from "./protocol.js"

export interface ConnectionOptions {
  readonly startupTimeout: Duration.Duration
  /** How long an interrupted request may take to stop before the worker is killed. */
  readonly interruptGrace: Duration.Duration
  readonly maxFrameBytes: number
  /** Shared memory for big typed arrays, when the platform offers it. */
  readonly sharedMemory?: SharedMemory | undefined
}

export type ChannelError = WorkerLost | ProtocolError

/** A reply with the size of its frame body (a class, not a literal: see `Encoded`). */
export class Delivered {
  constructor(
    readonly reply: Reply,
    readonly bytes: number
  ) {}
}

/**
 * One worker process and its private channel: request/reply correlation, cancel,
 * batched handle release, and the death of the process failing whatever is in
 * flight.
 */
export interface Connection {
  readonly workerId: number
  readonly hello: Hello
  readonly process: WorkerProcess
  /** Code hashes this worker has compiled (as far as Node knows). */
  readonly sentHashes: Set<string>
  /** Live handles created on this worker and not yet released. */
  liveHandles: number
  /** Requests answered so far. */
  readonly served: () => number
  /** Requests waiting for their reply. */
  readonly inFlight: () => number
  /** When the last request was sent or answered (ms since the epoch). */
  readonly lastActive: () => number
  /** Set once the pool retires the worker: it takes no new work and is replaced once drained. */
  readonly retired: Deferred.Deferred<string>
  retiring: boolean
  readonly isAlive: () => boolean
  /** Resolves with the failure that ended the connection. */
  readonly death: Deferred.Deferred<ChannelError>
  /**
   * Sends a request frame and waits for its reply. Interrupting the wait cancels the
   * request in Python; a worker that does not reply within the grace period is
   * killed. `onLateOk` sees a success that arrived for an interrupted request.
   */
  readonly request: (
    id: number,
    frame: Frame,
    onLateOk?: (reply: Reply) => void,
    onEmit?: (value: unknown) => void
  ) => Effect.Effect<Delivered, ChannelError>
  /**
   * `request` in two halves, for a caller that waits by callback (set the waiter's listener):
   * `submit` sends the frame of a live connection; `abandon` is what the caller runs if it
   * stops waiting before the outcome (it cancels the request as an interrupted `request` does).
   */
  readonly submit: (id: number, frame: Frame) => Waiter
  readonly abandon: (id: number, waiter: Waiter, onLateOk?: (reply: Reply) => void) => Effect.Effect<void>
  /** Sends a frame that has no reply. */
  readonly send: (frame: Frame) => void
  readonly release: (handleId: number) => void
  readonly kill: (reason: string) => Effect.Effect<void>
}

const STALE_SET_LIMIT = 4096

const isMapped = (r: SegmentRead) => r.mapped

/** How long a worker whose segment cannot be read has to turn out dead before that is a protocol error. */
const EXIT_WAIT = Duration.millis(250)

/**
 * The outcome of one request: completed once, by its reply or by the channel's death, and
 * given to one listener at a time: the request's fiber (then, after an interruption, the
 * cancel that waits for the worker to stop). Lighter than a Deferred, which costs
 * microseconds to make.
 */
export class Waiter {
  outcome: Exit.Exit<Delivered, ChannelError> | undefined
  /** Called once with the outcome, unless replaced or cleared before it comes. */
  listener: ((outcome: Exit.Exit<Delivered, ChannelError>) => void) | undefined

  done(outcome: Exit.Exit<Delivered, ChannelError>): void {
    if (this.outcome !== undefined) return
    this.outcome = outcome
    const listener = this.listener
    this.listener = undefined
    listener?.(outcome)
  }

  /**
   * Waits for the outcome as the listener (made on demand: a trivial drop waits by callback). An
   * interrupted wait leaves its listener until the outcome or the next wait: Effect ignores a
   * resume that comes after an interruption, and a canceler here would cost each request an
   * `Effect.onInterrupt` (see exit.ts).
   */
  wait(): Effect.Effect<Delivered, ChannelError> {
    return Effect.async((resume) => {
      if (this.outcome !== undefined) return resume(this.outcome)
      this.listener = resume
    })
  }
}

const LEVELS: ReadonlyArray<readonly [number, LogLevel.LogLevel]> = [
  [50, LogLevel.Fatal],
  [40, LogLevel.Error],
  [30, LogLevel.Warning],
  [20, LogLevel.Info],
  [10, LogLevel.Debug]
]

/** A Python log record on the Effect Logger: level mapped, logger name as an annotation. */
const forwardLog = (log: Log) =>
  Effect.logWithLevel(LEVELS.find(([n]) => log.level >= n)?.[1] ?? LogLevel.Trace, log.message).pipe(
    Effect.annotateLogs({ logger: log.name, stream: "logging" })
  )

export const make = (
  workerId: number,
  proc: WorkerProcess,
  options: ConnectionOptions
): Effect.Effect<Connection, WorkerStartupError, Scope.Scope> =>
  Effect.gen(function* () {
    const pending = new IdMap<Waiter>()
    const death = yield* Deferred.make<ChannelError>()
    const helloDeferred = yield* Deferred.make<Hello, ChannelError>()
    let releases: Array<number> = []
    // The worker's segments read out of and not yet handed back (ext 6).
    let segmentsRead: Array<number> = []
    // Messages with arrays in the worker's shared memory are delivered once those are read (off
    // the event loop); messages after them wait their turn, so that order is kept.
    let reading: Promise<void> | undefined
    const decoder = new FrameDecoder(options.maxFrameBytes)
    let alive = true
    let served = 0
    let lastActive = Date.now()
    const retired = yield* Deferred.make<string>()
    let killReason: string | undefined

    const die = (error: ChannelError) =>
      Effect.suspend(() => {
        if (!alive) return Effect.void
        alive = false
        const waiting = pending.entries()
        for (const [id] of waiting) untrack(id)
        for (const [, waiter] of waiting) waiter.done(Exit.fail(error))
        return Deferred.fail(helloDeferred, error).pipe(
          Effect.zipRight(Deferred.succeed(death, error)),
          Effect.zipRight(Effect.logDebug(error.message))
        )
      })

    const lost = (reason: string) =>
      proc.exited.pipe(
        Effect.timeoutOption("2 seconds"),
        Effect.map((status) =>
          new WorkerLost({
            workerId,
            reason: killReason ?? reason,
            exitCode: Option.getOrNull(Option.map(status, (s) => s.code)),
            signal: Option.getOrNull(Option.map(status, (s) => s.signal))
          })
        )
      )

    // A worker is busy while it has requests in flight.
    const track = (id: number, waiter: Waiter) => {
      if (pending.size === 0) Metrics.busyWorkers.unsafeModify(1, [])
      pending.set(id, waiter)
    }
    const untrack = (id: number) => {
      if (pending.delete(id) && pending.size === 0) Metrics.busyWorkers.unsafeModify(-1, [])
    }

    // Handle releases go out in batches: all ids released in one turn of the event loop, and
    // always before the next request, so a request never sees an object its caller released.
    // The worker's segments go back as soon as they are read.
    const flushReleases = () => {
      if (segmentsRead.length > 0) {
        const fds = segmentsRead
        segmentsRead = []
        if (alive) proc.write(encodeFree(fds))
      }
      if (releases.length === 0) return
      const ids = releases
      releases = []
      if (alive) proc.write(encodeRelease(ids))
    }

    const emitters = new Map<number, (value: unknown) => void>()

    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const forwardLogs = (logs: Array<Log>) => {
      if (logs.length > 0) runFork(Effect.forEach(logs, forwardLog, { discard: true }).pipe(Effect.annotateLogs("workerId", workerId)))
    }
    const protocolFailure = (error: ProtocolError) =>
      Effect.logWarning(error.message).pipe(
        Effect.zipRight(proc.kill("SIGKILL")),
        Effect.zipRight(die(error)),
        Effect.annotateLogs("workerId", workerId)
      )

    // A segment that cannot be read or mapped: a worker killed just after it named it took the
    // segment with it, and its death, which the end of its channel reports as WorkerLost, is the
    // outcome, not a protocol error.
    const unreadable = (detail: string): void => {
      runFork(
        proc.exited.pipe(
          Effect.timeoutOption(EXIT_WAIT),
          Effect.flatMap((exit) => Option.isSome(exit) ? Effect.void : protocolFailure(new ProtocolError({ workerId, detail })))
        )
      )
    }

    // A mapped segment goes back to the worker once nothing in this process holds its mapping.
    // (This process's own segments, named for arrays changed in place, are its own business.)
    const mappings = new FinalizationRegistry<number>((fd) => {
      segmentsRead.push(fd)
      flushReleases()
    })
    const hold = (reads: ReadonlyArray<SegmentRead>) => {
      for (const r of reads) {
        if (r.own) continue
        if (r.mapped) mappings.register(r.into.buffer, r.fd)
        else segmentsRead.push(r.fd)
      }
    }

    const onMessage = (body: Uint8Array, logs: Array<Log>) => {
      const reads: Array<SegmentRead> = []
      let msg: WorkerMessage
      try {
        msg = decodeMessage(body, options.sharedMemory, reads)
      } catch (e) {
        if (!(e instanceof UnreadableSegment)) throw e
        return unreadable(e.detail)
      }
      if (reading === undefined && (reads.length === 0 || reads.every(isMapped))) {
        if (reads.length > 0) hold(reads)
        return deliver(msg, body.length, logs)
      }
      deliverAfterReads(msg, body, reads)
    }

    // Apart from onMessage, whose closures would otherwise be made for every message.
    const deliverAfterReads = (first: WorkerMessage, body: Uint8Array, reads: ReadonlyArray<SegmentRead>) => {
      const shared = options.sharedMemory!
      const delivered: Promise<void> = (reading ?? Promise.resolve())
        .then(() => Promise.all(reads.map((r) => r.mapped ? undefined : shared.read(r.pid, r.fd, r.into))))
        .then(
          () => {
            hold(reads)
            flushReleases()
            let msg = first
            if (reads.some((r) => r.table && !r.mapped)) {
              try {
                msg = decodeMessage(body, shared, undefined, new Map(reads.map((r) => [r.fd, r.into])))
              } catch (e) {
                const detail = e instanceof DecodeFailure ? e.detail : String(e)
                runFork(protocolFailure(new ProtocolError({ workerId, detail })))
                return
              }
            }
            const later: Array<Log> = []
            deliver(msg, body.length, later)
            forwardLogs(later)
          },
          (e) => unreadable(`cannot read shared memory of process ${proc.pid}: ${e instanceof Error ? e.message : String(e)}`)
        )
        .finally(() => {
          if (reading === delivered) reading = undefined
        })
      reading = delivered
    }

    const deliver = (msg: WorkerMessage, bytes: number, logs: Array<Log>) => {
      if (msg.t === "hello") {
        Deferred.unsafeDone(helloDeferred, Exit.succeed(msg))
        return
      }
      if (msg.t === "log") {
        logs.push(msg)
        return
      }
      if (msg.t === "emit") {
        emitters.get(msg.id)?.(msg.value)
        return
      }
      if (msg.t === "kept") {
        options.sharedMemory?.keep(msg.fds)
        return
      }
      const waiter = pending.get(msg.id)
      if (waiter !== undefined) {
        served++
        lastActive = Date.now()
        untrack(msg.id)
        waiter.done(Exit.succeed(new Delivered(msg, bytes)))
      }
    }

    // The read loop: every reply is routed to its waiter as its chunk arrives; the end of the
    // channel, for whatever reason, fails everything still waiting.
    yield* proc.readReplies((chunk) => {
      const logs: Array<Log> = []
      for (const body of decoder.push(chunk)) onMessage(body, logs)
      forwardLogs(logs)
    }).pipe(
      Effect.mapError((e) => new ProtocolError({ workerId, detail: e instanceof DecodeFailure ? e.detail : String(e) })),
      Effect.matchEffect({
        onFailure: protocolFailure,
        onSuccess: () => lost("the process closed its channel").pipe(Effect.flatMap(die))
      }),
      Effect.annotateLogs("workerId", workerId),
      Effect.forkScoped
    )

    yield* Scope.addFinalizer(yield* Effect.scope, Effect.suspend(() => die(new WorkerLost({ workerId, reason: killReason ?? "the worker was shut down" }))))

    const hello = yield* Deferred.await(helloDeferred).pipe(
      Effect.timeoutFail({
        duration: options.startupTimeout,
        onTimeout: () => "timeout" as const
      }),
      Effect.catchAll((e) =>
        proc.stderrTail.pipe(
          Effect.flatMap((stderr) =>
            Effect.fail(
              e !== "timeout" && e._tag === "WorkerLost" && e.exitCode === EXIT_TOO_OLD
                ? new WorkerStartupError({
                  reason: "Version",
                  python: proc.python,
                  detail: stderr.trim().split("\n").at(-1) || "the interpreter is older than snakebridge supports (3.10)"
                })
                : new WorkerStartupError({
                  reason: e === "timeout" ? "Timeout" : e._tag === "ProtocolError" ? "Handshake" : "Exited",
                  python: proc.python,
                  detail: e === "timeout"
                    ? `no handshake within ${Duration.format(options.startupTimeout)}`
                    : e.message,
                  stderr
                })
            )
          )
        )
      )
    )
    if (hello.protocol !== PROTOCOL_VERSION) {
      return yield* Effect.fail(
        new WorkerStartupError({
          reason: "Handshake",
          python: proc.python,
          detail: `the worker speaks protocol ${hello.protocol}, this snakebridge speaks ${PROTOCOL_VERSION}`
        })
      )
    }

    const kill = (reason: string) =>
      Effect.suspend(() => {
        killReason ??= reason
        return proc.kill("SIGKILL")
      })

    const cancel = (id: number, waiter: Waiter, onLateOk?: (reply: Reply) => void) =>
      Effect.suspend(() => {
        if (!alive) return Effect.void
        // Answered already (the reply won the race with the interruption): nothing to cancel,
        // but a late success is still handed over.
        const outcome = waiter.outcome
        if (outcome !== undefined) {
          return Effect.sync(() => Exit.isSuccess(outcome) && outcome.value.reply.t === "ok" && onLateOk?.(outcome.value.reply))
        }
        proc.control(encodeCancel(id))
        // This runs as an interruption finalizer (uninterruptible): the wait must be made
        // interruptible again, or the timeout could never cut it short.
        return Effect.interruptible(waiter.wait()).pipe(
          Effect.timeoutOption(options.interruptGrace),
          Effect.matchEffect({
            onFailure: () => Effect.void,
            onSuccess: (reply) =>
              Option.match(reply, {
                onNone: () =>
                  kill(`an interrupted request did not stop within ${Duration.format(options.interruptGrace)}`),
                onSome: ({ reply }) => Effect.sync(() => reply.t === "ok" && onLateOk?.(reply))
              })
          })
        )
      })

    const submit = (id: number, frame: Frame, onEmit?: (value: unknown) => void): Waiter => {
      const waiter = new Waiter()
      track(id, waiter)
      lastActive = Date.now()
      if (onEmit !== undefined) emitters.set(id, onEmit)
      flushReleases()
      proc.write(frame)
      return waiter
    }

    const forget = (id: number) =>
      Effect.sync(() => {
        untrack(id)
        emitters.delete(id)
      })

    const abandon = (id: number, waiter: Waiter, onLateOk?: (reply: Reply) => void) =>
      Exits.ensuring(cancel(id, waiter, onLateOk), forget(id))

    const connection: Connection = {
      workerId,
      hello,
      process: proc,
      sentHashes: new Set(),
      liveHandles: 0,
      served: () => served,
      inFlight: () => pending.size,
      lastActive: () => lastActive,
      retired,
      retiring: false,
      isAlive: () => alive,
      death,
      request: (id, frame, onLateOk, onEmit) =>
        Effect.suspend(() => {
          if (!alive) return Effect.flatMap(Deferred.await(death), Effect.fail)
          const waiter = submit(id, frame, onEmit)
          return Exits.onExit(waiter.wait(), (exit) =>
            Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? abandon(id, waiter, onLateOk) : forget(id)
          )
        }),
      submit,
      abandon,
      send: (frame) => {
        if (!alive) return
        flushReleases()
        proc.write(frame)
      },
      release: (handleId) => {
        connection.liveHandles--
        if (!alive) return
        if (releases.length === 0) queueMicrotask(flushReleases)
        releases.push(handleId)
      },
      kill
    }
    return connection
  })

/** Records that a worker has compiled `hash`; bounded so a program with endless distinct drops stays bounded. */
export const rememberHash = (conn: Connection, hash: string): void => {
  if (conn.sentHashes.size >= STALE_SET_LIMIT) conn.sentHashes.clear()
  conn.sentHashes.add(hash)
}
