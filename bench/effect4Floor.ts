/**
 * The Effect floor on effect 4, beside effect 3's (effectFloor.ts): effect 4 is installed under
 * bench/effect4 only (`npm ci` there on the first run, never a dependency of the packages) and
 * measured in a process of its own (effect4/floor4.ts), which drives its own echo bare and then
 * through `Effect.forEach`, so that each of its ratios is within one process.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"

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

const firstLine = (text: string): string => text.split("\n").map((l) => l.trim()).find((l) => l !== "" && !l.startsWith("npm warn"))?.slice(0, 300) ?? ""

export const measureApart = (options: Effect4Options): Effect4Results => {
  if (!existsSync(`${DIR}node_modules/.package-lock.json`)) {
    try {
      execFileSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: DIR, stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 })
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string }
      return { samples: {}, failure: `install: ${firstLine(err.stderr?.toString() || err.message)}` }
    }
  }
  const child = spawnSync(process.execPath, [...process.execArgv, `${DIR}floor4.ts`, "--options", JSON.stringify(options)], {
    encoding: "utf8",
    timeout: options.timeoutMs * (2 * options.reps + 2)
  })
  const last = (child.stdout ?? "").split("\n").filter((l) => l.startsWith("{")).at(-1)
  if (child.status !== 0 || last === undefined) {
    const how = child.signal !== null ? `died of ${child.signal}` : `exited with ${child.status}`
    return { samples: {}, failure: `its process ${how}: ${firstLine(child.stderr ?? "")}` }
  }
  return JSON.parse(last) as Effect4Results
}
