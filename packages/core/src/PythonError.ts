/**
 * The typed failures of snakebridge. Every failure a user can handle has its own
 * tag, so `Effect.catchTag` works for each of them.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@snakebridge/core/PythonError")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

const PathSegment = Schema.Union(Schema.String, Schema.Number)

/**
 * Python raised inside a drop or a call.
 *
 * `line` is the line of the drop's code (1 = the line of the opening backtick);
 * `location` is the TypeScript file and line where that line of the `py`
 * template is written.
 *
 * @since 0.1.0
 * @category errors
 */
const pythonExceptionFields = {
  type: Schema.String,
  message: Schema.String,
  traceback: Schema.String,
  line: Schema.optional(Schema.Number),
  location: Schema.optional(Schema.String),
  /** The TypeScript lines of every drop frame of the traceback, innermost first. */
  locations: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  workerId: Schema.Number
}

export class PythonException extends Schema.TaggedError<PythonException>("@snakebridge/core/PythonException")(
  "PythonException",
  pythonExceptionFields
) {
  readonly [TypeId]: TypeId = TypeId

  constructor(props: Schema.Struct.Constructor<typeof pythonExceptionFields>, options?: Schema.MakeOptions) {
    super(props, options)
    // Every Error gets an own `stack` when constructed; replace it with one that reads like a
    // native stack: the Python traceback, then the TypeScript lines of the drop frames.
    const py = this.traceback.trimEnd().split("\n").map((l) => `    ${l}`).join("\n")
    const at = this.locations.map((l) => `\n    at ${l}`).join("")
    Object.defineProperty(this, "stack", {
      value: `PythonException: ${this.type}: ${this.message}\n${py}${at}`,
      writable: true,
      configurable: true
    })
  }
}

/**
 * The worker died (killed, crashed, exited) while a request was in flight, or
 * was replaced because it did not stop after an interruption.
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerLost extends Schema.TaggedError<WorkerLost>("@snakebridge/core/WorkerLost")("WorkerLost", {
  workerId: Schema.Number,
  reason: Schema.String,
  exitCode: Schema.optional(Schema.NullOr(Schema.Number)),
  signal: Schema.optional(Schema.NullOr(Schema.String))
}) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const how = this.signal ? ` (signal ${this.signal})` : this.exitCode != null ? ` (exit code ${this.exitCode})` : ""
    return `Python worker ${this.workerId} was lost: ${this.reason}${how}`
  }
}

/**
 * A worker could not start: the interpreter was not found, is too old, lacks a
 * required module, exited during start-up, did not complete the handshake in time, or
 * failed its warm-up. `Intensity`: workers died more often than the pool's restart
 * intensity allows, and the pool gave up.
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerStartupError extends Schema.TaggedError<WorkerStartupError>(
  "@snakebridge/core/WorkerStartupError"
)("WorkerStartupError", {
  reason: Schema.Literal("NotFound", "Version", "Requirement", "Exited", "Timeout", "Handshake", "Warmup", "Intensity"),
  python: Schema.String,
  detail: Schema.String,
  stderr: Schema.optional(Schema.String)
}) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const err = this.stderr && this.stderr.trim() !== "" ? `\n--- stderr ---\n${this.stderr.trimEnd()}` : ""
    return `Python worker failed to start (${this.reason}) with ${this.python}: ${this.detail}${err}`
  }
}

/**
 * The private channel carried something that is not the protocol: a malformed or
 * oversized frame, an unknown message. The worker is replaced.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProtocolError extends Schema.TaggedError<ProtocolError>("@snakebridge/core/ProtocolError")(
  "ProtocolError",
  {
    workerId: Schema.optional(Schema.Number),
    detail: Schema.String
  }
) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    return `snakebridge protocol error${this.workerId === undefined ? "" : ` on worker ${this.workerId}`}: ${this.detail}`
  }
}

/**
 * A value cannot cross the boundary: a function, a symbol, a cycle going to
 * Python (`side: "node"`), or a Python object with no mapping coming back
 * (`side: "python"`). `path` names the offending value.
 *
 * @since 0.1.0
 * @category errors
 */
export class EncodeError extends Schema.TaggedError<EncodeError>("@snakebridge/core/EncodeError")("EncodeError", {
  side: Schema.Literal("node", "python"),
  path: Schema.Array(PathSegment),
  detail: Schema.String
}) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const at = this.path.length === 0 ? "<root>" : this.path.map((p) => `[${JSON.stringify(p)}]`).join("")
    return `cannot encode the value at ${at} ${this.side === "node" ? "for Python" : "from Python"}: ${this.detail}`
  }
}

/**
 * A handle was used after its release, after its worker was lost, or together
 * with a handle of another worker.
 *
 * @since 0.1.0
 * @category errors
 */
export class HandleError extends Schema.TaggedError<HandleError>("@snakebridge/core/HandleError")("HandleError", {
  reason: Schema.Literal("Released", "WorkerLost", "WrongWorker", "Unknown"),
  handleId: Schema.Number,
  workerId: Schema.Number
}) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    switch (this.reason) {
      case "Released":
        return `handle ${this.handleId} was used after its scope released it`
      case "WorkerLost":
        return `handle ${this.handleId} belonged to worker ${this.workerId}, which is gone; handles live as long as their worker`
      case "WrongWorker":
        return `handle ${this.handleId} lives on worker ${this.workerId}, but the drop also uses a handle of another worker`
      case "Unknown":
        return `handle ${this.handleId} is not in worker ${this.workerId}'s registry`
    }
  }
}

/**
 * A drop ran longer than the pool's `dropTimeout`: it was interrupted in Python (its worker
 * reused, or replaced if it did not stop within the interrupt grace period).
 *
 * @since 0.1.0
 * @category errors
 */
export class DropTimeout extends Schema.TaggedError<DropTimeout>("@snakebridge/core/DropTimeout")("DropTimeout", {
  millis: Schema.Number
}) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    return `the drop did not finish within the pool's dropTimeout of ${this.millis} ms and was interrupted`
  }
}

/**
 * `Python.sharedArray` could not make an array in shared memory: the platform cannot map it
 * (not Linux, `sharedMemoryThreshold: false`, the native addon not built, or
 * `sharedMemoryMapping: false`), or the memory could not be had.
 *
 * @since 0.1.0
 * @category errors
 */
export class SharedMemoryUnavailable extends Schema.TaggedError<SharedMemoryUnavailable>(
  "@snakebridge/core/SharedMemoryUnavailable"
)("SharedMemoryUnavailable", {
  reason: Schema.String
}) {
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    return `no array in shared memory: ${this.reason}`
  }
}

/**
 * Every failure a drop can end with, before decoding its result. `WorkerStartupError`
 * reaches a drop only when the pool gives up restarting a worker; `DropTimeout` only when
 * the pool has a `dropTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export type DropError =
  | PythonException
  | WorkerLost
  | WorkerStartupError
  | ProtocolError
  | EncodeError
  | HandleError
  | DropTimeout

/**
 * @since 0.1.0
 * @category refinements
 */
export const isPythonError = (u: unknown): u is DropError =>
  typeof u === "object" && u !== null && TypeId in u
