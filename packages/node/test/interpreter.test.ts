import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { ConfigProvider, Effect, Layer, Logger, Schema } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

// Temporary virtual environments, as `python -m venv` or `uv venv` make them.
let root = ""
let envVenv = ""
let project = ""
let real = ""
let uvProject = ""

beforeAll(() => {
  real = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim()
  root = mkdtempSync(join(tmpdir(), "snakebridge-interp-"))
  envVenv = join(root, "active-venv")
  project = join(root, "project")
  execFileSync(real, ["-m", "venv", "--without-pip", envVenv])
  execFileSync(real, ["-m", "venv", "--without-pip", join(project, ".venv")])
  // The test requirements install uv into the project's .venv.
  uvProject = join(root, "uv-project")
  const uv = fileURLToPath(new URL("../../../.venv/bin/uv", import.meta.url))
  execFileSync(uv, ["venv", "--quiet", "--python", real, join(uvProject, ".venv")], { env: { ...process.env, UV_NO_CONFIG: "1" } })
}, 120_000)

afterAll(() => rmSync(root, { recursive: true, force: true }))

/** Builds a pool under a given environment (as Config sees it) and reports the worker's interpreter and the log. */
const started = (options: NodePython.Options, env: Record<string, string>) =>
  Effect.gen(function* () {
    const logs: Array<string> = []
    const capture = Logger.make(({ message }) => {
      logs.push(String(Array.isArray(message) ? message[0] : message))
    })
    const layer = NodePython.layer(options).pipe(
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))),
      Layer.provide(Logger.replace(Logger.defaultLogger, capture))
    )
    const executable = yield* Effect.scoped(
      Effect.gen(function* () {
        const [worker] = yield* Python.workers
        expect(yield* py`return 6 * 7`).toBe(42)
        return worker!.executable
      }).pipe(Effect.provide(layer))
    )
    return { executable, log: logs.find((l) => l.startsWith("snakebridge: Python")) ?? "" }
  })

describe("finding Python", () => {
  it.live("uses the explicit option first", () =>
    Effect.gen(function* () {
      const python = join(envVenv, "bin", "python")
      const { executable, log } = yield* started({ python, cwd: project }, { SNAKEBRIDGE_PYTHON: real, VIRTUAL_ENV: envVenv })
      expect(executable).toBe(python)
      expect(log).toContain(`(from option: ${python})`)
    }))

  it.live("then SNAKEBRIDGE_PYTHON", () =>
    Effect.gen(function* () {
      const python = join(envVenv, "bin", "python")
      const { executable, log } = yield* started({ cwd: project }, { SNAKEBRIDGE_PYTHON: python })
      expect(executable).toBe(python)
      expect(log).toContain("(from SNAKEBRIDGE_PYTHON")
    }))

  it.live("then the active VIRTUAL_ENV", () =>
    Effect.gen(function* () {
      const { executable, log } = yield* started({ cwd: project }, { VIRTUAL_ENV: envVenv })
      expect(executable).toBe(join(envVenv, "bin", "python"))
      expect(log).toContain("(from VIRTUAL_ENV")
    }))

  it.live("then a .venv in the working directory (as `uv venv` makes it)", () =>
    Effect.gen(function* () {
      const { executable, log } = yield* started({ cwd: project }, {})
      expect(executable).toBe(join(project, ".venv", "bin", "python"))
      expect(log).toContain("(from .venv")
    }))

  it.live("finds a .venv made by `uv venv`", () =>
    Effect.gen(function* () {
      const { executable, log } = yield* started({ cwd: uvProject }, {})
      expect(executable).toBe(join(uvProject, ".venv", "bin", "python"))
      expect(log).toContain("(from .venv")
    }))

  it.live("then python3 on the PATH, resolved once to the real executable and logged with its version", () =>
    Effect.gen(function* () {
      const { executable, log } = yield* started({ cwd: root }, {})
      expect(executable).toBe(real)
      expect(log).toMatch(/^snakebridge: Python 3\.\d+\.\d+ at .+ \(from PATH: python3\)$/)
    }))

  it.live("starts a worker without `runpy`, and its first drop finds none of the modules it imports later or never", () =>
    Effect.gen(function* () {
      // Each costs a start milliseconds here (`runpy`, behind `-m`, ≈ 5 ms; msgpack ≈ 8 ms, imported
      // once the first request is answered).
      const loaded = yield* py`
import sys
return sorted(m for m in ("runpy", "threading", "collections", "datetime", "msgpack") if m in sys.modules)
`.pipe(Drop.returning(Schema.Array(Schema.String)), Effect.provide(NodePython.layer()))
      expect(loaded).toEqual([])
    }))

  it.live("fails with WorkerStartupError Requirement naming the missing module and the install command", () =>
    Effect.gen(function* () {
      const python = join(envVenv, "bin", "python")
      const e = yield* Effect.flip(
        Effect.provide(py`1`, NodePython.layer({ python, requires: ["json", "surely_not_installed_module"] }))
      )
      expect(e._tag).toBe("WorkerStartupError")
      if (e._tag !== "WorkerStartupError") return
      expect(e.reason).toBe("Requirement")
      expect(e.message).toContain("surely_not_installed_module")
      expect(e.message).not.toContain("json,")
      expect(e.message).toContain(`${python} -m pip install surely_not_installed_module`)
      expect(e.message).toContain("uv pip install")
    }))
})
