/**
 * The sequential latency loops that the bench runs both in its own process (unpinned) and in a
 * process of its own with the placement fixed (placed.ts): the floor's tiny round trip and its
 * exec+JSON variant, the trivial drop and the trivial call, each after a warm-up of its own.
 */
import type { Python } from "@snakebridge/core"
import type { Effect } from "effect"
import * as floor from "./floor.js"
import * as sb from "./snakebridge.js"
import type { LatencyRep, ThroughputRep } from "./stats.js"

/** Where figures go: one number per repetition under a name, and notes for the table. */
export class Samples {
  readonly values = new Map<string, Array<number>>()
  readonly notes: Array<string> = []

  record(name: string, value: number): void {
    const list = this.values.get(name) ?? []
    list.push(value)
    this.values.set(name, list)
  }

  note(text: string): void {
    if (!this.notes.includes(text)) this.notes.push(text)
  }

  /** A note if a loop stopped short of `wanted` (its time budget ran out). */
  checkCount(label: string, got: number, wanted: number): void {
    if (got < wanted) this.note(`${label}: the time budget stopped the loop after ${got} of ${wanted}`)
  }

  /** A sequential loop's p50, p99, rate and the CPU per operation where measured, under `name`. */
  latency(name: string, rep: LatencyRep, label: string, wanted: number): void {
    this.record(`${name}.p50`, rep.p50)
    this.record(`${name}.p99`, rep.p99)
    this.record(`${name}.rate`, rep.perSecond)
    if (rep.nodeCpuUs !== undefined) this.record(`${name}.nodeCpu`, rep.nodeCpuUs)
    if (rep.pythonCpuUs !== undefined && Number.isFinite(rep.pythonCpuUs)) this.record(`${name}.pythonCpu`, rep.pythonCpuUs)
    if (rep.nodeGcUs !== undefined) this.record(`${name}.nodeGc`, rep.nodeGcUs)
    this.checkCount(label, rep.count, wanted)
  }

  /** A pipelined loop's rate under `name`, and its CPU per operation. */
  throughput(name: string, rep: ThroughputRep): void {
    this.record(name, rep.perSecond)
    this.record(`${name}.nodeCpu`, rep.nodeCpuUs)
    if (Number.isFinite(rep.pythonCpuUs)) this.record(`${name}.pythonCpu`, rep.pythonCpuUs)
  }
}

export interface LatencyConfig {
  readonly warmup: number
  readonly floorSeq: number
  readonly sbSeq: number
  /** Per loop: it stops early (and says so) once this is spent. */
  readonly budgetMs: number
}

export type Run = <A, E>(label: string, effect: Effect.Effect<A, E, Python.Python>) => Promise<A>

/** The floor's tiny round trip and its exec+JSON variant, under `prefix`; `where` ends their notes. */
export const floorSequentials = async (samples: Samples, config: LatencyConfig, peer: floor.FloorPeer, prefix: string, where = "") => {
  await floor.sequential(peer, config.warmup * 2, config.budgetMs)
  samples.latency(`${prefix}.seq`, await floor.sequential(peer, config.floorSeq, config.budgetMs), `floor sequential${where}`, config.floorSeq)
  await floor.sequentialExecJson(peer, config.warmup, config.budgetMs)
  samples.latency(`${prefix}.exec`, await floor.sequentialExecJson(peer, config.floorSeq, config.budgetMs), `floor exec+JSON${where}`, config.floorSeq)
}

/** The trivial drop and the trivial call on a runtime of one worker, under `prefix`; `where` ends their notes. */
export const dropAndCall = async (samples: Samples, config: LatencyConfig, run: Run, prefix: string, where = "") => {
  // Each loop right after a warm-up of its own: V8 re-optimises the drop path after other work
  // (another loop, the arrays of the repetition before), and a loop measured during that measures it.
  await run("warm-up", sb.sequentialDrop(config.warmup, config.budgetMs))
  samples.latency(`${prefix}.drop`, await run("drop", sb.sequentialDrop(config.sbSeq, config.budgetMs)), `trivial drop${where}`, config.sbSeq)
  await run("warm-up", sb.sequentialCall(config.warmup, config.budgetMs))
  samples.latency(`${prefix}.call`, await run("call", sb.sequentialCall(config.sbSeq, config.budgetMs)), `Python.call${where}`, config.sbSeq)
}
