import * as NodeStream from "@effect/platform-node/NodeStream"
import { WorkerStartupError } from "@snakebridge/core/PythonError"
import type { ExitStatus, WorkerProcess } from "@snakebridge/core/Worker"
import { Deferred, Duration, Effect, Stream } from "effect"
import { type ChildProcess, spawn as spawnChild } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import type { Readable, Writable } from "node:stream"
import { fileURLToPath } from "node:url"
import type { Interpreter } from "./interpreter.js"

export interface SpawnOptions {
  readonly interpreter: Interpreter
  readonly cwd: string
  readonly env: Record<string, string | undefined>
  /** Time a worker has to exit after EOF on its channel before SIGKILL. */
  readonly shutdownGrace: Duration.Duration
}

/**
 * Where the worker's Python package lives: shipped inside this package (`python/`)
 * when published, or the workspace's `python-worker/src` during development.
 */
export const workerPythonPath = (): string => {
  const candidates = [
    fileURLToPath(new URL("../../python", import.meta.url)),
    fileURLToPath(new URL("../../../python-worker/src", import.meta.url))
  ]
  const found = candidates.find((dir) => existsSync(path.join(dir, "snakebridge_worker", "__main__.py")))
  if (found === undefined) throw new Error(`snakebridge_worker not found in ${candidates.join(" or ")}`)
  return found
}

const STDERR_TAIL = 8192
const MAX_LINE = 16 * 1024

/** Splits text into lines, cutting a line that grows past `MAX_LINE` so memory stays bounded. */
const lines = (stream: Stream.Stream<string>): Stream.Stream<string> =>
  Stream.suspend(() => {
    let partial = ""
    return stream.pipe(
      Stream.mapConcat((text) => {
        const out: Array<string> = []
        const push = (line: string) => {
          for (let i = 0; i < line.length; i += MAX_LINE) out.push(line.slice(i, i + MAX_LINE))
          if (line.length === 0) out.push("")
        }
        let rest = partial + text
        let nl: number
        while ((nl = rest.indexOf("\n")) !== -1) {
          push(rest.slice(0, nl).replace(/\r$/, ""))
          rest = rest.slice(nl + 1)
        }
        while (rest.length > MAX_LINE) {
          out.push(rest.slice(0, MAX_LINE))
          rest = rest.slice(MAX_LINE)
        }
        partial = rest
        return out
      }),
      Stream.concat(Stream.suspend(() => (partial === "" ? Stream.empty : Stream.make(partial))))
    )
  })

const readable = (child: ChildProcess, fd: number) => (child.stdio as ReadonlyArray<unknown>)[fd] as Readable
const writable = (child: ChildProcess, fd: 3 | 5) => (child.stdio as ReadonlyArray<unknown>)[fd] as Writable

/**
 * Has the worker read its control channel now (its SIGINT handler reads it on the thread that
 * runs requests, even mid-drop). A no-op once the process has exited.
 */
const interrupt = (child: ChildProcess) => {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT")
}

/** The worker's entry: what `-m snakebridge_worker` runs, without `runpy` (≈ 5 ms of a start). */
const ENTRY = "from snakebridge_worker.__main__ import run; run()"

/**
 * Spawns the interpreter on the worker's entry (`ENTRY`) directly (never through a shell) with
 * the protocol on fds 3 and 4. `Command` of @effect/platform offers only stdin,
 * stdout and stderr, so the extra descriptors need `child_process` itself.
 */
export const spawn = (
  workerId: number,
  options: SpawnOptions
): Effect.Effect<WorkerProcess, WorkerStartupError, import("effect").Scope.Scope> =>
  Effect.gen(function* () {
    const python = options.interpreter.executable
    const pythonPath = workerPythonPath()
    const exited = yield* Deferred.make<ExitStatus>()
    let stderrTail = ""
    const stderrDone = yield* Deferred.make<void>()

    const child = yield* Effect.acquireRelease(
      Effect.async<ChildProcess, WorkerStartupError>((resume) => {
        const env: Record<string, string | undefined> = {
          ...options.env,
          PYTHONPATH: [pythonPath, options.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
          SNAKEBRIDGE_WORKER_ID: String(workerId)
        }
        const child = spawnChild(python, ["-u", "-c", ENTRY], {
          cwd: options.cwd,
          env,
          stdio: ["ignore", "pipe", "pipe", "pipe", "pipe", "pipe"]
        })
        child.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
        child.once("error", (error) => {
          Deferred.unsafeDone(exited, Effect.succeed({ code: null, signal: null }))
          resume(
            Effect.fail(
              new WorkerStartupError({
                reason: "NotFound",
                python,
                detail: `could not spawn the interpreter: ${error.message}`
              })
            )
          )
        })
        child.once("spawn", () => resume(Effect.succeed(child)))
        // A write after the worker died fails asynchronously; the read loop reports the death.
        writable(child, 3).on("error", () => {})
        writable(child, 5).on("error", () => {})
      }),
      (child) =>
        // Two-phase shutdown: EOF on the request and control channels makes the worker exit, at once
        // even mid-drop (SIGINT once the control channel is ended has the worker read its EOF);
        // SIGKILL if it has not after the grace period.
        // (A finalizer is uninterruptible: the wait is made interruptible so the timeout can end it.)
        Effect.sync(() => {
          writable(child, 3).end()
          writable(child, 5).end(() => interrupt(child))
        }).pipe(
          Effect.zipRight(Effect.interruptible(Deferred.await(exited))),
          Effect.timeoutOption(options.shutdownGrace),
          Effect.flatMap((done) =>
            done._tag === "Some"
              ? Effect.void
              : Effect.sync(() => child.kill("SIGKILL")).pipe(Effect.zipRight(Deferred.await(exited)))
          )
        )
    )

    const forward = (fd: 1 | 2) =>
      NodeStream.fromReadable<never, Uint8Array>(() => readable(child, fd), () => undefined as never).pipe(
        Stream.catchAllCause(() => Stream.empty),
        Stream.decodeText(),
        Stream.tap((text) =>
          Effect.sync(() => {
            if (fd === 2) stderrTail = (stderrTail + text).slice(-STDERR_TAIL)
          })
        ),
        lines,
        Stream.runForEach((line) =>
          (fd === 1 ? Effect.logInfo(line) : Effect.logWarning(line)).pipe(
            Effect.annotateLogs({ workerId, stream: fd === 1 ? "stdout" : "stderr" })
          )
        ),
        Effect.ensuring(fd === 2 ? Deferred.succeed(stderrDone, undefined) : Effect.void),
        Effect.forkScoped
      )
    yield* forward(1)
    yield* forward(2)

    const channel = writable(child, 3)
    // The first frame of a tick of the event loop leaves at once (a lone request waits for
    // nothing); the ones after it in the same tick are corked and leave together in one system
    // call (writev) on the next tick.
    let wrote = false
    let corked = false
    const nextTick = () => {
      wrote = false
      if (corked) {
        corked = false
        channel.uncork()
      }
    }
    const worker: WorkerProcess = {
      pid: child.pid!,
      python,
      write: (frame) => {
        if (channel.destroyed || channel.writableEnded) return
        if (!wrote) {
          wrote = true
          process.nextTick(nextTick)
        } else if (!corked) {
          corked = true
          channel.cork()
        }
        if (frame instanceof Uint8Array) channel.write(frame)
        else for (const part of frame) channel.write(part)
      },
      control: (frame) => {
        const control = writable(child, 5)
        if (control.destroyed || control.writableEnded) return
        // The signal follows the frame into the pipe (the callback runs once it is written), so
        // the worker's handler finds the cancel it is woken for.
        control.write(frame, (error) => error == null && interrupt(child))
      },
      readReplies: (onChunk) =>
        Effect.async<void, unknown>((resume) => {
          const replies = readable(child, 4)
          const stop = () => {
            replies.off("data", onData)
            replies.off("close", onEnd)
            replies.off("error", onEnd)
          }
          const onData = (chunk: Uint8Array) => {
            try {
              onChunk(chunk)
            } catch (e) {
              stop()
              replies.destroy()
              resume(Effect.fail(e))
            }
          }
          // The end of the channel, for whatever reason (an error too), is the end of the replies.
          const onEnd = () => {
            stop()
            resume(Effect.void)
          }
          replies.on("data", onData)
          replies.once("close", onEnd)
          replies.once("error", onEnd)
          if (replies.destroyed) onEnd()
          return Effect.sync(stop)
        }),
      exited: Deferred.await(exited),
      kill: (signal) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal)
        }),
      // Shared memory segments are left out: the worker's own are bounded by its free list or
      // held by results in this process, and this process's are held by the drops' handles.
      residentMemory: Effect.sync(() => {
        try {
          const status = readFileSync(`/proc/${child.pid}/status`, "utf8")
          const anon = /^RssAnon:\s+(\d+) kB/m.exec(status)
          const file = /^RssFile:\s+(\d+) kB/m.exec(status)
          return anon === null || file === null ? undefined : (Number(anon[1]) + Number(file[1])) * 1024
        } catch {
          return undefined // not Linux, or the process is gone
        }
      }),
      // After an exit, wait briefly for stderr to drain so start-up errors carry the whole message.
      stderrTail: Deferred.await(stderrDone).pipe(
        Effect.timeoutOption(Duration.millis(500)),
        Effect.map(() => stderrTail)
      )
    }
    return worker
  })
