import { expect, layer } from "@effect/vitest"
import { py } from "@snakebridge/core"
import { NodePython } from "@snakebridge/node"
import { Effect } from "effect"

// This file does not import "@snakebridge/core/Arrow": Arrow values cannot be read here.
layer(NodePython.layer({ workers: 1 }), { excludeTestServices: true })("Arrow without @snakebridge/core/Arrow", (it) => {
  it.effect("a table result fails that drop with EncodeError saying what to import; the worker serves on", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(py`import pandas as pd; pd.DataFrame({"a": [1, 2]})`)
      expect(e._tag).toBe("EncodeError")
      if (e._tag !== "EncodeError") return
      expect(e.side).toBe("python")
      expect(e.detail).toContain('import "@snakebridge/core/Arrow"')
      expect(yield* py`1 + 1`).toBe(2)
    }))

  it.effect("a table big enough for shared memory fails the same way, once its segment is read", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(py`import pandas as pd; pd.DataFrame({"a": range(100_000)})`)
      expect(e._tag).toBe("EncodeError")
      if (e._tag !== "EncodeError") return
      expect(e.detail).toContain('import "@snakebridge/core/Arrow"')
      expect(yield* py`1 + 1`).toBe(2)
    }))
})
