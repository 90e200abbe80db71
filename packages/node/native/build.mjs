#!/usr/bin/env node
// Builds the shared memory addon (native/shm.c -> build/shm.node) where it can: Linux, a C
// compiler (`CC`, else `cc`) and Node's headers. Without it everything still works: big
// results are read into new memory instead of mapped. Never fails the install; says why not.
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const source = path.join(here, "shm.c")
const target = path.join(here, "..", "build", "shm.node")

const skip = (why) => {
  console.log(`snakebridge: shared memory addon not built (${why}); big results will be copied, not mapped`)
  process.exit(0)
}

if (process.platform !== "linux") skip("Linux only")
if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) process.exit(0)
const headers = [
  process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, "include", "node"),
  path.join(path.dirname(process.execPath), "..", "include", "node")
].find((dir) => dir && existsSync(path.join(dir, "node_api.h")))
if (headers === undefined) skip(`no node_api.h beside ${process.execPath}`)
mkdirSync(path.dirname(target), { recursive: true })
const partial = `${target}.${process.pid}`
try {
  execFileSync(process.env.CC || "cc", ["-O2", "-Wall", "-shared", "-fPIC", `-I${headers}`, "-o", partial, source], { stdio: "inherit" })
} catch (e) {
  skip(e instanceof Error ? e.message : String(e))
}
renameSync(partial, target)
console.log(`snakebridge: built ${path.relative(process.cwd(), target)}`)
