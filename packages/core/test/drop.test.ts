import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Drop, py } from "../src/index.js"

describe("py", () => {
  it("binds every interpolated value to a slot name, never splicing it", () => {
    const evil = `"); __import__('os').system('echo pwned'); ("`
    const { source, args } = Drop.compile(py`x = ${evil}
return len(${[1, 2]})`)
    expect(source._tag).toBe("Code")
    if (source._tag !== "Code") return
    expect(source.code).toBe("x = _sb_0\nreturn len(_sb_1)")
    expect(source.code).not.toContain("pwned")
    expect(args).toEqual([evil, [1, 2]])
  })

  it("gives the same code and hash whatever the values (property)", () => {
    const make = (v: unknown) => py`return ${v}`
    const first = Drop.compile(make(0)).source
    fc.assert(
      fc.property(fc.anything(), (v) => {
        const { source, args } = Drop.compile(make(v))
        expect(source).toBe(first)
        expect(args[0]).toBe(v)
      })
    )
  })

  it("keeps Python escapes as written, like String.raw", () => {
    const { source } = Drop.compile(py`return "a\nb" + '\t'`)
    expect(source._tag === "Code" && source.code).toBe(`return "a\\nb" + '\\t'`)
  })

  it("knows the TypeScript file and line of the template", () => {
    const line = new Error().stack!.split("\n")[1]!.match(/:(\d+):\d+\)?$/)![1]
    const { source } = Drop.compile(py`return 1`)
    expect(source._tag === "Code" && source.file).toMatch(/drop\.test\.ts$/)
    expect(source._tag === "Code" && source.line).toBe(Number(line) + 1)
  })

  it("is a Drop and an Effect", () => {
    expect(Drop.isDrop(py`1`)).toBe(true)
    expect(Drop.isDrop({})).toBe(false)
  })
})
