import { Context, type Effect, type Scope, type Stream } from "effect"
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
