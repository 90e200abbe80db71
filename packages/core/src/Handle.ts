/**
 * A handle names an object that stays in one Python worker's registry: a
 * DataFrame, a fitted model. It is made by `Drop.handle` inside a `Scope` and
 * released when that scope closes; interpolating it into a drop binds the real
 * object, and the drop runs on the worker that holds it.
 *
 * @since 0.1.0
 */
import type { Pipeable } from "effect/Pipeable"
import * as internal from "./internal/handle.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const HandleTypeId: typeof internal.HandleTypeId = internal.HandleTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type HandleTypeId = typeof HandleTypeId

/**
 * @since 0.1.0
 * @category models
 */
export interface Handle extends Pipeable {
  readonly [HandleTypeId]: HandleTypeId
  /** The id of the object in its worker's registry. */
  readonly id: number
  /** The worker that holds the object; handles live as long as their worker. */
  readonly workerId: number
  /** True once the handle's scope has released it. */
  readonly released: boolean
}

/**
 * @since 0.1.0
 * @category refinements
 */
export const isHandle: (u: unknown) => u is Handle = internal.isHandle
