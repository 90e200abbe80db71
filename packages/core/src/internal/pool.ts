import { Deferred, Duration, Effect, Exit, FiberId, Metric, Option, Schedule, Scope } from "effect"
import { WorkerLost, WorkerStartupError } from "../PythonError.js"
import * as Metrics from "../Metrics.js"
import { type SharedMemory, WorkerSpawner } from "../Worker.js"
import * as Connection from "./connection.js"
import * as Exits from "./exit.js"

export interface PoolOptions {
  /** Number of worker processes. */
  readonly workers: number
  /** Requests sent to one worker before it answers (pipelining). */
  readonly concurrency: number
  /** When a dead worker is restarted; start-up failures are retried on it too. */
  readonly restartSchedule: Schedule.Schedule<unknown, WorkerStartupError>
  readonly connection: Connection.ConnectionOptions
  readonly recycle: RecycleOptions
  /** More than `count` restarts within `within` fail the pool instead of restarting forever. */
  readonly intensity: { readonly count: number; readonly within: Duration.Duration }
  readonly dropTimeout: Duration.Duration | undefined
  /** On shutdown, how long drops in flight may take to finish before they are interrupted. */
  readonly drainTimeout: Duration.Duration
  /** Runs on every new worker before it takes work (imports, a setup drop). */
  readonly warmup: ((conn: Connection.Connection) => Effect.Effect<void, WorkerStartupError>) | undefined
}

export interface RecycleOptions {
  readonly maxDrops: number | undefined
  readonly maxIdle: Duration.Duration | undefined
  readonly maxResidentBytes: number | undefined
  /** How often idle time and memory are checked. */
  readonly checkEvery: Duration.Duration
}

/** Retires a worker: it takes no new work, and its slot replaces it once it has drained. */
const retire = (conn: Connection.Connection, reason: string): void => {
  if (conn.retiring) return
  conn.retiring = true
  Deferred.unsafeDone(conn.retired, Exit.succeed(reason))
}

const usable = (conn: Connection.Connection): boolean => conn.isAlive() && !conn.retiring

/** Why the pool gives no more workers: it gave up restarting, or it is shutting down. */
export type PoolFailure = WorkerStartupError | WorkerLost

export interface Pool {
  /** Runs `f` with a worker that has room, waiting while all are busy. */
  readonly withWorker: <A, E, R>(
    f: (conn: Connection.Connection) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PoolFailure, R>
  /**
   * `withWorker` in two halves, for a caller that waits by callback: a worker with room now
   * (undefined if none, or the pool is closing), to be given back once its request is done.
   */
  readonly takeNow: () => Connection.Connection | undefined
  readonly giveBack: (conn: Connection.Connection) => void
  readonly connections: () => ReadonlyArray<Connection.Connection>
  /** Shared memory for big typed arrays, once a worker has said it can map this process's segments. */
  readonly sharedMemory: () => SharedMemory | undefined
}

let nextWorkerId = 1

/**
 * A fixed number of supervised workers. Each slot is a fiber that starts a worker,
 * offers its capacity, waits for its death and starts the next one on the restart
 * schedule. Capacity is a queue of tokens: a token of a dead worker is discarded
 * when taken, so a crash releases its slot without bookkeeping.
 */
/**
 * Free capacity of the pool: one entry per request a worker can take now. Interruption-safe
 * where a `Queue` is not: a worker handed to a waiter that is interrupted at that moment is
 * passed on, never lost.
 */
class Capacity {
  private readonly free: Array<Connection.Connection> = []
  private readonly waiters: Array<Deferred.Deferred<Connection.Connection, PoolFailure>> = []
  private failure: PoolFailure | undefined

  put(conn: Connection.Connection): void {
    if (!usable(conn)) return
    const waiter = this.waiters.shift()
    if (waiter === undefined) this.free.push(conn)
    else Deferred.unsafeDone(waiter, Exit.succeed(conn))
  }

  fail(error: PoolFailure): void {
    this.failure = error
    for (const waiter of this.waiters.splice(0)) Deferred.unsafeDone(waiter, Exit.fail(error))
  }

  get waiting(): number {
    return this.waiters.length
  }

  /** A worker with room now; none once the pool has failed (or is closing), even if one is free. */
  takeNow(): Connection.Connection | undefined {
    if (this.failure !== undefined) return undefined
    let conn: Connection.Connection | undefined
    while ((conn = this.free.pop()) !== undefined) if (usable(conn)) return conn
    return undefined
  }

  readonly take: Effect.Effect<Connection.Connection, PoolFailure> = Effect.suspend(() => {
    if (this.failure !== undefined) return Effect.fail(this.failure)
    const conn = this.takeNow()
    if (conn !== undefined) return Effect.succeed(conn)
    const waiter = Deferred.unsafeMake<Connection.Connection, PoolFailure>(FiberId.none)
    this.waiters.push(waiter)
    Metrics.queueDepth.unsafeModify(1, [])
    const waited = Exits.onInterrupt(
      Exits.ensuring(Deferred.await(waiter), Effect.sync(() => Metrics.queueDepth.unsafeModify(-1, []))),
      () =>
        Effect.suspend(() => {
          const i = this.waiters.indexOf(waiter)
          if (i !== -1) {
            this.waiters.splice(i, 1)
            return Effect.void
          }
          // Already handed a worker: pass it on.
          return Deferred.poll(waiter).pipe(
            Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (e) => Effect.ignore(Effect.map(e, (c) => this.put(c))) }))
          )
        })
    )
    return Effect.flatMap(waited, (c) => (usable(c) ? Effect.succeed(c) : this.take))
  })
}

/**
 * A fixed number of supervised workers. Each slot is a fiber that starts a worker,
 * offers its capacity, waits for its death and starts the next one on the restart
 * schedule. Capacity of a dead worker is discarded when met, so a crash releases its
 * slot without bookkeeping.
 */
export const make = (options: PoolOptions): Effect.Effect<Pool, WorkerStartupError, Scope.Scope | WorkerSpawner> =>
  Effect.gen(function* () {
    const spawner = yield* WorkerSpawner
    const connectionOptions = { ...options.connection, sharedMemory: spawner.sharedMemory }
    let sharedMemory: SharedMemory | undefined
    let announced = false
    const capacity = new Capacity()
    const current: Array<Connection.Connection | undefined> = new Array(options.workers).fill(undefined)

    const start = (scope: Scope.Scope) =>
      Effect.suspend(() => {
        const workerId = nextWorkerId++
        return spawner.spawn(workerId).pipe(
          Effect.flatMap((proc) => Connection.make(workerId, proc, connectionOptions)),
          Effect.tap((conn) => {
            if (conn.hello.shm === true) sharedMemory = spawner.sharedMemory
          }),
          Effect.tap((conn) => (options.warmup === undefined ? Effect.void : options.warmup(conn))),
          Effect.tap((conn) => {
            if (announced) return Effect.logDebug(`worker ${workerId} ready: pid ${conn.hello.pid}, Python ${conn.hello.python}`)
            // Which interpreter the pool runs, as the first worker reports it, once.
            announced = true
            const origin = spawner.origin === undefined ? "" : ` (${spawner.origin})`
            return Effect.logInfo(`snakebridge: Python ${conn.hello.python} at ${conn.hello.executable}${origin}`)
          }),
          Scope.extend(scope)
        )
      })

    const { recycle } = options
    /** Retires a worker that has been idle too long or grown above the memory limit. */
    const watch = (conn: Connection.Connection) =>
      Effect.gen(function* () {
        if (
          recycle.maxIdle !== undefined &&
          conn.inFlight() === 0 &&
          Date.now() - conn.lastActive() > Duration.toMillis(recycle.maxIdle)
        ) {
          retire(conn, `idle for more than ${Duration.format(recycle.maxIdle)}`)
        }
        if (recycle.maxResidentBytes !== undefined) {
          const rss = yield* conn.process.residentMemory
          if (rss !== undefined && rss > recycle.maxResidentBytes) {
            retire(conn, `resident memory ${mb(rss)} MB above the limit of ${mb(recycle.maxResidentBytes)} MB`)
          }
        }
      }).pipe(Effect.repeat(Schedule.spaced(recycle.checkEvery)), Effect.asVoid)

    // Restart intensity, as OTP supervisors have it: too many deaths in a window fail the pool.
    const deaths: Array<number> = []
    const intense = (): boolean => {
      const now = Date.now()
      deaths.push(now)
      const window = Duration.toMillis(options.intensity.within)
      while (deaths.length > 0 && now - deaths[0]! > window) deaths.shift()
      return deaths.length > options.intensity.count
    }

    /** Waits until the worker dies, or is retired and has answered everything in flight. */
    const serve = (conn: Connection.Connection) =>
      Effect.raceFirst(
        Deferred.await(conn.death).pipe(
          Effect.flatMap((error) =>
            intense()
              ? Effect.fail(
                  new WorkerStartupError({
                    reason: "Intensity",
                    python: conn.process.python,
                    detail: `more than ${options.intensity.count} worker restarts within ${Duration.format(options.intensity.within)}; the last: ${error.message}`
                  })
                )
              : Effect.logWarning(`worker lost, restarting: ${error.message}`).pipe(
                  Effect.zipRight(Metric.increment(Metrics.workerRestarts))
                )
          )
        ),
        Deferred.await(conn.retired).pipe(
          Effect.tap(() =>
            Effect.sync(() => conn.inFlight()).pipe(
              Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("10 millis") })
            )
          ),
          Effect.flatMap((reason) =>
            Effect.logInfo(`worker ${conn.workerId} recycled after ${conn.served()} requests: ${reason}`).pipe(
              Effect.zipRight(Metric.increment(Metrics.workerRecycles))
            )
          )
        )
      )

    /** One worker's life: start, serve until death or retirement, shut down. */
    const life = (slot: number, starting: (scope: Scope.Scope) => Effect.Effect<Connection.Connection, WorkerStartupError>) =>
      Effect.acquireUseRelease(
        Scope.make(),
        (scope) =>
          starting(scope).pipe(
            Effect.tap((conn) =>
              Effect.sync(() => {
                current[slot] = conn
                for (let i = 0; i < options.concurrency; i++) capacity.put(conn)
              })
            ),
            Effect.tap((conn) =>
              recycle.maxIdle !== undefined || recycle.maxResidentBytes !== undefined
                ? Effect.forkIn(watch(conn), scope)
                : Effect.void
            ),
            Effect.flatMap(serve)
          ),
        (scope, exit) =>
          Effect.sync(() => {
            current[slot] = undefined
          }).pipe(Effect.zipRight(Scope.close(scope, exit)))
      )

    const supervise = (slot: number, ready: Deferred.Deferred<void, WorkerStartupError>) =>
      life(slot, (scope) => start(scope).pipe(Effect.tap(() => Deferred.succeed(ready, undefined)))).pipe(
        Effect.zipRight(
          life(slot, (scope) => start(scope).pipe(Effect.retry(options.restartSchedule))).pipe(Effect.forever)
        ),
        Effect.tapError((error) =>
          Effect.logError(`worker slot ${slot} gave up: ${error.message}`).pipe(
            Effect.zipRight(Effect.sync(() => capacity.fail(error))),
            Effect.zipRight(Deferred.fail(ready, error))
          )
        ),
        Effect.annotateLogs("workerSlot", slot)
      )

    const readies = yield* Effect.forEach(
      Array.from({ length: options.workers }, (_, i) => i),
      (slot) =>
        Effect.gen(function* () {
          const ready = yield* Deferred.make<void, WorkerStartupError>()
          yield* Effect.forkScoped(supervise(slot, ready))
          return ready
        })
    )
    yield* Effect.forEach(readies, Deferred.await, { discard: true, concurrency: "unbounded" })

    // Graceful shutdown, before the slots are stopped (finalizers run last-added first): take no
    // new drops, let those in flight finish up to the drain timeout; then the slots close their
    // workers, failing what is left, and each worker gets EOF, a grace period, then SIGKILL.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => capacity.fail(new WorkerLost({ workerId: 0, reason: "the pool is shutting down" }))).pipe(
        Effect.zipRight(
          Effect.interruptible(
            Effect.sync(() => current.reduce((n, c) => n + (c?.inFlight() ?? 0), 0)).pipe(
              Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("10 millis") }),
              Effect.timeoutOption(options.drainTimeout)
            )
          )
        )
      )
    )

    const giveBack = (conn: Connection.Connection) => {
      if (recycle.maxDrops !== undefined && conn.served() >= recycle.maxDrops) {
        retire(conn, `served ${recycle.maxDrops} drops`)
      }
      capacity.put(conn)
    }

    return {
      withWorker: (f) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(restore(capacity.take), (conn) =>
            Exits.ensuring(restore(f(conn)), Effect.sync(() => giveBack(conn)))
          )
        ),
      takeNow: () => capacity.takeNow(),
      giveBack,
      connections: () => current.filter((c): c is Connection.Connection => c !== undefined && c.isAlive()),
      sharedMemory: () => sharedMemory
    } satisfies Pool
  })

const mb = (bytes: number) => Math.round(bytes / (1024 * 1024))

export const defaultRestartSchedule: Schedule.Schedule<unknown, WorkerStartupError> = Schedule.exponential(
  "100 millis"
).pipe(Schedule.union(Schedule.spaced("5 seconds")), Schedule.intersect(Schedule.recurs(10)))

export const defaultConnectionOptions: Connection.ConnectionOptions = {
  startupTimeout: Duration.seconds(30),
  interruptGrace: Duration.seconds(2),
  maxFrameBytes: 1024 * 1024 * 1024
}
