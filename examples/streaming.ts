/**
 * A generator streamed with backpressure, and progress events from a long drop.
 *
 *   pnpm tsx --conditions=source examples/streaming.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Chunk, Effect, Schema, Stream } from "effect"

const Square = Schema.Struct({ n: Schema.Int, square: Schema.Int })

export const program = Effect.gen(function* () {
  // Python computes only the squares the stream pulls: five of a million.
  const squares = yield* py`
def squares():
    for n in range(1_000_000):
        yield {"n": n, "square": n * n}
return squares()
`.pipe(Drop.stream(Square, { chunkSize: 5 }), Stream.take(5), Stream.runCollect)
  yield* Effect.log(`first squares ${Chunk.toArray(squares).map((s) => s.square).join(", ")}`)

  const progress: Array<number> = []
  const fitted = yield* py`
import time, snakebridge
for step in range(1, 6):
    time.sleep(0.02)  # a slow step of a fit
    snakebridge.emit(step * 20)
return "fitted"
`.pipe(
    Drop.onProgress((percent) =>
      Effect.sync(() => progress.push(percent as number)).pipe(Effect.zipRight(Effect.log(`fit ${percent}%`)))
    ),
    Drop.returning(Schema.String)
  )
  return { squares: Chunk.toArray(squares), progress, fitted }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(Effect.provide(NodePython.layer()), NodeRuntime.runMain)
}
