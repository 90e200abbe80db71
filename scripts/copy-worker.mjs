#!/usr/bin/env node
// Ships the Python worker inside @snakebridge/node (as python/) when the package is packed,
// so an installed package finds it without the workspace.
import { cpSync, rmSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const target = join(root, "packages", "node", "python")
rmSync(target, { recursive: true, force: true })
for (const pkg of ["snakebridge_worker", "snakebridge"]) {
  cpSync(join(root, "packages", "python-worker", "src", pkg), join(target, pkg), {
    recursive: true,
    filter: (src) => !src.includes("__pycache__")
  })
}
console.log(`copied the worker into ${target}`)
