// What several test files need: the worker's pid as Python sees it, liveness of a pid, and
// waiting (bounded) for the pool to reach a state.
import { Drop, py, Python } from "@snakebridge/core"
import { Effect, Schedule, Schema } from "effect"

export const pid = py`import os; return os.getpid()`.pipe(Drop.returning(Schema.Int))

export const alive = (p: number): boolean => {
  try {
    process.kill(p, 0)
    return true
  } catch {
    return false
  }
}

/** Repeats `check` every 20 ms until `until` holds; fails after 20 s instead of hanging. */
export const waitUntil = <A, R>(check: Effect.Effect<A, never, R>, until: (a: A) => boolean) =>
  check.pipe(Effect.repeat({ until, schedule: Schedule.spaced("20 millis") }), Effect.timeout("20 seconds"))

/** Waits until the pool has `size` workers again, none of them the process `gone`. */
export const replaced = (gone: number, size = 1) =>
  waitUntil(Python.workers, (ws) => ws.length === size && ws.every((w) => w.pid !== gone))

/** Python code that swallows every interrupt: only killing its worker stops it. */
export const swallowsInterrupts = py`
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
`
