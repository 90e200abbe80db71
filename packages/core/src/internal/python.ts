import { Cause, Chunk, Clock, Context, DefaultServices, Duration, Effect, Exit, Fiber, FiberId, MetricLabel, Option, Queue, Scope, Stream, Tracer } from "effect"
import { identity } from "effect/Function"
import type { Drop } from "../Drop.js"
import type { Handle } from "../Handle.js"
import * as Metrics from "../Metrics.js"
import {
  type DropError,
  EncodeError,
  HandleError,
  ProtocolError,
  DropTimeout,
  PythonException,
  SharedMemoryUnavailable,
  WorkerStartupError
} from "../PythonError.js"
import { type Encoded, EncodeFailure, Encoder } from "./codec.js"
import * as Connection from "./connection.js"
import { locate, mapTraceback } from "./drop.js"
import * as Exits from "./exit.js"
import { HandleCollector, HandleFailure, HandleImpl } from "./handle.js"
import type { Pool } from "./pool.js"
import { encodeCall, encodeClose, encodePull, encodeRun, type Frame, type Mode, type Reply } from "./protocol.js"
import { type Python, RunOnFiber, type WorkerInfo } from "./service.js"
import type { Segment, SharedMemory } from "../Worker.js"

let nextRequestId = 1

/** A drop's values encoded (a class, not a literal: see `Encoded`). */
class Prepared {
  constructor(
    readonly args: Encoded,
    readonly kwargs: Encoded | undefined,
    readonly affinity: Connection.Connection | undefined,
    /** Shared memory lent to the request for its big typed arrays. */
    readonly segments: ReadonlyArray<Segment>
  ) {}
}

/**
 * Encodes a drop's values once, before a worker is chosen: errors name their path, handles pick
 * the worker. Big typed arrays are copied into shared memory segments (given back by `lent`).
 * Throws what `encodingError` turns into a failure.
 */
const encode = (drop: Drop, shared: SharedMemory | undefined): Prepared => {
  const handles = new HandleCollector()
  const e = new Encoder(64, handles, shared)
  const k = drop.kwargs === undefined ? undefined : new Encoder(32, handles, shared)
  try {
    e.value(drop.args)
    k?.value(drop.kwargs)
  } catch (error) {
    const segments = k === undefined ? e.segments : [...e.segments, ...k.segments]
    if (segments.length > 0) shared!.giveBack(segments, true)
    throw error
  }
  return new Prepared(
    e.encoded(),
    k?.encoded(),
    handles.connection,
    k === undefined || k.segments.length === 0 ? e.segments : [...e.segments, ...k.segments]
  )
}

const encodingError = (e: unknown): Effect.Effect<never, DropError> => {
  // The args array is the root: its index is the slot number.
  if (e instanceof EncodeFailure) return Effect.fail(new EncodeError({ side: "node", path: e.path, detail: e.detail }))
  if (e instanceof HandleFailure) return Effect.fail(e.error)
  return Effect.die(e)
}

/**
 * Runs `effect` with the drop's shared memory lent to it, given back afterwards: reused if a
 * worker answered, closed if not (it may still map them).
 */
const lent = <A>(p: Prepared, shared: SharedMemory | undefined, effect: Effect.Effect<A, DropError>): Effect.Effect<A, DropError> =>
  p.segments.length === 0
    ? effect
    : Exits.onExit(effect, (exit) => Effect.sync(() => shared!.giveBack(p.segments, answered(exit))))

const prepared = <A>(
  drop: Drop,
  shared: SharedMemory | undefined,
  use: (prepared: Prepared) => Effect.Effect<A, DropError>
): Effect.Effect<A, DropError> =>
  Effect.suspend((): Effect.Effect<A, DropError> => {
    let p: Prepared
    try {
      p = encode(drop, shared)
    } catch (e) {
      return encodingError(e)
    }
    return lent(p, shared, use(p))
  })

/** Whether a worker answered the request (success, or an error it replied with). */
const answered = (exit: Exit.Exit<unknown, DropError>): boolean => {
  if (Exit.isSuccess(exit)) return true
  const error = Cause.failureOption(exit.cause)
  return Option.isSome(error) && ["PythonException", "EncodeError", "HandleError"].includes(error.value._tag)
}

const frameFor = (drop: Drop, conn: Connection.Connection, id: number, prepared: Prepared, mode: Mode, withCode: boolean) => {
  const source = drop.source
  if (source._tag === "Call") {
    return encodeCall({ id, target: source.target, args: prepared.args, kwargs: prepared.kwargs, mode })
  }
  const send = withCode || !conn.sentHashes.has(source.hash)
  if (send) Connection.rememberHash(conn, source.hash)
  return encodeRun({ id, hash: source.hash, code: send ? source.code : null, args: prepared.args, mode })
}

const frameBytes = (frame: Frame): number =>
  frame instanceof Uint8Array ? frame.length : frame.reduce((n, part) => n + part.length, 0)

const failure = (drop: Drop, conn: Connection.Connection, reply: Reply & { t: "err" }): DropError | "need_code" | "interrupted" => {
  switch (reply.kind) {
    case "exception": {
      const line = reply.line ?? undefined
      const mapped = mapTraceback(reply.traceback)
      return new PythonException({
        type: reply.type,
        message: reply.message,
        traceback: mapped.text,
        line,
        location: mapped.locations[0] ?? locate(drop.source, line),
        locations: mapped.locations,
        workerId: conn.workerId
      })
    }
    case "encode":
      return new EncodeError({ side: "python", path: reply.path, detail: reply.message })
    case "handle":
      return new HandleError({ reason: "Unknown", handleId: reply.handle, workerId: conn.workerId })
    case "protocol":
      return new ProtocolError({ workerId: conn.workerId, detail: reply.message })
    case "need_code":
    case "interrupted":
      return reply.kind
  }
}

/**
 * Sends a prepared drop to one worker and waits for the reply, resending the code
 * once if the worker's compile cache had dropped it.
 */
const send = (
  drop: Drop,
  conn: Connection.Connection,
  prepared: Prepared,
  mode: Mode,
  queueWaitMs: number | undefined,
  onLateOk?: (reply: Reply) => void,
  withCode = false
): Effect.Effect<unknown, DropError> =>
  Effect.suspend(() => {
    const id = nextRequestId++
    const frame = frameFor(drop, conn, id, prepared, mode, withCode)
    return Effect.flatMap(
      withProgress(drop, (onEmit) => conn.request(id, frame, onLateOk, onEmit)),
      (delivered) =>
        answer(drop, conn, delivered, frame, withCode, queueWaitMs, () =>
          send(drop, conn, prepared, mode, queueWaitMs, onLateOk, true)
        )
    )
  })

/** What a reply means for its drop: the value, the error, or `resend` with the code if the worker asks for it. */
const answer = (
  drop: Drop,
  conn: Connection.Connection,
  { bytes, reply }: Connection.Delivered,
  frame: Frame,
  withCode: boolean,
  queueWaitMs: number | undefined,
  resend: () => Effect.Effect<unknown, DropError>
): Effect.Effect<unknown, DropError> => {
  const annotate =
    queueWaitMs === undefined
      ? Effect.void
      : Effect.annotateCurrentSpan({
          "snakebridge.worker_id": conn.workerId,
          "snakebridge.queue_wait_ms": queueWaitMs,
          "snakebridge.bytes_in": frameBytes(frame),
          "snakebridge.bytes_out": bytes
        })
  if (reply.t === "ok") return Effect.as(annotate, reply.value)
  const error = failure(drop, conn, reply)
  if (error === "need_code") {
    return withCode
      ? Effect.fail(new ProtocolError({ workerId: conn.workerId, detail: "the worker asked for code it was sent" }))
      : resend()
  }
  if (error === "interrupted") return Effect.zipRight(annotate, Effect.interrupt)
  return Effect.zipRight(annotate, Effect.fail(error))
}

const millisSince = (clock: Clock.Clock, start: bigint): number => Number(clock.unsafeCurrentTimeNanos() - start) / 1e6

/** What continues as an Effect keeps the drop's metrics and what is left of its deadline. */
const meteredSince = <A, R>(
  clock: Clock.Clock,
  start: bigint,
  timeout: Duration.Duration | undefined,
  effect: Effect.Effect<A, DropError, R>
): Effect.Effect<A, DropError, R> =>
  Exits.onExit(
    timeout === undefined
      ? effect
      : deadline(Duration.millis(Math.max(0, Duration.toMillis(timeout) - millisSince(clock, start))), effect),
    (exit) => Effect.sync(() => recordExit(exit, millisSince(clock, start)))
  )

/** `f(a)`, or the defect it threw: it runs in a reply's callback, not in a fiber. */
const caught = <A, B, E, R>(f: (a: A) => Effect.Effect<B, E, R>, a: A): Effect.Effect<B, E, R> => {
  try {
    return f(a)
  } catch (e) {
    return Effect.die(e)
  }
}

/**
 * A trivial-path drop in one asynchronous step: encoded, sent to a worker with room now, its
 * reply taken in the channel's callback and its metrics recorded there, with no fiber work
 * between the send and the reply (that work was half of a trivial drop's cost in Node). What is
 * not a plain answer, or finds no worker free or shared memory needed, continues on the
 * general path, `otherwise`, metered the same.
 *
 * `onOk` makes the result from a successful reply's value in the reply's callback; `onLateOk`
 * takes the value of a success that came for an interrupted or timed-out request (a handle
 * mode drop releases what it made). `then` makes what the caller gets of the result, after the
 * drop's metrics (a decoding: an `Exit` when it can be, which the fiber resumes with as it is).
 */
const runNow = <A, B, E, R>(
  pool: Pool,
  drop: Drop,
  clock: Clock.Clock,
  timeout: Duration.Duration | undefined,
  mode: Mode,
  onOk: (value: unknown, conn: Connection.Connection) => A,
  onLateOk: ((value: unknown, conn: Connection.Connection) => void) | undefined,
  otherwise: (p: Prepared) => Effect.Effect<A, DropError>,
  then: (result: A) => Effect.Effect<B, E, R>
): Effect.Effect<B, DropError | E, R> => {
  // What an interruption does while the request is out, set once it is sent. Not returned to
  // `Effect.async`, which would wrap the drop in `Effect.onInterrupt` (see exit.ts).
  let cancel: Effect.Effect<void> | undefined
  const request = Effect.async<B, DropError | E, R>((resume) => {
    cancel = undefined
    const start = clock.unsafeCurrentTimeNanos()
    Metrics.dropsStarted.unsafeUpdate(1, [])
    const metered = (effect: Effect.Effect<A, DropError>) => resume(Effect.flatMap(meteredSince(clock, start, timeout, effect), then))
    const shared = pool.sharedMemory()
    let p: Prepared
    try {
      p = encode(drop, shared)
    } catch (e) {
      return metered(encodingError(e))
    }
    if (p.segments.length > 0) return metered(lent(p, shared, otherwise(p)))
    const conn = p.affinity ?? pool.takeNow()
    if (conn === undefined || !conn.isAlive()) return metered(otherwise(p))
    // Given back once, whichever of the reply, the deadline and an interruption comes first.
    let held = p.affinity === undefined
    const giveBack = () => {
      if (held) {
        held = false
        pool.giveBack(conn)
      }
    }
    const late = onLateOk === undefined ? undefined : (reply: Reply) => reply.t === "ok" && onLateOk(reply.value, conn)
    const id = nextRequestId++
    const frame = frameFor(drop, conn, id, p, mode, false)
    const waiter = conn.submit(id, frame)
    const done = (exit: Exit.Exit<A, DropError>) => {
      giveBack()
      recordExit(exit, millisSince(clock, start))
      resume(Exit.isSuccess(exit) ? caught(then, exit.value) : (exit as Exit.Exit<never, DropError>))
    }
    // The deadline's timer; whichever of the reply, the deadline and an interruption comes
    // first stops the other two.
    let timer: ReturnType<typeof setTimeout> | undefined
    waiter.listener = (outcome) => {
      if (timer !== undefined) clearTimeout(timer)
      if (Exit.isFailure(outcome)) return done(outcome as Exit.Exit<never, DropError>)
      if (outcome.value.reply.t === "ok") return done(Exit.succeed(onOk(outcome.value.reply.value, conn)))
      // The code again (the worker's cache had dropped it): its result is made uninterruptibly
      // once it has come, as in the callback above.
      const resend = () =>
        Effect.uninterruptibleMask((restore) =>
          Effect.map(restore(send(drop, conn, p, mode, undefined, late, true)), (value) => onOk(value, conn))
        )
      const answered = answer(drop, conn, outcome.value, frame, false, undefined, resend) as Effect.Effect<A, DropError>
      metered(Exits.ensuring(answered, Effect.sync(giveBack)))
    }
    if (timeout !== undefined) {
      // A host timer, as Effect's live Clock uses (the caller checked it is that clock):
      // `Effect.timeout` around every drop cost ≈ 40 us of Node CPU here.
      const millis = Duration.toMillis(timeout)
      timer = setTimeout(() => {
        timer = undefined
        waiter.listener = undefined
        const stopped = Exits.ensuring(conn.abandon(id, waiter, late), Effect.sync(giveBack))
        resume(meteredSince(clock, start, undefined, Effect.zipRight(stopped, Effect.fail(new DropTimeout({ millis })))))
      }, millis)
    }
    cancel = Effect.suspend(() => {
      if (timer !== undefined) clearTimeout(timer)
      waiter.listener = undefined
      return Exits.ensuring(
        conn.abandon(id, waiter, late),
        Effect.sync(() => {
          giveBack()
          recordExit(Exit.interrupt(FiberId.none), millisSince(clock, start))
        })
      )
    })
  })
  return Exits.onInterrupt(request, () => cancel ?? Effect.void)
}

/**
 * Runs a request with the drop's progress handler fed in order, every event handled
 * before the request's result is given.
 */
const withProgress = <A, E>(
  drop: Drop,
  request: (onEmit: ((value: unknown) => void) | undefined) => Effect.Effect<A, E>
): Effect.Effect<A, E> => {
  const handler = drop.onProgress
  if (handler === undefined) return request(undefined)
  return Effect.gen(function* () {
    const events = yield* Queue.unbounded<Option.Option<unknown>>()
    const consume: Effect.Effect<void> = Effect.flatMap(Queue.take(events), (event) =>
      Option.isNone(event) ? Effect.void : Effect.zipRight(handler(event.value), consume)
    )
    const consumer = yield* Effect.fork(consume)
    return yield* request((value) => Queue.unsafeOffer(events, Option.some(value))).pipe(
      Effect.ensuring(Effect.zipRight(Queue.offer(events, Option.none()), Fiber.join(consumer)))
    )
  })
}

/** Pulls the items of a stream opened on `conn`, `chunkSize` at a time. */
const pullStream = (drop: Drop, conn: Connection.Connection, sid: number, chunkSize: number) => {
  let done = false
  const pull: Effect.Effect<Chunk.Chunk<unknown>, Option.Option<DropError>> = Effect.suspend(() => {
    if (done) return Effect.fail(Option.none())
    const id = nextRequestId++
    return conn.request(id, encodePull(id, sid, chunkSize)).pipe(
      Effect.mapError(Option.some),
      Effect.flatMap(({ reply }) => {
        if (reply.t === "ok") {
          const page = reply.value as { readonly items: Array<unknown>; readonly done: boolean }
          done = page.done
          return page.items.length === 0 && done ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(page.items))
        }
        done = true
        const error = failure(drop, conn, reply)
        if (error === "interrupted") return Effect.interrupt
        if (error === "need_code") {
          return Effect.fail(Option.some(new ProtocolError({ workerId: conn.workerId, detail: "need_code for a stream pull" })))
        }
        return Effect.fail(Option.some(error))
      })
    )
  })
  return Stream.repeatEffectChunkOption(pull)
}

/**
 * Runs `f` on a worker; `queueWaitMs` is the time spent waiting for it when the drop is traced,
 * undefined when it is not (see `instrument`).
 */
const onWorker = <A>(
  pool: Pool,
  prepared: Prepared,
  traced: boolean,
  f: (conn: Connection.Connection, queueWaitMs: number | undefined) => Effect.Effect<A, DropError>
): Effect.Effect<A, DropError> => {
  // A drop that uses a handle goes to the worker holding it (checked alive while encoding),
  // queued behind that worker's work.
  if (prepared.affinity !== undefined) return f(prepared.affinity, traced ? 0 : undefined)
  if (!traced) return pool.withWorker((conn) => f(conn, undefined))
  return Effect.clockWith((clock) => {
    const asked = clock.unsafeCurrentTimeNanos()
    return pool.withWorker((conn) => f(conn, millisSince(clock, asked)))
  })
}

/** The drop metrics of one finished drop (unsafe updates: one step, not one Effect per metric). */
const recordExit = (exit: Exit.Exit<unknown, DropError>, millis: number): void => {
  if (Exit.isSuccess(exit)) {
    Metrics.dropsSucceeded.unsafeUpdate(1, [])
    Metrics.dropLatency.unsafeUpdate(millis, [])
    return
  }
  const tag = Cause.isInterruptedOnly(exit.cause)
    ? "Interrupted"
    : Option.getOrElse(Option.map(Cause.failureOption(exit.cause), (e) => e._tag), () => "Defect")
  Metrics.dropsFailed.unsafeUpdate(1, [MetricLabel.make("error", tag)])
}

/** Effect's default tracer: its spans go nowhere, so a drop makes none (one cost 11 us here). */
const nativeTracer = Effect.runSync(Effect.tracer)

/** Effect's live clock: its timers are the host's. */
const liveClock = Effect.runSync(Effect.clock)

/**
 * The drop metrics, and a span per drop or call when a tracer is installed (`traced`): with
 * Effect's default tracer no span would reach anyone, and making one costs more than a tenth
 * of a trivial drop.
 */
const instrument = <A, R>(
  drop: Drop,
  effect: (traced: boolean) => Effect.Effect<A, DropError, R>
): Effect.Effect<A, DropError, R> => {
  const source = drop.source
  const attributes =
    source._tag === "Code"
      ? {
          "snakebridge.code_hash": source.hash,
          "snakebridge.first_line": source.firstLine,
          ...(source.file === undefined ? {} : { "snakebridge.location": `${source.file}:${source.line}` })
        }
      : { "snakebridge.target": source.target }
  const metered = (traced: boolean) =>
    Effect.clockWith((clock) => {
      const start = clock.unsafeCurrentTimeNanos()
      Metrics.dropsStarted.unsafeUpdate(1, [])
      return meteredSince(clock, start, undefined, effect(traced))
    })
  return Effect.tracerWith((tracer) =>
    tracer === nativeTracer
      ? metered(false)
      : metered(true).pipe(
          // No stack trace per span: the template's TypeScript location is the `snakebridge.location`
          // attribute already, and capturing a trace cost about 6% of a drop's Node CPU.
          Effect.withSpan(source._tag === "Code" ? "snakebridge.drop" : "snakebridge.call", {
            attributes,
            kind: "client",
            captureStackTrace: false
          })
        )
  )
}

const releaseSpan = (handle: HandleImpl) =>
  Effect.sync(() => handle.release()).pipe(
    Effect.withSpan("snakebridge.release", {
      attributes: { "snakebridge.worker_id": handle.workerId, "snakebridge.handle_id": handle.id },
      captureStackTrace: false
    })
  )

/** Runs the pool's warm-up drop on a new worker; a failure is a start-up failure of that worker. */
export const warmup = (drop: Drop) => (conn: Connection.Connection): Effect.Effect<void, WorkerStartupError> =>
  prepared(drop, undefined, (p) => send(drop, conn, p, "value", 0)).pipe(
    Effect.timed,
    Effect.flatMap(([took]) => Effect.logInfo(`worker ${conn.workerId} warmed up in ${Duration.format(took)}`)),
    Effect.mapError(
      (error) =>
        new WorkerStartupError({
          reason: "Warmup",
          python: conn.process.python,
          detail: `the warm-up drop failed: ${error._tag === "PythonException" ? `\n${error.traceback}` : error.message}`
        })
    ),
    Effect.withSpan("snakebridge.warmup", { attributes: { "snakebridge.worker_id": conn.workerId } })
  )

/** The pool's default deadline for a drop; interruption reaches Python like any other. */
const deadline = <A, R>(timeout: Duration.Duration | undefined, effect: Effect.Effect<A, DropError, R>) =>
  timeout === undefined
    ? effect
    : Effect.timeoutFail(effect, {
        duration: timeout,
        onTimeout: () => new DropTimeout({ millis: Duration.toMillis(timeout) })
      })

/** A drop's own retry policy (`Drop.retry`): worker loss and the listed exception types. */
const retrying = <A, R>(drop: Drop, effect: Effect.Effect<A, DropError, R>): Effect.Effect<A, DropError, R> => {
  const policy = drop.retry
  if (policy === undefined) return effect
  const retryable = (e: DropError) =>
    e._tag === "WorkerLost" || (e._tag === "PythonException" && policy.exceptions.includes(e.type))
  return Effect.retry(effect, { schedule: policy.schedule, while: retryable })
}

/**
 * Whether a drop takes the direct path (`runNow`): spans, progress events, retries and a deadline
 * on a clock other than the live one (a TestClock) need fiber work around it.
 */
const isDirect = (
  drop: Drop,
  services: Context.Context<DefaultServices.DefaultServices>,
  clock: Clock.Clock,
  dropTimeout: Duration.Duration | undefined
) =>
  Context.get(services, Tracer.Tracer) === nativeTracer &&
  drop.onProgress === undefined &&
  drop.retry === undefined &&
  (dropTimeout === undefined || clock === liveClock)

/**
 * A request whose success is a resource in the worker (a handle, an open stream), named by the
 * id in the reply: `keep` makes what the caller gets and the Effect that gives the resource back
 * when `scope` closes; `giveBack` gives back one that arrived after an interruption. Between the
 * reply and the finalizer nothing may interrupt, or the resource would leak.
 */
const acquireRemote = <A>(
  drop: Drop,
  conn: Connection.Connection,
  p: Prepared,
  mode: Mode,
  wait: number | undefined,
  scope: Scope.Scope,
  giveBack: (id: number) => void,
  keep: (id: number) => readonly [A, Effect.Effect<void>]
): Effect.Effect<A, DropError> =>
  Effect.uninterruptibleMask((restore) =>
    restore(
      send(drop, conn, p, mode, wait, (late) => {
        if (late.t === "ok") giveBack(late.value as number)
      })
    ).pipe(
      Effect.flatMap((id) => {
        const [made, release] = keep(id as number)
        return Scope.addFinalizer(scope, release).pipe(Effect.as(made))
      })
    )
  )

/**
 * A handle drop on the general path: its handle made on the reply and released when `scope`
 * closes (the release traced only when drops are).
 */
const handleOn = (pool: Pool, drop: Drop, p: Prepared, traced: boolean, scope: Scope.Scope): Effect.Effect<Handle, DropError> =>
  onWorker(pool, p, traced, (conn, wait) =>
    acquireRemote(
      drop,
      conn,
      p,
      "handle",
      wait,
      scope,
      (id) => new HandleImpl(conn, id).release(),
      (id) => {
        const handle = new HandleImpl(conn, id)
        return [handle, traced ? releaseSpan(handle) : Effect.sync(() => handle.release())] as const
      }
    )
  )

export const make = (
  pool: Pool,
  options: { readonly dropTimeout: Duration.Duration | undefined }
): Python["Type"] => {
  const { dropTimeout } = options
  /** `direct` if the drop can take the direct path (see `isDirect`) on this fiber, `general` if not. */
  const directOn = <A>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    drop: Drop,
    direct: (clock: Clock.Clock) => A,
    general: () => A
  ): A => {
    const services = fiber.getFiberRef(DefaultServices.currentServices)
    const clock = Context.get(services, Clock.Clock)
    return isDirect(drop, services, clock, dropTimeout) ? direct(clock) : general()
  }
  const directOr = <A, E, R>(drop: Drop, direct: (clock: Clock.Clock) => Effect.Effect<A, E, R>, general: () => Effect.Effect<A, E, R>) =>
    Effect.withFiberRuntime<A, E, R>((fiber) => directOn(fiber, drop, direct, general))
  const runOnFiber: RunOnFiber = (fiber, drop, finish) =>
    directOn(
      fiber,
      drop,
      (clock) =>
        runNow(
          pool,
          drop,
          clock,
          dropTimeout,
          "value",
          identity,
          undefined,
          (p) => onWorker(pool, p, false, (conn) => send(drop, conn, p, "value", undefined)),
          finish
        ),
      () =>
        Effect.flatMap(
          instrument(drop, (traced) =>
            retrying(
              drop,
              deadline(
                dropTimeout,
                prepared(drop, pool.sharedMemory(), (p) => onWorker(pool, p, traced, (conn, wait) => send(drop, conn, p, "value", wait)))
              )
            )
          ),
          finish
        )
    )
  const run = (drop: Drop) => Effect.withFiberRuntime<unknown, DropError>((fiber) => runOnFiber(fiber, drop, Exit.succeed))
  return {
    run: Object.assign(run, { [RunOnFiber]: runOnFiber }),
    handle: (drop): Effect.Effect<Handle, DropError, Scope.Scope> =>
      directOr(
        drop,
        (clock) =>
          Effect.flatMap(Effect.scope, (scope) => {
            // The finalizer goes in before the request, and the handle is made in the reply's callback:
            // nothing can come between the two. (A drop that fails leaves it, a no-op, in the scope.)
            let made: HandleImpl | undefined
            const handleOf = (id: unknown, conn: Connection.Connection) => (made ??= new HandleImpl(conn, id as number))
            return Effect.zipRight(
              Scope.addFinalizer(scope, Effect.sync(() => made?.release())),
              runNow<Handle, Handle, never, never>(
                pool,
                drop,
                clock,
                dropTimeout,
                "handle",
                handleOf,
                (id, conn) => handleOf(id, conn).release(),
                (p) => handleOn(pool, drop, p, false, scope),
                Exit.succeed
              )
            )
          }),
        () =>
          instrument(drop, (traced) =>
            deadline(
              dropTimeout,
              Effect.flatMap(Effect.scope, (scope) =>
                prepared(drop, pool.sharedMemory(), (p) => handleOn(pool, drop, p, traced, scope))
              )
            )
          )
      ),
    stream: (drop, chunkSize) =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const scope = yield* Effect.scope
          // Opening registers the generator in the worker; the stream's scope closes it there.
          const [conn, sid] = yield* prepared(drop, pool.sharedMemory(), (p) => instrument(drop, (traced) =>
            onWorker(pool, p, traced, (conn, wait) =>
              acquireRemote(
                drop,
                conn,
                p,
                "stream",
                wait,
                scope,
                (sid) => conn.send(encodeClose(sid)),
                (sid) => [[conn, sid] as const, Effect.sync(() => conn.send(encodeClose(sid)))] as const
              )
            )
          ))
          return pullStream(drop, conn, sid, Math.max(1, chunkSize))
        })
      ),
    liveHandles: Effect.sync(() => pool.connections().reduce((n, c) => n + c.liveHandles, 0)),
    workers: Effect.sync(() =>
      pool.connections().map(
        (c): WorkerInfo => ({
          id: c.workerId,
          pid: c.hello.pid,
          python: c.hello.python,
          executable: c.hello.executable,
          liveHandles: c.liveHandles
        })
      )
    ),
    sharedBuffer: (bytes) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const shared = pool.sharedMemory()
          if (shared?.allocate === undefined) {
            return Effect.fail(
              new SharedMemoryUnavailable({
                reason: shared === undefined
                  ? "the workers cannot map this process's segments (not Linux, or sharedMemoryThreshold: false)"
                  : "this process cannot map memory (the native addon is not built, or sharedMemoryMapping: false)"
              })
            )
          }
          return Effect.try({
            try: () => shared.allocate!(bytes),
            catch: (e) => new SharedMemoryUnavailable({ reason: e instanceof Error ? e.message : String(e) })
          })
        }),
        (made) => Effect.sync(made.release)
      ).pipe(Effect.map((made) => made.buffer))
  }
}
