/**
 * The peers alone: `pnpm exec tsx bench/peers/main.ts [--quick]`. `pnpm bench` runs them too.
 */
import { parseArgs } from "node:util"
import { figure } from "../stats.js"
import { resolvePython } from "../stats.js"
import { install, measure } from "./peers.js"

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } })
const python = resolvePython(new URL("../..", import.meta.url).pathname)
const installFailures = install()
const { rows, failures } = await measure({
  python,
  reps: values.quick ? 2 : 5,
  calls: values.quick ? 1_000 : 5_000,
  warmup: 200,
  bulkBytes: [1024 * 1024, 64 * 1024 * 1024],
  timeoutMs: 30_000
})
for (const row of rows) {
  const f = figure(row.values)
  console.log(`${row.peer} | ${row.figure} | ${f.median.toFixed(1)} ${row.unit} (${f.min.toFixed(1)} – ${f.max.toFixed(1)}, ${f.reps} reps)`)
}
for (const f of [...installFailures, ...failures]) console.log(`FAILED ${f.peer} | ${f.what} | ${f.reason}`)
process.exit(0)
