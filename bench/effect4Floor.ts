/**
 * The Effect floor on effect 4, beside effect 3's (effectFloor.ts): effect 4 is installed under
 * bench/effect4 only (`npm ci` there on the first run, never a dependency of the packages) and
 * measured in a process of its own (effect4/floor4.ts), which drives its own echo bare and then
 * through `Effect.forEach`, so that each of its ratios is within one process.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { firstLines, npm } from "./peers/peers.js"

const DIR = fileURLToPath(new URL("./effect4/", import.meta.url))

export interface Effect4Options {
  readonly python: string
  readonly reps: number
  readonly total: number
  readonly warmup: number
  readonly timeoutMs: number
}

export interface Effect4Results {
  readonly samples: Record<string, Array<number>>
  /** Why there are no figures, if there are none. */
  readonly failure?: string
}

export const measureApart = (options: Effect4Options): Effect4Results => {
  if (!existsSync(`${DIR}node_modules/.package-lock.json`)) {
    const reason = npm(["ci", "--ignore-scripts"], DIR)
    if (reason !== undefined) return { samples: {}, failure: `install: ${reason}` }
  }
  const child = spawnSync(process.execPath, [...process.execArgv, `${DIR}floor4.ts`, "--options", JSON.stringify(options)], {
    encoding: "utf8",
    timeout: options.timeoutMs * (2 * options.reps + 2)
  })
  const last = (child.stdout ?? "").split("\n").filter((l) => l.startsWith("{")).at(-1)
  if (child.status !== 0 || last === undefined) {
    const how = child.signal !== null ? `died of ${child.signal}` : `exited with ${child.status}`
    return { samples: {}, failure: `its process ${how}: ${firstLines(child.stderr ?? "")}` }
  }
  return JSON.parse(last) as Effect4Results
}
