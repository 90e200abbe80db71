#!/usr/bin/env node
// Runs the worker's pytest suite with the project's .venv.
import { spawnSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const result = spawnSync(join(root, ".venv", "bin", "python"), ["-m", "pytest", "-q", ...process.argv.slice(2)], {
  cwd: join(root, "packages", "python-worker"),
  stdio: "inherit"
})
process.exit(result.status ?? 1)
