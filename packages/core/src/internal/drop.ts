import { Context, Effect, Effectable, Exit, Predicate, Schedule, Schema, type Scope, Stream } from "effect"
import { dual } from "effect/Function"
import type { ParseError } from "effect/ParseResult"
import type { Drop, RetryOptions, RetryPolicy, Source } from "../Drop.js"
import type { Handle } from "../Handle.js"
import { type Finish, Python, RunOnFiber } from "./service.js"
import type { DropError } from "../PythonError.js"

export const DropTypeId: unique symbol = Symbol.for("@snakebridge/core/Drop")

/** The name an interpolation slot gets in the worker: never a value, so nothing can be injected. */
export const slotName = (i: number): string => `_sb_${i}`

const templates = new WeakMap<TemplateStringsArray, Source>()
/** Where each template was written, by code hash; as many entries as `py` call sites. */
const sites = new Map<string, { readonly file: string; readonly line: number }>()

export class DropImpl extends Effectable.Class<unknown, DropError, Python> implements Drop {
  readonly [DropTypeId]: typeof DropTypeId = DropTypeId

  constructor(
    readonly source: Source,
    readonly args: ReadonlyArray<unknown>,
    readonly kwargs: Readonly<Record<string, unknown>> | undefined,
    readonly onProgress: ((event: unknown) => Effect.Effect<void>) | undefined = undefined,
    readonly retry: RetryPolicy | undefined = undefined
  ) {
    super()
  }

  commit(): Effect.Effect<unknown, DropError, Python> {
    return runDrop(this, Exit.succeed)
  }

  override toString(): string {
    return this.source._tag === "Code" ? `Drop(${this.source.hash}: ${this.source.firstLine})` : `Drop(call ${this.source.target})`
  }
}

/**
 * Runs `drop` on the `Python` service and makes the caller's result with `finish`: one
 * `withFiberRuntime`, the service taken from the fiber's context; when its `run` is the one
 * `NodePython.layer` builds, `finish` is applied in the reply's callback (see `RunOnFiber`).
 */
const runDrop = <A, E, R>(drop: Drop, finish: Finish<A, E, R>): Effect.Effect<A, DropError | E, Python | R> =>
  Effect.withFiberRuntime((fiber) => {
    const python = Context.unsafeGet(fiber.currentContext, Python)
    const onFiber = (python.run as { readonly [RunOnFiber]?: RunOnFiber })[RunOnFiber]
    return onFiber !== undefined ? onFiber(fiber, drop, finish) : Effect.flatMap(python.run(drop), finish)
  })

export const isDrop = (u: unknown): u is Drop => Predicate.hasProperty(u, DropTypeId)

/** 64-bit FNV-1a over UTF-16 units, as 16 hex digits: identifies code text in a worker's cache. */
export const hashCode = (text: string): string => {
  let h1 = 0x811c9dc5
  let h2 = 0x050c5d1f
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193)
    h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h1 >>> 15)
  }
  return (h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0") +
    text.length.toString(16)
}

const FRAME = /\(?((?:file:\/\/)?[^()\s]+):(\d+):\d+\)?\s*$/

/** The file and line of the code that called `py`, read from a stack trace once per template. */
const callSite = (stack: string | undefined): { readonly file: string; readonly line: number } | undefined => {
  const frame = stack?.split("\n")[2]
  const m = frame === undefined ? null : FRAME.exec(frame)
  if (m === null) return undefined
  return { file: m[1]!.replace(/^file:\/\//, ""), line: Number(m[2]) }
}

/**
 * Compiles a template once per call site: the raw text (Python escapes reach
 * Python unchanged, as with `String.raw`) with every slot replaced by its name.
 */
export const compileTemplate = (strings: TemplateStringsArray, stack?: string): Source => {
  let source = templates.get(strings)
  if (source !== undefined) return source
  const unescape = (s: string) => s.replace(/\\(`|\$\{)/g, "$1")
  let code = unescape(strings.raw[0]!)
  for (let i = 1; i < strings.raw.length; i++) code += slotName(i - 1) + unescape(strings.raw[i]!)
  const site = callSite(stack)
  source = {
    _tag: "Code",
    code,
    hash: hashCode(code),
    firstLine: code.split("\n").find((l) => l.trim() !== "")?.trim() ?? "",
    file: site?.file,
    line: site?.line
  }
  templates.set(strings, source)
  if (site !== undefined) sites.set(source.hash, site)
  return source
}

export const py = (strings: TemplateStringsArray, ...values: Array<unknown>): Drop => {
  const source = templates.get(strings) ?? compileTemplate(strings, new Error().stack)
  return new DropImpl(source, values, undefined)
}

export const call = (
  target: string,
  args: ReadonlyArray<unknown> = [],
  kwargs?: Readonly<Record<string, unknown>>
): Drop => new DropImpl({ _tag: "Call", target }, args, kwargs)

/** Where the TypeScript source of a drop's `line` is, if the template's call site is known. */
export const locate = (source: Source, line: number | undefined): string | undefined =>
  source._tag === "Code" && source.file !== undefined && source.line !== undefined && line !== undefined
    ? `${source.file}:${source.line + line - 1}`
    : undefined

const DROP_FRAME = /File "<drop ([0-9a-f]+)>", line (\d+)/g

/**
 * Rewrites the drop frames of a Python traceback (`File "<drop HASH>", line N`) to the
 * TypeScript file and line where that line is written, for drops of this process; returns
 * the rewritten text and those locations, innermost first.
 */
export const mapTraceback = (traceback: string): { readonly text: string; readonly locations: Array<string> } => {
  const locations: Array<string> = []
  const text = traceback.replace(DROP_FRAME, (frame, hash: string, line: string) => {
    const site = sites.get(hash)
    if (site === undefined) return frame
    const at = site.line + Number(line) - 1
    locations.push(`${site.file}:${at}`)
    return `File "${site.file}", line ${at}`
  })
  return { text, locations: locations.reverse() }
}

type Decode = (u: unknown) => Effect.Effect<any, ParseError, any>
/** One decoder per schema: `returning` is applied once per drop, often with the same schema. */
const decoders = new WeakMap<Schema.Schema.All, Decode>()
const decoderOf = <A, I, R>(schema: Schema.Schema<A, I, R>): ((u: unknown) => Effect.Effect<A, ParseError, R>) => {
  let decode = decoders.get(schema)
  if (decode === undefined) {
    decode = Schema.decodeUnknown(schema)
    decoders.set(schema, decode)
  }
  return decode
}

export const returning: {
  <A, I, R>(schema: Schema.Schema<A, I, R>): (self: Drop) => Effect.Effect<A, DropError | ParseError, Python | R>
  <A, I, R>(self: Drop, schema: Schema.Schema<A, I, R>): Effect.Effect<A, DropError | ParseError, Python | R>
} = dual(2, <A, I, R>(self: Drop, schema: Schema.Schema<A, I, R>) => {
  return runDrop(self, decoderOf(schema))
})

export const handle = (self: Drop): Effect.Effect<Handle, DropError, Python | Scope.Scope> =>
  Effect.flatMap(Python, (python) => python.handle(self))

export const onProgress: {
  (f: (event: unknown) => Effect.Effect<void>): (self: Drop) => Drop
  (self: Drop, f: (event: unknown) => Effect.Effect<void>): Drop
} = dual(
  2,
  (self: Drop, f: (event: unknown) => Effect.Effect<void>): Drop =>
    new DropImpl(self.source, self.args, self.kwargs, f, self.retry)
)

export const retry: {
  (options: RetryOptions): (self: Drop) => Drop
  (self: Drop, options: RetryOptions): Drop
} = dual(
  2,
  (self: Drop, options: RetryOptions): Drop =>
    new DropImpl(self.source, self.args, self.kwargs, self.onProgress, {
      schedule: options.schedule ?? Schedule.recurs(options.times ?? 2),
      exceptions: options.exceptions ?? []
    })
)

export const idempotent = (self: Drop): Drop => retry(self, { times: 2 })

export const stream: {
  <A, I, R>(
    schema: Schema.Schema<A, I, R>,
    options?: { readonly chunkSize?: number }
  ): (self: Drop) => Stream.Stream<A, DropError | ParseError, Python | R>
  <A, I, R>(
    self: Drop,
    schema: Schema.Schema<A, I, R>,
    options?: { readonly chunkSize?: number }
  ): Stream.Stream<A, DropError | ParseError, Python | R>
} = dual(
  (args) => isDrop(args[0]),
  <A, I, R>(self: Drop, schema: Schema.Schema<A, I, R>, options?: { readonly chunkSize?: number }) => {
    const decode = Schema.decodeUnknown(schema)
    return Stream.unwrap(Effect.map(Python, (python) => python.stream(self, options?.chunkSize ?? 16))).pipe(
      Stream.mapEffect(decode)
    )
  }
)
