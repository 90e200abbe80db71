/**
 * The peers: the bridges a user would pick instead of snakebridge, installed under
 * bench/peers only (`npm install --prefix bench/peers`, never a dependency of the packages),
 * each measured on the equivalent of the trivial drop and on bytes there and back.
 *
 * - pythonia: a Python process driven over stdio with JSON messages and proxies;
 * - python-shell, JSON mode: a Python script reading and writing JSON lines on stdin/stdout;
 * - node-calls-python: CPython embedded in the Node process (a native addon): its async
 *   calls hop to a thread, its sync calls block the event loop.
 *
 * A peer that cannot be installed, loaded or run is reported with the reason, never dropped.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { withTimeout } from "../floor.js"
import { descendants, pin, type Placement } from "../placement.js"
import { latencyRep, nowUs } from "../stats.js"

const HERE = fileURLToPath(new URL(".", import.meta.url))
const FUNCS = `${HERE}peer_funcs.py`
const require = createRequire(import.meta.url)
/**
 * Loads a peer by a name typed `string`: they are installed by `install()`, after the type-check
 * of a fresh clone ran, so their types cannot be part of it.
 */
const load = (name: string): Promise<any> => import(name)

export interface PeerRow {
  readonly peer: string
  readonly figure: string
  readonly unit: string
  /** One value per repetition. */
  readonly values: Array<number>
}

export interface PeerFailure {
  readonly peer: string
  readonly what: string
  readonly reason: string
}

export interface PeerOptions {
  readonly python: string
  readonly reps: number
  readonly calls: number
  readonly warmup: number
  readonly bulkBytes: ReadonlyArray<number>
  readonly timeoutMs: number
  /**
   * Pins this process to `placement.node` and each peer's processes to `placement.python`; only
   * the peers whose Python runs in a process of its own are measured then.
   */
  readonly placement?: Placement | undefined
}

/** The first lines of an error or a process's output, without npm's warnings: a reason for the report. */
export const firstLines = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e))
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("npm warn"))
    .slice(0, 3)
    .join(" / ")
    .slice(0, 300)

/**
 * node-gyp needs Node's headers: from this Node's own install prefix when it has them, rather
 * than a download from nodejs.org (not reachable from every machine) or a user's ~/.npmrc.
 */
const nodeHeaders = (): Record<string, string> => {
  const prefix = path.resolve(path.dirname(process.execPath), "..")
  return existsSync(path.join(prefix, "include", "node", "node_api.h")) ? { npm_config_nodedir: prefix } : {}
}

/** Runs npm in `cwd`; undefined if it succeeded, else why it failed. */
export const npm = (args: ReadonlyArray<string>, cwd = HERE): string | undefined => {
  try {
    execFileSync("npm", [...args, "--no-audit", "--no-fund"], {
      cwd,
      env: { ...process.env, ...nodeHeaders() },
      stdio: ["ignore", "pipe", "pipe"],
      encoding: "utf8",
      timeout: 300_000
    })
    return undefined
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    return firstLines(err.stderr || err.message)
  }
}

/**
 * Installs the peers from bench/peers/package-lock.json when they are missing: the JavaScript
 * first, then node-calls-python's native build on its own, so that a failed build (it needs a
 * C++ compiler and the Python headers) costs that peer only. Returns what failed, and why.
 */
export const install = (): Array<PeerFailure> => {
  const failures: Array<PeerFailure> = []
  if (!existsSync(`${HERE}node_modules/.package-lock.json`)) {
    const reason = npm(["ci", "--ignore-scripts"])
    if (reason !== undefined) return PEERS.map(({ name }) => ({ peer: name, what: "install", reason }))
  }
  // Rebuilt unless it was built by this installer for this very Node: a build made any other way
  // (other headers) loaded, then crashed its process with SIGSEGV as it started.
  const built = `${HERE}node_modules/node-calls-python/build/Release/nodecallspython.node`
  const stamp = `${HERE}node_modules/node-calls-python/build/snakebridge-built-for`
  const buildFor = `${process.version} ${process.execPath}`
  if (!existsSync(built) || !existsSync(stamp) || readFileSync(stamp, "utf8") !== buildFor) {
    const reason = npm(["rebuild", "node-calls-python"])
    if (reason !== undefined) failures.push({ peer: "node-calls-python", what: "native build", reason })
    else writeFileSync(stamp, buildFor)
  }
  return failures
}

/** The common shape: a trivial call and a bytes echo, each async. */
interface Peer {
  readonly inc: (x: number) => Promise<number>
  readonly echo: (data: Buffer) => Promise<Buffer>
  readonly close: () => Promise<void> | void
}

const pythonia = async (python: string): Promise<Peer> => {
  process.env.PYTHON_BIN = python
  const { python: py } = await load("pythonia")
  const funcs = await py(FUNCS)
  return {
    inc: (x) => funcs.inc(x),
    echo: async (data) => Buffer.from(await funcs.echo_b64(data.toString("base64")), "base64"),
    close: () => py.exit()
  }
}

const pythonShell = async (python: string): Promise<Peer> => {
  const { PythonShell } = await load("python-shell")
  const shell = new PythonShell("peer_shell.py", { mode: "json", pythonPath: python, pythonOptions: ["-u"], scriptPath: HERE })
  // One request at a time: the next answer line is the answer to it.
  let waiting: ((message: { r: unknown }) => void) | undefined
  shell.on("message", (message: { r: unknown }) => waiting?.(message))
  const ask = (request: object) =>
    new Promise<{ r: unknown }>((resolve) => {
      waiting = resolve
      shell.send(request)
    })
  return {
    inc: async (x) => (await ask({ op: "inc", x })).r as number,
    echo: async (data) => Buffer.from((await ask({ op: "echo", d: data.toString("base64") })).r as string, "base64"),
    close: () => new Promise<void>((resolve) => shell.end(() => resolve()))
  }
}

interface NodeCallsPython {
  readonly importSync: (file: string, reimport: boolean) => unknown
  readonly call: (module: unknown, fn: string, ...args: Array<unknown>) => Promise<unknown>
  readonly callSync: (module: unknown, fn: string, ...args: Array<unknown>) => unknown
  readonly setPythonExecutable?: (executable: string) => void
}

const embedded = (): { py: NodeCallsPython; module: unknown } => {
  const py = (require("node-calls-python") as { interpreter: NodeCallsPython }).interpreter
  return { py, module: py.importSync(FUNCS, false) }
}

const nodeCallsPython = async (): Promise<Peer> => {
  const { py, module } = embedded()
  return {
    inc: (x) => py.call(module, "inc", x) as Promise<number>,
    echo: async (data) => Buffer.from((await py.call(module, "echo", data)) as ArrayBuffer),
    close: () => {}
  }
}

const nodeCallsPythonSync = async (): Promise<Peer> => {
  const { py, module } = embedded()
  return {
    inc: async (x) => py.callSync(module, "inc", x) as number,
    echo: async (data) => Buffer.from(py.callSync(module, "echo", data) as ArrayBuffer),
    close: () => {}
  }
}

interface PeerKind {
  readonly name: string
  readonly bulk: boolean
  /** Whether its Python runs in a process of its own (so that it can be placed on another CPU). */
  readonly subprocess: boolean
  readonly make: (python: string) => Promise<Peer>
}

const PEERS: ReadonlyArray<PeerKind> = [
  { name: "pythonia", bulk: true, subprocess: true, make: pythonia },
  { name: "python-shell (JSON)", bulk: true, subprocess: true, make: pythonShell },
  { name: "node-calls-python, async call", bulk: true, subprocess: false, make: nodeCallsPython },
  { name: "node-calls-python, sync call (blocks the event loop)", bulk: false, subprocess: false, make: nodeCallsPythonSync }
]

/** The peers measured with `options`. */
const peersFor = (options: PeerOptions) => PEERS.filter((p) => options.placement === undefined || p.subprocess)

const MiB = 1024 * 1024

/** Measures every peer `reps` times; rows hold one value per repetition that completed. */
export interface PeerResults {
  readonly rows: Array<PeerRow>
  readonly failures: Array<PeerFailure>
}

/**
 * Each peer measured in a Node process of its own (`main.ts --json`, which prints what it has
 * measured so far as one JSON line before each step): an embedded interpreter that crashes its
 * host takes only the rest of its own figures with it, and is listed with the signal and the step.
 */
export const measureApart = (options: PeerOptions): PeerResults => {
  const results: PeerResults = { rows: [], failures: [] }
  for (const { name } of peersFor(options)) {
    const child = spawnSync(
      process.execPath,
      [...process.execArgv, path.join(HERE, "main.ts"), "--json", "--peer", name, "--options", JSON.stringify(options)],
      { encoding: "utf8", timeout: options.timeoutMs * (4 * options.reps + 2), maxBuffer: 16 * MiB }
    )
    const lines = (child.stdout ?? "").split("\n").filter((l) => l.startsWith("{"))
    const last = lines.length === 0 ? undefined : (JSON.parse(lines.at(-1)!) as PeerResults & { readonly doing?: string })
    if (last !== undefined) {
      results.rows.push(...last.rows)
      results.failures.push(...last.failures)
    }
    if (child.status !== 0) {
      const how = child.signal !== null ? `its process died of ${child.signal}` : `its process exited with ${child.status}`
      const detail = firstLines(child.stderr || child.error || "")
      results.failures.push({ peer: name, what: last?.doing ?? "start", reason: detail === "" ? how : `${how}: ${detail}` })
    }
  }
  return results
}

export const measure = async (
  options: PeerOptions,
  only?: string,
  progress?: (sofar: PeerResults, doing: string) => void
): Promise<PeerResults> => {
  const rows = new Map<string, PeerRow>()
  const failures: Array<PeerFailure> = []
  const failed = new Set<string>()
  const record = (peer: string, figure: string, unit: string, value: number) => {
    const key = `${peer}\u0000${figure}`
    const row = rows.get(key) ?? { peer, figure, unit, values: [] }
    row.values.push(value)
    rows.set(key, row)
  }
  const fail = (peer: string, what: string, e: unknown) => {
    const key = `${peer}\u0000${what}`
    if (failed.has(key)) return
    failed.add(key)
    failures.push({ peer, what, reason: firstLines(e) })
  }
  const step = (doing: string) => progress?.({ rows: [...rows.values()], failures }, doing)
  const { placement } = options
  if (placement !== undefined) pin(process.pid, placement.node)
  for (let rep = 0; rep < options.reps; rep++) {
    for (const { name, bulk, make } of peersFor(options)) {
      if ((only !== undefined && name !== only) || failed.has(`${name}\u0000start`)) continue
      step(`start, repetition ${rep + 1}`)
      let peer: Peer
      try {
        peer = await withTimeout(make(options.python), options.timeoutMs, `${name}: start`)
      } catch (e) {
        fail(name, "start", e)
        continue
      }
      if (placement !== undefined) {
        for (const pid of descendants(process.pid)) {
          try {
            pin(pid, placement.python)
          } catch {
            // a process that has left meanwhile (a shell, an earlier peer's)
          }
        }
      }
      try {
        try {
          step(`trivial call, repetition ${rep + 1}`)
          for (let i = 0; i < options.warmup; i++) await peer.inc(i)
          const samples: Array<number> = []
          const began = nowUs()
          for (let i = 0; i < options.calls; i++) {
            const t = nowUs()
            const got = await withTimeout(peer.inc(i), options.timeoutMs, `${name}: trivial call`)
            samples.push(nowUs() - t)
            if (got !== i + 1) throw new Error(`wrong result ${got} for ${i} + 1`)
          }
          const seq = latencyRep(samples, nowUs() - began)
          record(name, "trivial call `x + 1`, p50", "µs", seq.p50)
          record(name, "trivial call, p99", "µs", seq.p99)
          record(name, "trivial call, sequential", "calls/s", seq.perSecond)
        } catch (e) {
          fail(name, "trivial call", e)
        }
        if (!bulk) continue
        for (const bytes of options.bulkBytes) {
          const what = `${bytes / MiB} MiB bytes there and back`
          if (failed.has(`${name}\u0000${what}`)) continue
          step(`${what}, repetition ${rep + 1}`)
          try {
            const data = Buffer.alloc(bytes, 0x5a)
            const t = nowUs()
            const back = await withTimeout(peer.echo(data), options.timeoutMs, what)
            const rate = bytes / (nowUs() - t)
            if (back.length !== bytes || back[bytes - 1] !== 0x5a) throw new Error(`${back.length} bytes came back`)
            record(name, what, "MB/s", rate)
          } catch (e) {
            fail(name, what, e)
          }
        }
      } finally {
        await Promise.resolve(peer.close()).catch(() => {})
      }
    }
  }
  step("done")
  return { rows: [...rows.values()], failures }
}
