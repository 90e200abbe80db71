// After the whole suite: no Python worker started by it may still be alive.
import { readdirSync, readFileSync } from "node:fs"

const workers = (): Set<number> => {
  const found = new Set<number>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("snakebridge_worker")) found.add(Number(entry))
    } catch {
      // The process ended while we looked.
    }
  }
  return found
}

let before = new Set<number>()

export const setup = () => {
  before = workers()
}

export const teardown = async () => {
  const deadline = Date.now() + 10_000
  let left: Array<number> = []
  do {
    left = [...workers()].filter((pid) => !before.has(pid))
    if (left.length === 0) return
    await new Promise((r) => setTimeout(r, 200))
  } while (Date.now() < deadline)
  throw new Error(`Python worker processes survived the test suite: ${left.join(", ")}`)
}
