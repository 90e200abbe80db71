/**
 * A map from request ids (non-negative integers) to values, for the requests a connection has in
 * flight: an open-addressed table over two arrays, made again only to grow.
 *
 * Not a `Map`: V8 makes a new table for a `Map` whenever `set` or `delete` takes its size across a
 * bound (for a connection with one request at a time, on every request), and makes it in the
 * generation of the table it replaces. Once one long request had seen the table promoted, every
 * request then left about 150 bytes of garbage in the old generation, for full collections to find
 * (30,000 drops grew it by 4.7 MB after the rest of drops.test.ts had run).
 */

const EMPTY = -1

export class IdMap<V> {
  private ids: Array<number>
  private values: Array<V | undefined>
  private mask: number
  /** How many ids are in the map. */
  size = 0

  constructor(capacity = 16) {
    const n = 1 << Math.ceil(Math.log2(Math.max(capacity, 2)))
    this.ids = new Array<number>(n).fill(EMPTY)
    this.values = new Array<V | undefined>(n).fill(undefined)
    this.mask = n - 1
  }

  /** The slot holding `id`, or the empty slot where it would go (linear probing). */
  private slot(id: number): number {
    let i = id & this.mask
    while (this.ids[i] !== EMPTY && this.ids[i] !== id) i = (i + 1) & this.mask
    return i
  }

  get(id: number): V | undefined {
    const i = this.slot(id)
    return this.ids[i] === id ? this.values[i] : undefined
  }

  set(id: number, value: V): void {
    // At most half full, so that probes stay short.
    if ((this.size + 1) * 2 > this.ids.length) this.grow()
    const i = this.slot(id)
    if (this.ids[i] !== id) {
      this.ids[i] = id
      this.size++
    }
    this.values[i] = value
  }

  /** Removes `id`; false if it was not there. The entries after it move back, so no probe is cut short. */
  delete(id: number): boolean {
    let i = this.slot(id)
    if (this.ids[i] !== id) return false
    const mask = this.mask
    for (let j = (i + 1) & mask; this.ids[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.ids[j]! & mask
      // The entry at j stays unless its home lies cyclically outside (i, j]: then it fills i.
      const stays = i <= j ? i < home && home <= j : i < home || home <= j
      if (!stays) {
        this.ids[i] = this.ids[j]!
        this.values[i] = this.values[j]
        i = j
      }
    }
    this.ids[i] = EMPTY
    this.values[i] = undefined
    this.size--
    return true
  }

  /** The ids and values, in no particular order (a copy: the map may change while it is used). */
  entries(): Array<readonly [number, V]> {
    const out: Array<readonly [number, V]> = []
    for (let i = 0; i < this.ids.length; i++) if (this.ids[i] !== EMPTY) out.push([this.ids[i]!, this.values[i]!])
    return out
  }

  private grow(): void {
    const { ids, values } = this
    const n = ids.length * 2
    this.ids = new Array<number>(n).fill(EMPTY)
    this.values = new Array<V | undefined>(n).fill(undefined)
    this.mask = n - 1
    this.size = 0
    for (let i = 0; i < ids.length; i++) if (ids[i] !== EMPTY) this.set(ids[i]!, values[i]!)
  }
}
