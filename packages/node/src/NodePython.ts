/**
 * The `Python` service on Node.js: a supervised pool of CPython worker processes.
 *
 * @since 0.1.0
 */
import * as Python from "@snakebridge/core/Python"
import type { WorkerStartupError } from "@snakebridge/core/PythonError"
import { WorkerSpawner } from "@snakebridge/core/Worker"
import type * as WorkerPool from "@snakebridge/core/WorkerPool"
import { Config, Duration, Effect, Layer } from "effect"
import * as interpreter from "./internal/interpreter.js"
import * as SharedMemory from "./internal/sharedMemory.js"
import * as spawner from "./internal/spawner.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options extends WorkerPool.Options {
  /**
   * The interpreter. Default: `SNAKEBRIDGE_PYTHON`, else an active `VIRTUAL_ENV`,
   * else `.venv` in `cwd`, else `python3` on the PATH. A binary is spawned as it is; a
   * script (pyenv's shim) is run once first to learn the real executable.
   */
  readonly python?: string
  /** Working directory of the workers. Default: `process.cwd()`. */
  readonly cwd?: string
  /** Extra environment variables for the workers (added to this process's). */
  readonly env?: Record<string, string>
  /**
   * Address-space limit of each worker (RLIMIT_AS), in MiB: a runaway allocation becomes a
   * `MemoryError` (a `PythonException`) of the drop that made it, instead of exhausting the
   * machine. Leave room for the interpreter and its libraries (numpy alone maps hundreds of MiB).
   */
  readonly maxAddressSpaceMB?: number
  /** Modules the interpreter must be able to import (checked once, before any worker starts). */
  readonly requires?: ReadonlyArray<string>
  /** Time a worker has to exit when its pool closes, before SIGKILL. Default 2 s. */
  readonly shutdownGrace?: Duration.DurationInput
  /**
   * Typed arrays (and `Uint8Array` ↔ `bytes`) of at least this many bytes cross through shared
   * memory instead of the pipe, both ways (Linux): written once into a reused segment, wrapped by
   * numpy in place (bytes are read out of it). `false`
   * sends everything through the pipe. Default 256 KiB: `pnpm bench:threshold` measures both
   * paths by size; on a 2-core VM shared memory won every column from 128 KiB up.
   */
  readonly sharedMemoryThreshold?: number | false
  /** The tmpfs directory where segments are made (and at once unlinked). Default `/dev/shm`. */
  readonly sharedMemoryDir?: string
  /**
   * Big arrays and Arrow tables of results are mapped where the worker wrote them, not copied
   * into new memory, when the small native addon built at install is there (Linux, a C
   * compiler); the worker reuses such a segment once the result is garbage collected. `false`
   * copies them. Default `true`.
   */
  readonly sharedMemoryMapping?: boolean
}

/** The default of `Options.sharedMemoryThreshold`. */
export const DEFAULT_SHARED_MEMORY_THRESHOLD = 256 * 1024

/**
 * A `WorkerSpawner` for Node: resolves the interpreter once and logs which one it is.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSpawner = (options: Options = {}): Layer.Layer<WorkerSpawner, WorkerStartupError> =>
  Layer.scoped(
    WorkerSpawner,
    Effect.gen(function* () {
      const cwd = options.cwd ?? process.cwd()
      const env = { ...process.env, ...options.env }
      const choice = yield* interpreter.choose(options.python, cwd)
      const chosen = yield* interpreter.resolve(choice, cwd, env, options.requires)
      const threshold = options.sharedMemoryThreshold ?? DEFAULT_SHARED_MEMORY_THRESHOLD
      const sharedMemory =
        threshold === false ? undefined : yield* SharedMemory.make(Math.max(1, threshold), options.sharedMemoryDir ?? "/dev/shm", options.sharedMemoryMapping ?? true)
      const spawnOptions: spawner.SpawnOptions = {
        interpreter: chosen,
        cwd,
        env: {
          ...env,
          ...(options.maxAddressSpaceMB === undefined
            ? {}
            : { SNAKEBRIDGE_MAX_ADDRESS_SPACE: String(options.maxAddressSpaceMB * 1024 * 1024) }),
          // The worker puts arrays of its replies in shared memory only when this process reads it.
          SNAKEBRIDGE_SHM_THRESHOLD: sharedMemory === undefined ? undefined : String(sharedMemory.threshold)
        },
        shutdownGrace: Duration.decode(options.shutdownGrace ?? "2 seconds")
      }
      const spawn = (workerId: number) => spawner.spawn(workerId, spawnOptions)
      const origin = `from ${chosen.source}: ${chosen.requested}`
      return sharedMemory === undefined ? { spawn, origin } : { spawn, origin, sharedMemory }
    })
  )

/**
 * The `Python` service on a pool of `workers` processes (default 1).
 *
 * @example
 * ```ts
 * program.pipe(Effect.provide(NodePython.layer({ workers: 2 })), NodeRuntime.runMain)
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Python.Python, WorkerStartupError> =>
  Python.layer(options).pipe(Layer.provide(layerSpawner(options)))

/**
 * Like `layer`, with the options read from `Config`.
 *
 * @example
 * ```ts
 * NodePython.layerConfig({ workers: Config.integer("PY_WORKERS").pipe(Config.withDefault(2)) })
 * ```
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<Python.Python, WorkerStartupError | import("effect/ConfigError").ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))
