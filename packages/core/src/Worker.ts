/**
 * The platform seam: how a worker process is spawned and talked to. `@snakebridge/core`
 * defines it; `@snakebridge/node` provides it.
 *
 * @since 0.1.0
 */
import type { Effect, Scope } from "effect"
import { Context } from "effect"
import type { WorkerStartupError } from "./PythonError.js"

/**
 * How a process ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: string | null
}

/**
 * A running worker process with its private channel open.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerProcess {
  readonly pid: number
  /**
   * Queues a frame on the request channel: one buffer, or parts to write in order (big payloads
   * by reference, one system call). Never blocks, never throws (a dead channel drops it).
   */
  readonly write: (frame: Uint8Array | ReadonlyArray<Uint8Array>) => void
  /**
   * Queues a frame on the control channel (cancels), then, once it is written, sends the worker
   * SIGINT: the worker reads the channel in its handler, on the thread that runs requests, even
   * while a drop runs. Never blocks, never throws.
   */
  readonly control: (frame: Uint8Array) => void
  /**
   * Reads the reply channel: `onChunk` gets every chunk synchronously as it arrives (no fiber
   * per chunk: this is the hot path of every drop). Succeeds when the channel ends (the process
   * closed it or died); fails with what `onChunk` threw, after which nothing more is read.
   */
  readonly readReplies: (onChunk: (chunk: Uint8Array) => void) => Effect.Effect<void, unknown>
  /** Waits for the process to exit. */
  readonly exited: Effect.Effect<ExitStatus>
  /** Sends a signal (no-op once exited). */
  readonly kill: (signal: "SIGKILL" | "SIGTERM" | "SIGINT") => Effect.Effect<void>
  /** The resident memory of the process in bytes, measured (undefined where the platform cannot tell). */
  readonly residentMemory: Effect.Effect<number | undefined>
  /** The last few KiB the process wrote on stderr, for start-up diagnostics. */
  readonly stderrTail: Effect.Effect<string>
  /** The interpreter this process runs. */
  readonly python: string
}

/**
 * A segment of shared memory this process lent to one request: the worker opens it as
 * `/proc/<pid>/fd/<fd>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Segment {
  readonly pid: number
  readonly fd: number
}

/**
 * Shared memory for big typed arrays, where the platform has it: this process writes them
 * into segments it lends to one request at a time, and reads those the workers name in their
 * replies. Anything below `threshold`, or that finds no segment, goes through the pipe.
 *
 * @since 0.1.0
 * @category models
 */
export interface SharedMemory {
  /** Typed arrays of at least this many bytes go through shared memory. */
  readonly threshold: number
  /**
   * This process. A reply may name one of its segments, lent to that request (and not kept),
   * for an array the drop changed in place there: `read` and `map` take it back.
   */
  readonly pid: number
  /** Whether segment `fd` of this process is lent to a request now, and not kept by its worker. */
  readonly lends: (fd: number) => boolean
  /** Copies `bytes` into a free segment and lends it; undefined when none can be had. */
  readonly lend: (bytes: Uint8Array) => Segment | undefined
  /** A worker kept arrays over these segments (by fd): they are never written again. */
  readonly keep: (fds: ReadonlyArray<number>) => void
  /**
   * Ends a loan. The segment is written again for a later request only when `reuse` says the
   * worker answered (it has let go of it, unless it said it kept it); otherwise it is closed.
   */
  readonly giveBack: (segments: ReadonlyArray<Segment>, reuse: boolean) => void
  /**
   * Copies the first `into.length` bytes of segment `fd` of the worker `pid` into `into`, off
   * the event loop; rejects if it cannot.
   */
  readonly read: (pid: number, fd: number, into: Uint8Array) => Promise<void>
  /**
   * Where the platform can map memory: the first `length` bytes of segment `fd` of the worker
   * `pid`, mapped in place of a copy (throws if it cannot). The worker must not write the
   * segment again until the returned bytes, and every view over them, are collected; a segment
   * of this process is not lent again until then.
   */
  readonly map?: (pid: number, fd: number, length: number) => Uint8Array
  /**
   * Where the platform can map memory: `bytes` of new shared memory, mapped here, for an array
   * that crosses to any worker without a copy until `release` (see `Python.sharedArray`);
   * throws if it cannot.
   */
  readonly allocate?: (bytes: number) => { readonly buffer: ArrayBuffer; readonly release: () => void }
  /** Whether `buffer` was made by `allocate` and is not released. */
  readonly allocated?: (buffer: ArrayBufferLike) => boolean
}

/**
 * Spawns worker processes. Closing the scope of a spawn shuts the process down:
 * the end of its channels, SIGINT (which has it read the end even mid-drop), a grace period,
 * then SIGKILL.
 *
 * @since 0.1.0
 * @category services
 */
export class WorkerSpawner extends Context.Tag("@snakebridge/core/WorkerSpawner")<
  WorkerSpawner,
  {
    readonly spawn: (workerId: number) => Effect.Effect<WorkerProcess, WorkerStartupError, Scope.Scope>
    /** Shared memory for big typed arrays, when the platform and the options allow it. */
    readonly sharedMemory?: SharedMemory
    /** How the interpreter was chosen, for the pool's start-up log line (`from .venv: …`). */
    readonly origin?: string
  }
>() {}
