/**
 * Where the two ends of a round trip run. On a virtual machine a CPU with nothing to run halts,
 * and waking it costs tens of µs: a round trip between processes on two CPUs can pay that twice,
 * while processes taking turns on one CPU never let it halt. Left alone, the scheduler puts a
 * ping-pong on one CPU for a while, then on two, and a latency figure is whichever mix it caught.
 * So the latencies are also measured with the placement fixed by `taskset`, both ways, every
 * side in the same placement as what it is compared with.
 */
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"

export interface Placement {
  /** A short key for sample names. */
  readonly key: "twoCpus" | "oneCpu"
  readonly label: string
  /** CPU lists in `taskset -c` form: Node's process (all its threads), and the Python processes. */
  readonly node: string
  readonly python: string
}

/** The CPUs this process may run on, as `taskset -c` takes them (from /proc; undefined off Linux). */
export const allowedCpus = (): string | undefined => {
  try {
    return /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1]
  } catch {
    return undefined
  }
}

/** Expands a CPU list such as `0-1,4` into its CPUs. */
const expand = (list: string): Array<number> =>
  list.split(",").flatMap((part) => {
    const [from, to] = part.split("-").map(Number)
    return Array.from({ length: (to ?? from!) - from! + 1 }, (_, i) => from! + i)
  })

/** Sets the CPUs of every thread of `pid`. */
export const pin = (pid: number, cpus: string): void => {
  execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", cpus, String(pid)], { stdio: "ignore" })
}

/**
 * The two placements on this machine: Node on one CPU and Python on another, and both on the
 * same CPU; or why they cannot be measured here.
 */
export const placements = (): { readonly placements: ReadonlyArray<Placement>; readonly reason?: string } => {
  const allowed = allowedCpus()
  if (allowed === undefined) return { placements: [], reason: "no /proc/self/status to read this process's CPUs from" }
  const cpus = expand(allowed)
  if (cpus.length < 2) return { placements: [], reason: `this process may run on one CPU only (${allowed})` }
  try {
    pin(process.pid, allowed)
  } catch (e) {
    return { placements: [], reason: `\`taskset\` cannot set CPUs here: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` }
  }
  const [a, b] = [String(cpus[0]), String(cpus[1])]
  return {
    placements: [
      { key: "twoCpus", label: `Node on CPU ${a}, Python on CPU ${b}`, node: a, python: b },
      { key: "oneCpu", label: `Node and Python on CPU ${a}`, node: a, python: a }
    ]
  }
}

/** Every process's children, by parent pid, from /proc. */
export const childrenByParent = (): Map<number, Array<number>> => {
  const parents = new Map<number, Array<number>>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)])
    } catch {
      // gone meanwhile
    }
  }
  return parents
}

/** Every process descended from `pid` (children, their children, ...). */
export const descendants = (pid: number): Array<number> => {
  const parents = childrenByParent()
  const out: Array<number> = []
  const visit = (p: number) => {
    for (const child of parents.get(p) ?? []) {
      out.push(child)
      visit(child)
    }
  }
  visit(pid)
  return out
}
