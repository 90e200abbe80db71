/**
 * The `Python` service: runs drops on a supervised pool of worker processes.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { Drop } from "./Drop.js"
import * as internalDrop from "./internal/drop.js"
import * as pool from "./internal/pool.js"
import * as internalPython from "./internal/python.js"
import * as service from "./internal/service.js"
import type { WorkerStartupError } from "./PythonError.js"
import type { WorkerSpawner } from "./Worker.js"
import * as WorkerPool from "./WorkerPool.js"

/**
 * The service. Provided by a platform layer such as `NodePython.layer`.
 *
 * @since 0.1.0
 * @category tags
 */
export class Python extends service.Python {}

/**
 * @since 0.1.0
 * @category models
 */
export type WorkerInfo = service.WorkerInfo

/**
 * Calls a Python function by its dotted path. The result is a `Drop`, so
 * `Drop.returning` and `Drop.handle` apply.
 *
 * @example
 * ```ts
 * const root = Python.call("math.sqrt", [2]).pipe(Drop.returning(Schema.Number))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const call: (
  target: string,
  args?: ReadonlyArray<unknown>,
  kwargs?: Readonly<Record<string, unknown>>
) => Drop = internalDrop.call

/**
 * Handles made and not yet released, over all live workers.
 *
 * @since 0.1.0
 * @category accessors
 */
export const liveHandles: Effect.Effect<number, never, service.Python> = Effect.flatMap(
  service.Python,
  (p) => p.liveHandles
)

/**
 * The workers running now (id, pid, interpreter, live handles).
 *
 * @since 0.1.0
 * @category accessors
 */
export const workers: Effect.Effect<ReadonlyArray<WorkerInfo>, never, service.Python> = Effect.flatMap(
  service.Python,
  (p) => p.workers
)

/**
 * Builds the service on a pool of workers made by the platform's `WorkerSpawner`.
 * The layer is ready when every worker has completed its handshake.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: WorkerPool.Options = {}): Layer.Layer<service.Python, WorkerStartupError, WorkerSpawner> =>
  Layer.scoped(
    service.Python,
    Effect.suspend(() => {
      const resolved = WorkerPool.resolve(
        options,
        options.warmup === undefined ? undefined : internalPython.warmup(options.warmup)
      )
      return Effect.map(pool.make(resolved), (p) => internalPython.make(p, resolved))
    })
  )
