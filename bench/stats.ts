/**
 * Small statistics and timing helpers shared by the benchmark files.
 */
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { PerformanceObserver } from "node:perf_hooks"

/** Monotonic time in microseconds. */
export const nowUs = (): number => Number(process.hrtime.bigint()) / 1e3

/** Bytes in a page of memory here: a mapped result is faulted in page by page when first read. */
export const PAGE_BYTES = 4096

/** Reads the first byte of every page of `bytes` (their sum): a transfer is not done before its pages can be read. */
export const touchBytes = (bytes: Uint8Array): number => {
  let sum = 0
  for (let at = 0; at < bytes.length; at += PAGE_BYTES) sum += bytes[at]!
  return sum
}

/** The q-quantile (0..1) of a list of numbers, nearest rank on a sorted copy. */
export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** A figure over several repetitions: the median, with the min and max. */
export interface Figure {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly reps: number
}

export const figure = (values: ReadonlyArray<number>): Figure => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
  reps: values.length
})

/** Latency samples of one repetition reduced to what the table shows. */
export interface LatencyRep {
  readonly p50: number
  readonly p99: number
  readonly perSecond: number
  /** How many samples: fewer than asked when the time budget ran out. */
  readonly count: number
  /** CPU per operation, where measured (10 ms resolution for the Python process: long loops only). */
  readonly nodeCpuUs?: number
  readonly pythonCpuUs?: number
  readonly nodeGcUs?: number
}

export const latencyRep = (samplesUs: ReadonlyArray<number>, totalUs: number, cpu?: CpuPerOp): LatencyRep => ({
  p50: quantile(samplesUs, 0.5),
  p99: quantile(samplesUs, 0.99),
  perSecond: (samplesUs.length / totalUs) * 1e6,
  count: samplesUs.length,
  ...cpu
})

/** A pipelined loop: operations per second, and the CPU each took (see `CpuPerOp`). */
export interface ThroughputRep extends CpuPerOp {
  readonly perSecond: number
}

/**
 * CPU time per operation, in µs: this Node process's, and the Python processes' at the other end;
 * and the time this process spent paused in garbage collection per operation.
 */
export interface CpuPerOp {
  readonly nodeCpuUs: number
  readonly pythonCpuUs: number
  readonly nodeGcUs: number
}

/** Clock ticks per second of /proc/<pid>/stat (Linux's USER_HZ). */
const CLOCK_TICKS = 100

/** CPU time (user + system) of another process so far, in µs, from /proc; NaN where unreadable. */
const processCpuUs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

/** Starts measuring CPU time of this process and the Python processes `pids`; the result divides by `ops`. */
export const cpuMeter = (...pids: ReadonlyArray<number>) => {
  let pausedMs = 0
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pausedMs += entry.duration
  })
  gc.observe({ entryTypes: ["gc"] })
  const node = process.cpuUsage()
  const pythonCpuUs = () => pids.reduce((sum, pid) => sum + processCpuUs(pid), 0)
  const python = pythonCpuUs()
  return (ops: number): CpuPerOp => {
    const used = process.cpuUsage(node)
    for (const entry of gc.takeRecords()) pausedMs += entry.duration
    gc.disconnect()
    return {
      nodeCpuUs: (used.user + used.system) / ops,
      pythonCpuUs: (pythonCpuUs() - python) / ops,
      nodeGcUs: (pausedMs * 1e3) / ops
    }
  }
}

/**
 * The interpreter every part of the benchmark uses: the project's `.venv` if present
 * (what `NodePython.layer` picks by default), else `python3`, resolved once to
 * `sys.executable` so no shim (pyenv's) is in the measured path.
 */
export const resolvePython = (root: string): string => {
  const venv = path.join(root, ".venv", "bin", "python")
  const requested = process.env.SNAKEBRIDGE_PYTHON ?? (existsSync(venv) ? venv : "python3")
  return execFileSync(requested, ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim()
}

/** Resident set size of this Node process, in MB (10^6 bytes). */
export const rssMB = (): number => process.memoryUsage().rss / 1e6

/** Resident set size of another process from /proc, in MB, or NaN. */
export const processRssMB = (pid: number): number => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)
    return kb === null ? Number.NaN : (Number(kb[1]) * 1024) / 1e6
  } catch {
    return Number.NaN
  }
}
