/**
 * The supervised pool of Python workers behind the `Python` service.
 *
 * @since 0.1.0
 */
import { Duration, type Schedule } from "effect"
import * as pool from "./internal/pool.js"
import type { Drop } from "./Drop.js"
import type { WorkerStartupError } from "./PythonError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Worker processes. Default 1. */
  readonly workers?: number
  /** Requests in flight per worker (pipelined; each worker runs them in order). Default 1. */
  readonly concurrency?: number
  /**
   * When a dead worker is started again, and how start-up failures are retried.
   * When it gives up, the pool fails: waiting and later drops get the `WorkerStartupError`.
   * Default: exponential from 100 ms, at most 5 s apart, 10 tries.
   */
  readonly restartSchedule?: Schedule.Schedule<unknown, WorkerStartupError>
  /** Time a worker has to complete its handshake. Default 30 s. */
  readonly startupTimeout?: Duration.DurationInput
  /** Time an interrupted drop has to stop before its worker is killed and replaced. Default 2 s. */
  readonly interruptGrace?: Duration.DurationInput
  /**
   * A deadline for every drop and call (streams excepted): past it the drop is interrupted
   * in Python and fails with `DropTimeout`. Default: none (use `Effect.timeout` per drop).
   */
  readonly dropTimeout?: Duration.DurationInput
  /**
   * When the pool closes, how long drops in flight may take to finish before they are
   * interrupted; new drops fail with `WorkerLost` meanwhile. Default 10 s.
   */
  readonly drainTimeout?: Duration.DurationInput
  /** The largest frame accepted from a worker. Default 1 GiB. */
  readonly maxFrameBytes?: number
  /**
   * Recycle a worker after it has served this many drops. A recycled worker takes no new
   * work, finishes what it has in flight, and is replaced; its handles fail with
   * `HandleError` ("WorkerLost") afterwards: handles live as long as their worker.
   */
  readonly maxDrops?: number
  /** Recycle a worker that has had nothing to do for this long. */
  readonly maxIdle?: Duration.DurationInput
  /** Recycle a worker whose resident memory (measured) exceeds this many MiB. */
  readonly maxResidentMemoryMB?: number
  /**
   * Restart intensity: more than `count` worker deaths within `within` fail the pool with
   * `WorkerStartupError` ("Intensity") instead of restarting forever. Default 10 within 1 minute.
   */
  readonly maxRestarts?: { readonly count: number; readonly within: Duration.DurationInput }
  /**
   * A drop run on every new worker before it takes work, so a restarted worker is as ready
   * as the first (imports, loading a model). Its cost is logged and traced
   * (`snakebridge.warmup`); a failure is a start-up failure (`WorkerStartupError` "Warmup").
   */
  readonly warmup?: Drop
}

/** @internal */
export const resolve = (
  options: Options,
  warmup: pool.PoolOptions["warmup"] = undefined
): pool.PoolOptions => ({
  warmup,
  dropTimeout: options.dropTimeout === undefined ? undefined : Duration.decode(options.dropTimeout),
  drainTimeout: Duration.decode(options.drainTimeout ?? "10 seconds"),
  intensity: {
    count: options.maxRestarts?.count ?? 10,
    within: Duration.decode(options.maxRestarts?.within ?? "1 minute")
  },
  workers: Math.max(1, options.workers ?? 1),
  concurrency: Math.max(1, options.concurrency ?? 1),
  restartSchedule: options.restartSchedule ?? pool.defaultRestartSchedule,
  connection: {
    startupTimeout: options.startupTimeout === undefined
      ? pool.defaultConnectionOptions.startupTimeout
      : Duration.decode(options.startupTimeout),
    interruptGrace: options.interruptGrace === undefined
      ? pool.defaultConnectionOptions.interruptGrace
      : Duration.decode(options.interruptGrace),
    maxFrameBytes: options.maxFrameBytes ?? pool.defaultConnectionOptions.maxFrameBytes
  },
  recycle: {
    maxDrops: options.maxDrops,
    maxIdle: options.maxIdle === undefined ? undefined : Duration.decode(options.maxIdle),
    maxResidentBytes: options.maxResidentMemoryMB === undefined ? undefined : options.maxResidentMemoryMB * 1024 * 1024,
    checkEvery: Duration.min(
      Duration.seconds(1),
      options.maxIdle === undefined ? Duration.seconds(1) : Duration.times(Duration.decode(options.maxIdle), 0.5)
    )
  }
})
