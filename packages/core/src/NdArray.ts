/**
 * N-dimensional arrays: a typed array plus a shape, the TypeScript side of a numpy array.
 *
 * A one-dimensional typed array crosses as is (`Float64Array` ↔ a 1-d `float64` numpy array);
 * an `NdArray` adds the shape. Either way the bytes travel raw, never as a list of numbers, and
 * a numpy result with two or more dimensions (or none) comes back as an `NdArray`.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The element types that cross, by numpy dtype name.
 *
 * @since 0.1.0
 * @category models
 */
export type DType = "int8" | "uint8" | "int16" | "uint16" | "int32" | "uint32" | "int64" | "uint64" | "float32" | "float64"

/**
 * A typed array of one of the element types of {@link DType}.
 *
 * @since 0.1.0
 * @category models
 */
export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array

/**
 * The dtype of a typed array.
 *
 * @since 0.1.0
 * @category getters
 */
export const dtypeOf = (data: TypedArray): DType => {
  if (data instanceof Float64Array) return "float64"
  if (data instanceof Float32Array) return "float32"
  if (data instanceof Int32Array) return "int32"
  if (data instanceof Uint32Array) return "uint32"
  if (data instanceof BigInt64Array) return "int64"
  if (data instanceof BigUint64Array) return "uint64"
  if (data instanceof Int16Array) return "int16"
  if (data instanceof Uint16Array) return "uint16"
  if (data instanceof Int8Array) return "int8"
  return "uint8"
}

/**
 * A typed array in C (row-major) order with its shape: `data.length` is the product of
 * `shape`. A shape of `[]` is a 0-d array (one element).
 *
 * @example
 * ```ts
 * import { NdArray } from "@snakebridge/core"
 *
 * // a 2×3 matrix of float64; in Python, a numpy array of shape (2, 3)
 * const m = NdArray.make(new Float64Array([1, 2, 3, 4, 5, 6]), [2, 3])
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class NdArray<A extends TypedArray = TypedArray> {
  /** @internal */
  constructor(
    readonly data: A,
    readonly shape: ReadonlyArray<number>
  ) {}

  /** The numpy dtype name of the elements. */
  get dtype(): DType {
    return dtypeOf(this.data)
  }
}

/**
 * Wraps a typed array with a shape. Throws a `RangeError` when the shape does not match the
 * number of elements.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A extends TypedArray>(data: A, shape: ReadonlyArray<number>): NdArray<A> => {
  let count = 1
  for (const n of shape) {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`invalid dimension ${n} in shape [${shape.join(", ")}]`)
    count *= n
  }
  if (count !== data.length) {
    throw new RangeError(`shape [${shape.join(", ")}] holds ${count} elements, the data has ${data.length}`)
  }
  return new NdArray(data, Object.freeze([...shape]))
}

/**
 * A Schema for an `NdArray` result, e.g. `py\`np.eye(3)\`.pipe(Drop.returning(NdArray.schema))`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema: Schema.Schema<NdArray> = Schema.instanceOf(NdArray)
