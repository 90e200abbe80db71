import { Context, type Effect, type Fiber, type Scope, type Stream } from "effect"
import type { Drop } from "../Drop.js"
import type { Handle } from "../Handle.js"
import type { DropError, SharedMemoryUnavailable } from "../PythonError.js"

/** What is known of one running worker. */
export interface WorkerInfo {
  readonly id: number
  readonly pid: number
  readonly python: string
  readonly executable: string
  readonly liveHandles: number
}

export class Python extends Context.Tag("@snakebridge/core/Python")<
  Python,
  {
    /** Runs a drop (or a call) on a worker and gives its result as plain data. */
    readonly run: (drop: Drop) => Effect.Effect<unknown, DropError>
    /** Runs a drop and keeps its result in the worker, as a handle released with the scope. */
    readonly handle: (drop: Drop) => Effect.Effect<Handle, DropError, Scope.Scope>
    /**
     * Runs a drop whose result is an iterable or (async) generator and streams its items,
     * pulling `chunkSize` at a time; ending the stream early closes the generator.
     */
    readonly stream: (drop: Drop, chunkSize: number) => Stream.Stream<unknown, DropError>
    /** Handles made and not yet released, over all live workers. */
    readonly liveHandles: Effect.Effect<number>
    /** The workers running now. */
    readonly workers: Effect.Effect<ReadonlyArray<WorkerInfo>>
    /** `bytes` of shared memory for `Python.sharedArray`, released with the scope. */
    readonly sharedBuffer: (bytes: number) => Effect.Effect<ArrayBuffer, SharedMemoryUnavailable, Scope.Scope>
  }
>() {}

/**
 * A drop's result as the caller wants it: made from the plain value in the reply's callback (an
 * `Exit` when it can be, so no fiber work comes between the reply and the caller).
 */
export type Finish<A, E, R> = (value: unknown) => Effect.Effect<A, E, R>

/**
 * Where the `run` of the service `NodePython.layer` builds keeps its fiber-level form, which a
 * drop's own Effect calls from inside the one `withFiberRuntime` it is: with the fiber at hand
 * the drop needs no service lookup, and its result is decoded without a step of its own. Kept
 * on the function, so that a service whose `run` is another one is used as it is.
 */
export const RunOnFiber: unique symbol = Symbol.for("@snakebridge/core/Python/runOnFiber")

export type RunOnFiber = <A, E, R>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  drop: Drop,
  finish: Finish<A, E, R>
) => Effect.Effect<A, DropError | E, R>
