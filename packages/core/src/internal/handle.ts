import { pipeArguments } from "effect/Pipeable"
import { Predicate } from "effect"
import type { Handle } from "../Handle.js"
import * as Metrics from "../Metrics.js"
import { HandleError } from "../PythonError.js"
import type { HandleSink } from "./codec.js"
import type { Connection } from "./connection.js"

export const HandleTypeId: unique symbol = Symbol.for("@snakebridge/core/Handle")

export class HandleImpl implements Handle {
  readonly [HandleTypeId]: typeof HandleTypeId = HandleTypeId
  released = false

  constructor(
    readonly connection: Connection,
    readonly id: number
  ) {
    connection.liveHandles++
    Metrics.liveHandles.unsafeModify(1, [])
  }

  get workerId(): number {
    return this.connection.workerId
  }

  /** Idempotent; never blocks: the id joins the worker's next release batch. */
  release(): void {
    if (this.released) return
    this.released = true
    Metrics.liveHandles.unsafeModify(-1, [])
    this.connection.release(this.id)
  }

  pipe() {
    // eslint-disable-next-line prefer-rest-params
    return pipeArguments(this, arguments)
  }

  toString(): string {
    return `Handle(${this.id}@worker ${this.workerId}${this.released ? ", released" : ""})`
  }

  toJSON(): unknown {
    return { _id: "Handle", id: this.id, workerId: this.workerId, released: this.released }
  }
}

export const isHandle = (u: unknown): u is Handle => Predicate.hasProperty(u, HandleTypeId)

/** Thrown by the encoder when a handle cannot be used; turned into a `HandleError`. */
export class HandleFailure {
  constructor(readonly error: HandleError) {}
}

/**
 * Collects the handles a request uses while it is encoded, and checks them: all
 * alive, not released, and on one worker. That worker is the request's affinity.
 */
export class HandleCollector implements HandleSink {
  connection: Connection | undefined = undefined

  isHandle(u: object): boolean {
    return HandleTypeId in u
  }

  add(u: object): number {
    const h = u as HandleImpl
    const fail = (reason: HandleError["reason"]) => {
      throw new HandleFailure(new HandleError({ reason, handleId: h.id, workerId: h.workerId }))
    }
    if (h.released) fail("Released")
    if (!h.connection.isAlive()) fail("WorkerLost")
    if (this.connection !== undefined && this.connection !== h.connection) fail("WrongWorker")
    this.connection = h.connection
    return h.id
  }
}
