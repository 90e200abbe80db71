/**
 * The `Python` service: runs drops on a supervised pool of worker processes.
 *
 * @since 0.1.0
 */
import { Effect, Layer, type Scope } from "effect"
import type { Drop } from "./Drop.js"
import * as internalDrop from "./internal/drop.js"
import * as pool from "./internal/pool.js"
import * as internalPython from "./internal/python.js"
import * as service from "./internal/service.js"
import type * as NdArray from "./NdArray.js"
import type { SharedMemoryUnavailable, WorkerStartupError } from "./PythonError.js"
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
 * A typed array of `length` elements in shared memory, for big data passed to drops again and
 * again: a drop's argument that is such an array crosses without a copy (numpy wraps the very
 * memory this process sees), whatever its size, so a drop that changes it in place changes it
 * here too, and a result that is that array changed in place comes back as a view of the same
 * memory. Do not touch it from TypeScript while a drop that has it runs. Released with the
 * scope: after that it is an ordinary array (still readable), copied as any other.
 *
 * Needs memory that Node can map: Linux, shared memory on (`sharedMemoryThreshold`) and the
 * native addon of `@snakebridge/node` built (`sharedMemoryMapping`); otherwise it fails with
 * `SharedMemoryUnavailable`. A `Uint8Array` crosses as `bytes`, which Python copies.
 *
 * @example
 * ```ts
 * const prices = yield* Python.sharedArray(Float64Array, 8_000_000)
 * prices.set(loaded)
 * yield* py`${prices} *= 1.2` // in place, no copy either way
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const sharedArray = <A extends NdArray.TypedArray>(
  type: { new (buffer: ArrayBuffer, byteOffset: number, length: number): A; readonly BYTES_PER_ELEMENT: number },
  length: number
): Effect.Effect<A, SharedMemoryUnavailable, service.Python | Scope.Scope> =>
  Effect.flatMap(service.Python, (p) => p.sharedBuffer(Math.max(1, length) * type.BYTES_PER_ELEMENT)).pipe(
    Effect.map((buffer) => new type(buffer, 0, length))
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
