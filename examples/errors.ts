/**
 * A Python exception shown where the code was written: the traceback's drop frames
 * point at this file's lines.
 *
 *   pnpm tsx --conditions=source examples/errors.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Schema } from "effect"

export const program = Effect.gen(function* () {
  const parse = yield* py`
def parse(text):
    return int(text)
return parse
`.pipe(Drop.handle)
  return yield* py`
total = 0
for text in ${["1", "2", "three"]}:
    total += ${parse}(text)
return total
`.pipe(Drop.returning(Schema.Number))
}).pipe(
  Effect.scoped,
  Effect.catchTag("PythonException", (e) => Effect.log(e.stack).pipe(Effect.as(e)))
)

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(Effect.provide(NodePython.layer()), NodeRuntime.runMain)
}
