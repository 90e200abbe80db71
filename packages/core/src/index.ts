/**
 * @since 0.1.0
 */
export * as Codec from "./Codec.js"
export * as Drop from "./Drop.js"
export { py } from "./Drop.js"
export * as Handle from "./Handle.js"
export * as Metrics from "./Metrics.js"
export * as NdArray from "./NdArray.js"
export * as Protocol from "./Protocol.js"
export * as Python from "./Python.js"
export * as PythonError from "./PythonError.js"
export * as Worker from "./Worker.js"
export * as WorkerPool from "./WorkerPool.js"
