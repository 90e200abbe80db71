/**
 * A drop is a block of Python written inline with the `py` tagged template, sent
 * whole to a worker and run there in one go. Interpolated values travel as data,
 * bound to fresh names in Python; they are never spliced into the code.
 *
 * @since 0.1.0
 */
import type { Effect, Schedule, Scope } from "effect"
import type { Handle } from "./Handle.js"
import * as internal from "./internal/drop.js"
import type { Python } from "./internal/service.js"
import type { DropError } from "./PythonError.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const DropTypeId: typeof internal.DropTypeId = internal.DropTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type DropTypeId = typeof DropTypeId

/**
 * What a drop runs: inline code (compiled once per call site and cached by hash in
 * each worker) or a Python function named by its dotted path.
 *
 * @since 0.1.0
 * @category models
 */
export type Source =
  | {
      readonly _tag: "Code"
      /** The code with every slot replaced by `_sb_<i>`. */
      readonly code: string
      readonly hash: string
      readonly firstLine: string
      /** Where the template was written, when the stack told. */
      readonly file: string | undefined
      readonly line: number | undefined
    }
  | { readonly _tag: "Call"; readonly target: string }

/**
 * A drop is an Effect: yielding it runs it on a worker of the `Python` service and
 * gives the result as plain data (`unknown`; use `returning` to decode it).
 *
 * @since 0.1.0
 * @category models
 */
export interface Drop extends Effect.Effect<unknown, DropError, Python> {
  readonly [DropTypeId]: DropTypeId
  readonly source: Source
  readonly args: ReadonlyArray<unknown>
  readonly kwargs: Readonly<Record<string, unknown>> | undefined
  /** Receives the drop's progress events (`snakebridge.emit`), if set with `onProgress`. */
  readonly onProgress: ((event: unknown) => Effect.Effect<void>) | undefined
  /** When the drop may run again, if set with `retry` or `idempotent`. */
  readonly retry: RetryPolicy | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RetryPolicy {
  readonly schedule: Schedule.Schedule<unknown, DropError>
  readonly exceptions: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /** How many times to run again (default 2), unless `schedule` is given. */
  readonly times?: number
  /** When to run again; its inputs are the failures. */
  readonly schedule?: Schedule.Schedule<unknown, DropError>
  /** Python exception types (as `PythonException.type` names them) that may be retried too. */
  readonly exceptions?: ReadonlyArray<string>
}

/**
 * Writes a drop. A top-level `return` gives the result; without one, the value of
 * a final expression statement; otherwise `None`. Top-level `await` works.
 *
 * @example
 * ```ts
 * const total = py`return sum(${[1, 2, 3]})`.pipe(Drop.returning(Schema.Number))
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const py: (strings: TemplateStringsArray, ...values: Array<unknown>) => Drop = internal.py

/**
 * Decodes a drop's result with a Schema; a mismatch fails with the `ParseError`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const returning: typeof internal.returning = internal.returning

/**
 * Keeps a drop's result in the worker and gives a `Handle` to it, released when the
 * enclosing `Scope` closes.
 *
 * @since 0.1.0
 * @category combinators
 */
export const handle: (self: Drop) => Effect.Effect<Handle, DropError, Python | Scope.Scope> = internal.handle

/**
 * Handles the progress events that the drop's Python code sends with
 * `snakebridge.emit(value)`: in order, each handled before the next, all before the
 * drop's result.
 *
 * @example
 * ```ts
 * py`
 * import snakebridge
 * for epoch in range(10):
 *     snakebridge.emit({"epoch": epoch})
 * `.pipe(Drop.onProgress((event) => Effect.log(event)))
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const onProgress: typeof internal.onProgress = internal.onProgress

/**
 * Streams the items of a drop whose result is an iterable, a generator or an async
 * generator, decoding each with the Schema. Python advances the generator only as far
 * as the stream is pulled (`chunkSize` items at a time, default 16); ending the stream
 * early closes the generator, running its `finally`. The generator stays on its worker.
 *
 * @example
 * ```ts
 * py`
 * def rows():
 *     for i in range(1_000_000):
 *         yield {"i": i}
 * return rows()
 * `.pipe(Drop.stream(Schema.Struct({ i: Schema.Int })), Stream.take(10))
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const stream: typeof internal.stream = internal.stream

/**
 * Lets the drop run again (on any worker) when its worker is lost, or when it raises one of
 * the listed Python exception types. A drop is never retried otherwise: Python code may have
 * side effects, so only you can say it is safe.
 *
 * @example
 * ```ts
 * py`return fetch_quote(${symbol})`.pipe(Drop.retry({ times: 3, exceptions: ["ConnectionError"] }))
 * ```
 * @since 0.1.0
 * @category combinators
 */
export const retry: typeof internal.retry = internal.retry

/**
 * Marks a drop as safe to run again: it is retried (twice) on another worker when its
 * worker is lost.
 *
 * @since 0.1.0
 * @category combinators
 */
export const idempotent: (self: Drop) => Drop = internal.idempotent

/**
 * @since 0.1.0
 * @category refinements
 */
export const isDrop: (u: unknown) => u is Drop = internal.isDrop

/**
 * The code a template compiles to, without running anything: the Python text with
 * the slot names, its hash, and the values bound to the slots.
 *
 * @since 0.1.0
 * @category utils
 */
export const compile = (self: Drop): { readonly source: Source; readonly args: ReadonlyArray<unknown> } => ({
  source: self.source,
  args: self.args
})
