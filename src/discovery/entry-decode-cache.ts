import type { EntryDecodeResult, EntryDecoder } from './layout/index.ts';
import type { RawInstance } from './instance-codec.ts';

interface Decoded {
  readonly key: string | undefined;
  readonly data: RawInstance['data'];
  readonly result: EntryDecodeResult;
}

/**
 * Remembers, per service, how each listed entry decoded, so a re-list decodes (JSON and schema)
 * only the entries whose data changed and hands on the very same `Instance` objects for the rest.
 * Without it every change re-decoded the whole service, and every snapshot held fresh copies.
 * Holds only the entries of each service's latest listing.
 */
export class EntryDecodeCache {
  private readonly byService = new Map<string, Map<string, Decoded>>();

  constructor(private readonly decode: EntryDecoder) {}

  /** Decodes `entries` of `service`, reusing the result of every entry listed last time with the same key and data; returns the results in order. */
  decodeAll(service: string, entries: readonly RawInstance[]): EntryDecodeResult[] {
    const previous = this.byService.get(service);
    const next = new Map<string, Decoded>();
    const results = entries.map((entry) => {
      const cached = previous?.get(entry.name) ?? next.get(entry.name);
      const result = cached && cached.key === entry.key && sameData(cached.data, entry.data) ? cached.result : this.decode(entry);
      next.set(entry.name, { key: entry.key, data: entry.data, result });
      return result;
    });
    if (next.size > 0) this.byService.set(service, next);
    else this.byService.delete(service);
    return results;
  }

  /** Drops what `service`'s last listing decoded to. */
  forget(service: string): void {
    this.byService.delete(service);
  }
}

/** True when two raw values hold the same bytes; the same Buffer (a cached read) answers at once. */
function sameData(a: RawInstance['data'], b: RawInstance['data']): boolean {
  if (a === b) return true;
  if (a == null || b == null) return (a ?? null) === (b ?? null);
  if (typeof a === 'string' || typeof b === 'string') return typeof a === typeof b && a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
