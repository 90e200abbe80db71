import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { IdMap } from "../src/internal/idMap.js"

/** Ids as a connection sees them: mostly rising, some far apart, many sharing a slot (multiples of 16). */
const id = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 8 }).map((k) => k * 16), fc.integer({ min: 0, max: 2 ** 31 - 1 }))

const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant("set" as const), id, value: fc.integer() }),
    fc.record({ op: fc.constant("delete" as const), id })
  ),
  { maxLength: 300 }
)

describe("IdMap", () => {
  it("agrees with a Map under any sequence of sets and deletes (property)", () => {
    fc.assert(
      fc.property(ops, (sequence) => {
        const map = new IdMap<number>(2)
        const model = new Map<number, number>()
        for (const step of sequence) {
          if (step.op === "set") {
            map.set(step.id, step.value)
            model.set(step.id, step.value)
          } else {
            expect(map.delete(step.id)).toBe(model.delete(step.id))
          }
          expect(map.size).toBe(model.size)
        }
        for (const [k, v] of model) expect(map.get(k)).toBe(v)
        expect(new Map(map.entries())).toEqual(model)
        // Ids never set, next to ones that were, are not found.
        for (const k of model.keys()) {
          if (!model.has(k + 1)) expect(map.get(k + 1)).toBeUndefined()
        }
      }),
      { numRuns: 500 }
    )
  })

  it("keeps a long-waiting id while many others come and go, without growing", () => {
    const map = new IdMap<string>()
    map.set(5, "long")
    for (let i = 6; i < 100_000; i++) {
      map.set(i, "short")
      expect(map.get(5)).toBe("long")
      expect(map.delete(i)).toBe(true)
    }
    expect(map.size).toBe(1)
    expect(map.entries()).toEqual([[5, "long"]])
    // Its arrays were made once: sixteen slots hold one waiting id and one passing through.
    expect((map as unknown as { ids: Array<number> }).ids.length).toBe(16)
  })
})
