/**
 * Build an object once in Python, use it from many drops, release it when the scope closes.
 *
 *   pnpm tsx --conditions=source examples/handles.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Drop, py, Python } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Schema } from "effect"

export const program = Effect.gen(function* () {
  const predictions = yield* Effect.scoped(
    Effect.gen(function* () {
      // An expensive object, built once: here a word index over a text.
      const index = yield* py`
from collections import Counter
class Index:
    def __init__(self, text):
        self.counts = Counter(text.lower().split())
    def count(self, word):
        return self.counts[word.lower()]
return Index(${"the quick brown fox jumps over the lazy dog the end"})
`.pipe(Drop.handle)
      const words = ["the", "fox", "cat"]
      const counts = yield* Effect.forEach(words, (w) => py`return ${index}.count(${w})`.pipe(Drop.returning(Schema.Int)))
      yield* Effect.log(`live handles inside the scope: ${yield* Python.liveHandles}`)
      return Object.fromEntries(words.map((w, i) => [w, counts[i]]))
    })
  )
  yield* Effect.log(`counts ${JSON.stringify(predictions)}; live handles after the scope: ${yield* Python.liveHandles}`)
  return { predictions, live: yield* Python.liveHandles }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(Effect.provide(NodePython.layer()), NodeRuntime.runMain)
}
