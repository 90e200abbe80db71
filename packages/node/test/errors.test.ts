import { describe, expect, layer } from "@effect/vitest"
import { Drop, py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Cause, Effect, Exit } from "effect"

/** The line this is called from, as the stack tells it. */
const here = (): number => Number(new Error().stack!.split("\n")[2]!.match(/:(\d+):\d+\)?$/)![1])
const file = new URL(import.meta.url).pathname

layer(NodePython.layer(), { excludeTestServices: true })("errors at the TypeScript line", (it) => {
  describe("a PythonException", () => {
    it.effect("points at the line of a multi-line drop that raised", () =>
      Effect.gen(function* () {
        const start = here(); const failing = py`
a = 1
b = 2
raise ValueError("third line of code")
`
        const e = yield* Effect.flip(failing)
        expect(e._tag).toBe("PythonException")
        if (e._tag !== "PythonException") return
        expect(e.line).toBe(4)
        expect(e.location).toBe(`${file}:${start + 3}`)
        expect(e.stack).toContain(`at ${file}:${start + 3}`)
        expect(e.traceback).toContain(`File "${file}", line ${start + 3}`)
      }))

    it.effect("counts lines correctly when slots come before the failing line", () =>
      Effect.gen(function* () {
        const start = here(); const failing = py`
xs = ${[1, 2, 3]}
ys = ${{ key: "multi\nline\nvalue" }}
zs = ${"another\nvalue"}
raise KeyError(ys["missing"])
`
        const e = yield* Effect.flip(failing)
        if (e._tag !== "PythonException") return expect.fail(`expected a PythonException, got ${e._tag}`)
        expect(e.type).toBe("KeyError")
        expect(e.line).toBe(5)
        expect(e.location).toBe(`${file}:${start + 4}`)
      }))

    it.effect("maps a raise inside a function defined in an earlier drop to that drop's line", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const defined = here(); const parse = yield* py`
def parse(s):
    return int(s)
return parse
`.pipe(Drop.handle)
          const used = here(); const e = yield* Effect.flip(py`
total = 0
for r in ${["1", "x"]}:
    total += ${parse}(r)
return total
`)
          if (e._tag !== "PythonException") return expect.fail(`expected a PythonException, got ${e._tag}`)
          expect(e.type).toBe("ValueError")
          expect(e.line).toBe(4)
          expect(e.locations).toEqual([`${file}:${defined + 2}`, `${file}:${used + 3}`])
          expect(e.location).toBe(`${file}:${defined + 2}`)
          const lines = e.stack!.split("\n")
          expect(lines.slice(-2)).toEqual([`    at ${file}:${defined + 2}`, `    at ${file}:${used + 3}`])
        })
      ))

    it.effect("prints like a native stack when a program fails", () =>
      Effect.gen(function* () {
        const start = here(); const exit = yield* Effect.exit(py`raise RuntimeError("shown to the user")`)
        expect(Exit.isFailure(exit)).toBe(true)
        if (!Exit.isFailure(exit)) return
        const pretty = Cause.pretty(exit.cause)
        expect(pretty).toContain("RuntimeError: shown to the user")
        expect(pretty).toContain(`at ${file}:${start}`)
      }))
  })
})
