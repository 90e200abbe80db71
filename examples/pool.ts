/**
 * Many drops in parallel over a pool of workers.
 *
 *   pnpm tsx --conditions=source examples/pool.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Schema } from "effect"

const isPrime = (n: number) =>
  py`
n = ${n}
if n < 2:
    return False
i = 2
while i * i <= n:
    if n % i == 0:
        return False
    i += 1
return True
`.pipe(Drop.returning(Schema.Boolean))

export const program = Effect.gen(function* () {
  const candidates = Array.from({ length: 200 }, (_, i) => 1_000_000 + i)
  const flags = yield* Effect.forEach(candidates, isPrime, { concurrency: 8 })
  const primes = candidates.filter((_, i) => flags[i])
  yield* Effect.log(`${primes.length} primes between 1,000,000 and 1,000,199: ${primes.join(", ")}`)
  return primes
})

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(Effect.provide(NodePython.layer({ workers: 2 })), NodeRuntime.runMain)
}
