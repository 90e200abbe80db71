/**
 * The metrics snakebridge records, process-wide (every pool of the process adds to them).
 * Read them with `Metric.value`, or export them with your metrics pipeline.
 *
 * @since 0.1.0
 */
import { Metric, MetricBoundaries } from "effect"

/**
 * Drops and calls sent to a worker.
 *
 * @since 0.1.0
 * @category metrics
 */
export const dropsStarted = Metric.counter("snakebridge_drops_started", {
  description: "drops and calls sent to a Python worker",
  incremental: true
})

/**
 * Drops and calls that ended with a value.
 *
 * @since 0.1.0
 * @category metrics
 */
export const dropsSucceeded = Metric.counter("snakebridge_drops_succeeded", {
  description: "drops and calls that ended with a value",
  incremental: true
})

/**
 * Drops and calls that failed, tagged with `error` (the error's tag, or `Interrupted`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const dropsFailed = Metric.counter("snakebridge_drops_failed", {
  description: "drops and calls that failed, by error tag",
  incremental: true
})

/**
 * Time from asking for a worker to the decoded reply, in milliseconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const dropLatency = Metric.histogram(
  "snakebridge_drop_latency_ms",
  MetricBoundaries.exponential({ start: 0.025, factor: 2, count: 24 }),
  "time from asking for a worker to the reply, in ms"
)

/**
 * Drops waiting for a free worker.
 *
 * @since 0.1.0
 * @category metrics
 */
export const queueDepth = Metric.gauge("snakebridge_queue_depth", { description: "drops waiting for a free worker" })

/**
 * Workers with at least one request in flight.
 *
 * @since 0.1.0
 * @category metrics
 */
export const busyWorkers = Metric.gauge("snakebridge_busy_workers", {
  description: "workers with at least one request in flight"
})

/**
 * Handles made and not yet released.
 *
 * @since 0.1.0
 * @category metrics
 */
export const liveHandles = Metric.gauge("snakebridge_live_handles", { description: "handles made and not yet released" })

/**
 * Workers started again after one died.
 *
 * @since 0.1.0
 * @category metrics
 */
export const workerRestarts = Metric.counter("snakebridge_worker_restarts", {
  description: "workers started again after one died",
  incremental: true
})

/**
 * Workers replaced by recycling (after N drops, idle, or above the memory limit).
 *
 * @since 0.1.0
 * @category metrics
 */
export const workerRecycles = Metric.counter("snakebridge_worker_recycles", {
  description: "workers replaced by recycling",
  incremental: true
})
