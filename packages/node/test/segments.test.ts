// Node's side of shared memory on its own: real segments in /dev/shm, read back through /proc.
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { Segments } from "../src/internal/sharedMemory.js"

const MiB = 1024 * 1024

const open = (): Array<number> =>
  fs.readdirSync("/proc/self/fd").map(Number).filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`/dev/shm/snakebridge-${process.pid}-`)
    } catch {
      return false
    }
  })

describe.skipIf(process.platform !== "linux")("shared memory segments in Node", () => {
  it("a lent segment holds the bytes (read back through /proc), is reused once given back, closed when kept or not answered", async () => {
    const segments = new Segments(1, "/dev/shm")
    const before = open().length
    const bytes = new Uint8Array(MiB)
    for (let i = 0; i < MiB; i++) bytes[i] = i % 251
    const a = segments.lend(bytes)!
    expect(a.pid).toBe(process.pid)
    const back = new Uint8Array(MiB)
    await segments.read(process.pid, a.fd, back)
    expect(Buffer.from(back.buffer).equals(Buffer.from(bytes.buffer))).toBe(true) // toEqual walks bytes one by one: slow
    segments.giveBack([a], true)
    const b = segments.lend(bytes.subarray(0, 1000))!
    expect(b.fd).toBe(a.fd) // reused: the free one fits
    segments.keep([b.fd])
    segments.giveBack([b], true)
    expect(open().length).toBe(before) // kept by the worker: closed, never written again
    const c = segments.lend(bytes)!
    segments.giveBack([c], false)
    expect(open().length).toBe(before) // no reply: the worker may still map it
    segments.close()
  })

  it("at most four free segments stay open, the last one given back among them", () => {
    const segments = new Segments(1, "/dev/shm")
    const before = open().length
    const lent = Array.from({ length: 6 }, (_, i) => segments.lend(new Uint8Array((i + 1) * 1000))!)
    expect(open().length).toBe(before + 6)
    segments.giveBack(lent, true)
    const left = open()
    expect(left.length).toBe(before + 4)
    expect(left).toContain(lent[5]!.fd)
    segments.close()
    expect(open().length).toBe(before)
    expect(segments.lend(new Uint8Array(10))).toBeUndefined() // closed: the pipe carries it
  })

  it("a big segment is read back whole in parallel parts; a short one is an error", async () => {
    const segments = new Segments(1, "/dev/shm")
    const bytes = new Uint8Array(9 * MiB + 3)
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) % 256
    bytes[bytes.length - 1] = 7
    const a = segments.lend(bytes)!
    const back = new Uint8Array(bytes.length)
    await segments.read(process.pid, a.fd, back)
    expect(Buffer.from(back.buffer).equals(Buffer.from(bytes.buffer))).toBe(true)
    await expect(segments.read(process.pid, a.fd, new Uint8Array(bytes.length + 1))).rejects.toThrow(/the segment ends/)
    segments.giveBack([a], false)
    segments.close()
  })

  it("a directory that does not exist gives no segment, and no error", () => {
    expect(new Segments(1, "/no/such/dir").lend(new Uint8Array(10))).toBeUndefined()
  })
})
