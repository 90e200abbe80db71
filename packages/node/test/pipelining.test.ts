import { describe, expect, it } from "@effect/vitest"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Clock, Effect, Either, Fiber, Schema } from "effect"

// One worker with many requests in flight: it reads them in batches and sends a batch's replies
// together, unless that would keep a finished one waiting behind a slow request.
describe("pipelining on one worker", () => {
  it.live("every caller gets its own result, values and errors alike, whatever batch they came in", () =>
    Effect.gen(function* () {
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 3000 }, (_, i) => i),
        (i) =>
          (i % 7 === 0 ? py`raise ValueError(${i})` : py`return ${i} * 2`).pipe(
            Drop.returning(Schema.Number),
            Effect.either
          ),
        { concurrency: 64 }
      )
      outcomes.forEach((outcome, i) => {
        if (i % 7 === 0) {
          expect(Either.isLeft(outcome) && outcome.left._tag === "PythonException" && outcome.left.message).toBe(String(i))
        } else {
          expect(outcome).toEqual(Either.right(i * 2))
        }
      })
    }).pipe(Effect.provide(NodePython.layer({ concurrency: 64 }))))

  it.live("a quick drop's result is not held behind a slow drop read with it", () =>
    Effect.gen(function* () {
      const done = <E, R>(label: string, drop: Effect.Effect<unknown, E, R>) =>
        Effect.zipRight(drop, Effect.map(Clock.currentTimeMillis, (at) => [label, at] as const))
      // The first keeps the worker busy while the other two are written together behind it, so
      // the worker reads them in one batch; the slow one was never run before.
      const blocker = yield* Effect.fork(done("blocker", py`import time; time.sleep(0.2)`))
      const quick = yield* Effect.fork(done("quick", py`return 1`))
      const slow = yield* Effect.fork(done("slow", py`import time; time.sleep(1.0)`))
      const [, quickAt] = yield* Fiber.join(quick)
      const [, slowAt] = yield* Fiber.join(slow)
      yield* Fiber.join(blocker)
      // The quick result came while the slow drop still had most of its second to sleep.
      expect(slowAt - quickAt).toBeGreaterThan(500)
    }).pipe(Effect.provide(NodePython.layer({ concurrency: 3 }))))
})
