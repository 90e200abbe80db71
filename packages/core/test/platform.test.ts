import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const src = fileURLToPath(new URL("../src", import.meta.url))
const files = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]))

describe("@snakebridge/core", () => {
  it("is platform-free: no module of it imports node:* or a platform package", () => {
    const offenders = files(src).filter((f) =>
      /from\s+"(node:|@effect\/platform-node|@snakebridge\/node)/.test(readFileSync(f, "utf8"))
    )
    expect(files(src).length).toBeGreaterThan(10)
    expect(offenders).toEqual([])
  })
})
