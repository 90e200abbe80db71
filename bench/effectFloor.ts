/**
 * The floor as an Effect program sees it: the same echo channel (`floor.ts`), each tiny round
 * trip an `Effect.async` resumed by its echo, its answer decoded by a Schema. What running
 * through Effect costs before snakebridge adds anything: the sequential loop is the drop loop's
 * shape (`Effect.gen`); `loops.pipelined` drives it as the pool is driven (`Effect.forEach`).
 */
import { Effect, Schema } from "effect"
import { correlated, type FloorPeer } from "./floor.js"
import * as loops from "./loops.js"

const decode = Schema.decodeUnknown(Schema.Number)

/** Round trips on `peer` as Effects, correlated by the number each carries (set up once per peer). */
export const channel = (peer: FloorPeer): ((i: number) => Effect.Effect<number, Error>) => {
  const send = correlated<Effect.Effect<number, Error>>(peer, Effect.succeed, Effect.fail)
  return (i) => Effect.flatMap(Effect.async<number, Error>((resume) => send(i, resume)), decode)
}

/** `n` sequential round trips as Effects, stopping early once `budgetMs` is spent. */
export const sequential = (peer: FloorPeer, roundTrip: (i: number) => Effect.Effect<number, Error>, n: number, budgetMs: number) =>
  loops.sequential(peer.pid, n, budgetMs, roundTrip, (i) => i)
