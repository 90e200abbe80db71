import { createRequire } from "node:module"

/** The shared memory addon (`native/shm.c`), built at install where a C compiler is found. */
export interface Native {
  /** The first `length` bytes of the file at `path`, mapped shared; unmapped once collected. */
  readonly map: (path: string, length: number) => ArrayBuffer
  /**
   * A second ArrayBuffer over the first `length` bytes of a mapping made by `map`, which keeps
   * that mapping alive as long as it lives.
   */
  readonly alias: (buffer: ArrayBuffer, length: number) => ArrayBuffer
  /** Allocates the first `length` bytes of file `fd` now (throws ENOSPC on a full tmpfs). */
  readonly reserve: (fd: number, length: number) => void
}

/** The addon, or why it cannot be loaded. */
export const load = (): Native | string => {
  try {
    return createRequire(import.meta.url)("../../build/shm.node") as Native
  } catch (e) {
    return e instanceof Error ? e.message.split("\n")[0]! : String(e)
  }
}
