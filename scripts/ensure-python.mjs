#!/usr/bin/env node
// Prepares the project's virtual environment (.venv) for the tests: creates it with a
// real interpreter (resolving shims such as pyenv's once) and installs
// packages/python-worker/requirements-dev.txt when it changed since the last run.
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const venv = join(root, ".venv")
const venvPython = join(venv, "bin", "python")
const requirements = join(root, "packages", "python-worker", "requirements-dev.txt")
const marker = join(venv, ".snakebridge-requirements")

const run = (cmd, args) => execFileSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], cwd: root })

if (!existsSync(venvPython)) {
  const base = process.env.SNAKEBRIDGE_PYTHON ?? "python3"
  const real = execFileSync(base, ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim()
  console.log(`snakebridge: creating .venv with ${real}`)
  run(real, ["-m", "venv", venv])
}
const wanted = createHash("sha256").update(readFileSync(requirements)).digest("hex")
const have = existsSync(marker) ? readFileSync(marker, "utf8").trim() : ""
if (have !== wanted) {
  console.log("snakebridge: installing the test requirements into .venv")
  run(venvPython, ["-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", requirements])
  writeFileSync(marker, wanted + "\n")
}

// The worker's bytecode, compiled ahead: where PYTHONDONTWRITEBYTECODE is set (as on these
// machines), every worker would otherwise compile its sources again at start (about 15 ms).
// Python reads an existing __pycache__ even then; compileall skips what is up to date.
run(venvPython, ["-m", "compileall", "-q", join(root, "packages", "python-worker", "src")])
