/**
 * Spans of drops exported with OpenTelemetry to the console.
 *
 *   pnpm tsx --conditions=source examples/tracing.ts
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { NodeRuntime } from "@effect/platform-node"
import { ConsoleSpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect, Layer, Schema } from "effect"

export const program = Effect.gen(function* () {
  const mean = yield* py`
import statistics
return statistics.mean(${[3, 1, 4, 1, 5, 9, 2, 6]})
`.pipe(Drop.returning(Schema.Number))
  yield* Effect.log(`mean ${mean}`)
  return mean
}).pipe(Effect.withSpan("report"))

export const Tracing = NodeSdk.layer(() => ({
  resource: { serviceName: "snakebridge-example" },
  spanProcessor: new SimpleSpanProcessor(new ConsoleSpanExporter())
}))

if (import.meta.url === `file://${process.argv[1]}`) {
  program.pipe(Effect.provide(Layer.merge(NodePython.layer(), Tracing)), NodeRuntime.runMain)
}
