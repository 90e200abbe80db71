import { Command } from "@effect/platform"
import * as NodeCommandExecutor from "@effect/platform-node/NodeCommandExecutor"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { WorkerStartupError } from "@snakebridge/core/PythonError"
import { Chunk, Config, Effect, Layer, Option, Stream } from "effect"
import { accessSync, closeSync, constants, existsSync, openSync, readSync, statSync } from "node:fs"
import * as path from "node:path"

/** The interpreter a pool will run, a shim resolved to the real executable. */
export interface Interpreter {
  /** The executable as it was asked for. */
  readonly requested: string
  /** How it was chosen. */
  readonly source: "option" | "SNAKEBRIDGE_PYTHON" | "VIRTUAL_ENV" | ".venv" | "PATH"
  /** The executable to spawn: a binary as found, a script's `sys.executable` as its probe printed it. */
  readonly executable: string
}

export const MIN_VERSION: readonly [number, number] = [3, 10]

const binary = (venv: string) =>
  process.platform === "win32" ? path.join(venv, "Scripts", "python.exe") : path.join(venv, "bin", "python")

/**
 * Picks the interpreter by, in order: the explicit option, `SNAKEBRIDGE_PYTHON`,
 * an active `VIRTUAL_ENV`, a `.venv` in the working directory, `python3` on the PATH.
 */
export const choose = (option: string | undefined, cwd: string) =>
  Effect.gen(function* () {
    if (option !== undefined) return { requested: option, source: "option" as const }
    const configured = yield* Config.option(Config.nonEmptyString("SNAKEBRIDGE_PYTHON"))
    if (Option.isSome(configured)) return { requested: configured.value, source: "SNAKEBRIDGE_PYTHON" as const }
    const venv = yield* Config.option(Config.nonEmptyString("VIRTUAL_ENV"))
    if (Option.isSome(venv) && existsSync(binary(venv.value))) {
      return { requested: binary(venv.value), source: "VIRTUAL_ENV" as const }
    }
    const local = binary(path.join(cwd, ".venv"))
    if (existsSync(local)) return { requested: local, source: ".venv" as const }
    return { requested: "python3", source: "PATH" as const }
  }).pipe(Effect.orDie)

/** Prints the real executable, the version, and which of the modules named in argv cannot be found. */
const PROBE = [
  "import sys, importlib.util",
  "print(sys.executable)",
  "print('%d.%d.%d' % sys.version_info[:3])",
  "print(','.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
].join("; ")

const collect = <E>(s: Stream.Stream<Uint8Array, E>) =>
  s.pipe(Stream.decodeText(), Stream.runCollect, Effect.map((c) => Chunk.join(c, "")))

const fix = (requested: string) =>
  `create a virtual environment with \`python3 -m venv .venv\` (or \`uv venv\`), or name an interpreter with the \`python\` option or SNAKEBRIDGE_PYTHON (tried ${requested})`

/** The file `requested` names: a path (against `cwd`), or the first executable of that name on `PATH`. */
const locate = (requested: string, cwd: string, PATH: string | undefined): string | undefined => {
  const candidates = requested.includes(path.sep)
    ? [path.resolve(cwd, requested)]
    : (PATH ?? "").split(path.delimiter).filter((dir) => dir !== "").map((dir) => path.resolve(cwd, dir, requested))
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK)
      return statSync(file).isFile()
    } catch {
      return false
    }
  })
}

/** Whether the file is a script (`#!`): a shim such as pyenv's or asdf's, not the interpreter itself. */
const isScript = (file: string): boolean => {
  const head = Buffer.alloc(2)
  let fd: number
  try {
    fd = openSync(file, "r")
  } catch {
    return false // execute-only: not something an interpreter could read as a script
  }
  try {
    return readSync(fd, head, 0, 2, 0) === 2 && head.toString("latin1") === "#!"
  } finally {
    closeSync(fd)
  }
}

/**
 * The interpreter to spawn. An executable binary (a virtual environment's `python`, a system
 * interpreter) is spawned as it is, and the worker checks its own version as it starts: no
 * extra process before the pool. A script (a shim), or one that must be checked for `requires`,
 * is run once first to learn its real executable (`probe`).
 */
export const resolve = (
  choice: { readonly requested: string; readonly source: Interpreter["source"] },
  cwd: string,
  env: Record<string, string | undefined>,
  requires: ReadonlyArray<string> = []
): Effect.Effect<Interpreter, WorkerStartupError> =>
  Effect.suspend(() => {
    if (requires.length === 0 && process.platform !== "win32") {
      const file = locate(choice.requested, cwd, env.PATH)
      if (file !== undefined && !isScript(file)) return Effect.succeed({ ...choice, executable: file })
    }
    return probe(choice, cwd, env, requires)
  })

/**
 * The command executor of a probe, built only for one: the whole `NodeContext` layer cost 5-9 ms
 * of every pool's start here, before its first spawn, for a binary that needs no probe.
 */
const executor = NodeCommandExecutor.layer.pipe(Layer.provide(NodeFileSystem.layer))

/** Runs the interpreter once to learn its real executable, check its version and the modules in `requires`. */
const probe = (
  choice: { readonly requested: string; readonly source: Interpreter["source"] },
  cwd: string,
  env: Record<string, string | undefined>,
  requires: ReadonlyArray<string> = []
): Effect.Effect<Interpreter, WorkerStartupError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const proc = yield* Command.start(
        Command.make(choice.requested, "-c", PROBE, ...requires).pipe(
          Command.workingDirectory(cwd),
          Command.env(env),
          Command.stdin("inherit")
        )
      )
      const [out, err, code] = yield* Effect.all([collect(proc.stdout), collect(proc.stderr), proc.exitCode], {
        concurrency: 3
      })
      if (code !== 0) {
        return yield* new WorkerStartupError({
          reason: "Exited",
          python: choice.requested,
          detail: `the interpreter exited with code ${code} when asked for its version`,
          stderr: err
        })
      }
      const [executable = "", version = "", missing = ""] = out.split("\n")
      const [major = 0, minor = 0] = version.split(".").map(Number)
      if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
        return yield* new WorkerStartupError({
          reason: "Version",
          python: choice.requested,
          detail: `Python ${version} is too old: snakebridge needs ${MIN_VERSION.join(".")} or newer; ${fix(choice.requested)}`
        })
      }
      if (missing !== "") {
        const names = missing.split(",")
        return yield* new WorkerStartupError({
          reason: "Requirement",
          python: choice.requested,
          detail: `the interpreter cannot import ${names.join(", ")}; install with \`${executable} -m pip install ${names.join(" ")}\` (or \`uv pip install --python ${executable} ${names.join(" ")}\`)`
        })
      }
      return { ...choice, executable: executable || choice.requested }
    })
  ).pipe(
    Effect.catchTag("SystemError", (e) =>
      Effect.fail(
        new WorkerStartupError({
          reason: "NotFound",
          python: choice.requested,
          detail: `${e.reason === "NotFound" ? "no such interpreter" : e.message}; ${fix(choice.requested)}`
        })
      )
    ),
    Effect.catchTag("BadArgument", (e) =>
      Effect.fail(new WorkerStartupError({ reason: "NotFound", python: choice.requested, detail: e.message }))
    ),
    Effect.provide(executor)
  )
