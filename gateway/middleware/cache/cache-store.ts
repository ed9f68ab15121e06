import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type CachePolicy from 'http-cache-semantics';
import { LRUCache } from 'lru-cache';

/** One stored answer: its status, the upstream's headers, its whole body, and the RFC 9111 policy that says when it may be reused. */
export interface CachedAnswer {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
  readonly policy: CachePolicy;
}

/** What a primary key holds: the request header names its answers vary by (the last stored answer's `Vary`). */
interface VaryMarker {
  readonly vary: readonly string[];
}

type Slot = CachedAnswer | VaryMarker;

/** Bytes counted for an entry beyond its body and headers: the key, the policy object, the LRU's own node. */
const ENTRY_OVERHEAD_BYTES = 512;

/** The request header names an answer's `Vary` lists, lower-cased and sorted; `*` is left in (such an answer is never stored). */
export function varyNames(vary: OutgoingHttpHeaders['vary']): string[] {
  if (vary === undefined) return [];
  const text = Array.isArray(vary) ? vary.join(',') : String(vary);
  return [...new Set(text.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== ''))].sort();
}

/** The secondary key of a request under `names`: each header's value as sent (RFC 9111 §4.1 compares them so; absent is distinct from empty). */
export function variantKey(headers: IncomingHttpHeaders, names: readonly string[]): string {
  return names.map((name) => {
    const value = headers[name];
    return value === undefined ? '\u0001' : Array.isArray(value) ? value.join(', ') : value;
  }).join('\u0000');
}

/** `body` in a buffer of its own (outside Node's pool). */
function ownCopy(body: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(body.length);
  body.copy(copy);
  return copy;
}

function headerBytes(headers: OutgoingHttpHeaders): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) bytes += name.length + String(value).length + 4;
  return bytes;
}

/**
 * The answers of one `cache` middleware, in this process's memory, bounded by `maxBytes` (bodies,
 * headers and an allowance per entry) with the least recently used dropped first (isaacs'
 * `lru-cache` with `maxSize`). Keys are the primary key (method class, scheme, host, path and
 * query) plus, for an answer with `Vary`, the values of the request headers it names (RFC 9111 §4.1).
 */
export class ResponseCache {
  private readonly slots: LRUCache<string, Slot>;
  private answers = 0;
  private purgeCount = 0;

  constructor(maxBytes: number) {
    this.slots = new LRUCache<string, Slot>({
      maxSize: maxBytes,
      sizeCalculation: (slot, key) => key.length + ENTRY_OVERHEAD_BYTES + ('body' in slot ? slot.body.length + headerBytes(slot.headers) : 0),
      dispose: (slot) => {
        if ('body' in slot) this.answers -= 1;
      },
    });
  }

  /** The answer stored for a request with `headers` under `primary` (fresh or not), or undefined. */
  find(primary: string, headers: IncomingHttpHeaders): CachedAnswer | undefined {
    const marker = this.slots.get(primary);
    if (marker === undefined || 'body' in marker) return undefined;
    const answer = this.slots.get(`${primary}\u0000${variantKey(headers, marker.vary)}`);
    return answer !== undefined && 'body' in answer ? answer : undefined;
  }

  /**
   * Stores `answer` for a request with `headers` under `primary`; one too big for the whole cache is
   * dropped by the LRU itself. A body that is a slice of a larger buffer (Node's 8 KiB pool, which
   * `Buffer.concat` and `Buffer.from` use below 4 KiB, or a socket read) is kept as a copy of its
   * own, so that what `maxBytes` counts is what the entry holds, not a whole slab per small answer.
   */
  store(primary: string, headers: IncomingHttpHeaders, answer: CachedAnswer): void {
    const vary = varyNames(answer.headers.vary);
    const key = `${primary}\u0000${variantKey(headers, vary)}`;
    const kept = answer.body.byteLength === answer.body.buffer.byteLength ? answer : { ...answer, body: ownCopy(answer.body) };
    this.slots.set(primary, { vary });
    this.slots.set(key, kept);
    if (this.slots.peek(key) === kept) this.answers += 1;
  }

  /** Forgets the answer stored for a request with `headers` under `primary`; its other variants stay. */
  forget(primary: string, headers: IncomingHttpHeaders): void {
    const marker = this.slots.peek(primary);
    if (marker === undefined || 'body' in marker) return;
    this.slots.delete(`${primary}\u0000${variantKey(headers, marker.vary)}`);
  }

  /** Forgets every variant under `primary` (an unsafe method changed the resource, RFC 9111 §4.4): without its marker none is found. */
  invalidate(primary: string): void {
    this.slots.delete(primary);
  }

  /**
   * Forgets every key `selects` takes, the number of answers dropped. `selects` is asked about each
   * key: a primary key (its marker) or a primary key, NUL and a variant's secondary key, and must
   * judge each by its primary key, so that a marker and all its variants go together. Unlike
   * `invalidate`, the variants go at once, not when the LRU reaches them: a purge frees their memory.
   */
  purge(selects: (key: string) => boolean): number {
    this.purgeCount += 1;
    const doomed: string[] = [];
    for (const key of this.slots.keys()) if (selects(key)) doomed.push(key);
    let purged = 0;
    for (const key of doomed) {
      const slot = this.slots.peek(key);
      if (slot !== undefined && 'body' in slot) purged += 1;
      this.slots.delete(key);
    }
    return purged;
  }

  /**
   * How many purges this cache has run. An answer whose request began before a purge (its upstream
   * may have sent what the purge meant to drop) is not stored once that request ends: compare.
   */
  get purges(): number {
    return this.purgeCount;
  }

  /** Answers held (variants; markers left out). */
  get entries(): number {
    return this.answers;
  }

  /** Bytes held, as counted against `maxBytes`. */
  get bytes(): number {
    return this.slots.calculatedSize;
  }
}
