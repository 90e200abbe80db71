/**
 * The peers alone: `pnpm exec tsx bench/peers/main.ts [--quick]`. `pnpm bench` runs each of them
 * through this file too, one process per peer (`--json --peer <name> --options <json>`).
 */
import { parseArgs } from "node:util"
import { figure } from "../stats.js"
import { resolvePython } from "../stats.js"
import { install, measure, type PeerOptions } from "./peers.js"

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    peer: { type: "string" },
    options: { type: "string" }
  }
})
if (values.json) {
  const options = JSON.parse(values.options ?? "{}") as PeerOptions
  await measure(options, values.peer, (sofar, doing) => console.log(JSON.stringify({ ...sofar, doing })))
  process.exit(0)
}
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
