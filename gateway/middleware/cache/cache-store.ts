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

/** How many recent purges (admin operations, rare) a cache remembers for the answers still on their way (`droppedSince`). */
const REMEMBERED_PURGES = 64;

/**
 * How many URIs' latest invalidations (an unsafe method's success, as often as the route takes
 * them) a cache remembers for the answers still on their way: thousands of distinct URIs' worth of
 * writes while one answer is fetched before an answer in flight is refused storage for not knowing.
 */
const REMEMBERED_INVALIDATIONS = 4_096;

/**
 * The answers of one `cache` middleware, in this process's memory, bounded by `maxBytes` (bodies,
 * headers and an allowance per entry) with the least recently used dropped first (isaacs'
 * `lru-cache` with `maxSize`). Keys are the primary key (method class, scheme, host, path and
 * query) plus, for an answer with `Vary`, the values of the request headers it names (RFC 9111 §4.1).
 */
export class ResponseCache {
  private readonly slots: LRUCache<string, Slot>;
  private answers = 0;
  /** Purges and invalidations run so far: each has its number in this sequence. */
  private dropCount = 0;
  /** The last `REMEMBERED_PURGES` purges, oldest first, and the number of the latest one let go (-1: none). */
  private readonly recentPurges: { readonly drop: number; readonly selects: (primary: string) => boolean }[] = [];
  private purgeForgotten = -1;
  /** Each invalidated primary key's latest invalidation, oldest first, at most `REMEMBERED_INVALIDATIONS`; and the latest one let go. */
  private readonly invalidations = new Map<string, number>();
  private invalidationForgotten = -1;

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
   * A 200 is kept with `Accept-Ranges: bytes` (whatever the upstream said): the cache answers its
   * ranges itself (`rangeOfStored`), and says so once here rather than on every hit.
   */
  store(primary: string, headers: IncomingHttpHeaders, answer: CachedAnswer): void {
    const vary = varyNames(answer.headers.vary);
    const key = `${primary}\u0000${variantKey(headers, vary)}`;
    let kept = answer.body.byteLength === answer.body.buffer.byteLength ? answer : { ...answer, body: ownCopy(answer.body) };
    if (kept.status === 200 && kept.headers['accept-ranges'] !== 'bytes') kept = { ...kept, headers: { ...kept.headers, 'accept-ranges': 'bytes' } };
    this.slots.set(primary, { vary });
    this.slots.set(key, kept);
    if (this.slots.peek(key) === kept) this.answers += 1;
  }

  /**
   * The key a miss of a request with `headers` under `primary` locks (`FetchLocks`): `primary` while
   * no answer said what its answers vary by, then its own variant's, so that misses of one variant
   * do not wait on the fetch of another, which could never answer them. The LRU's order is left as it was.
   */
  lockKey(primary: string, headers: IncomingHttpHeaders): string {
    const marker = this.slots.peek(primary);
    return marker === undefined || 'body' in marker ? primary : `${primary}\u0000${variantKey(headers, marker.vary)}`;
  }

  /** Forgets the answer stored for a request with `headers` under `primary`; its other variants stay. */
  forget(primary: string, headers: IncomingHttpHeaders): void {
    const marker = this.slots.peek(primary);
    if (marker === undefined || 'body' in marker) return;
    this.slots.delete(`${primary}\u0000${variantKey(headers, marker.vary)}`);
  }

  /** Forgets every variant under `primary` (an unsafe method changed the resource, RFC 9111 §4.4): without its marker none is found. */
  invalidate(primary: string): void {
    this.invalidations.delete(primary);
    this.invalidations.set(primary, this.dropCount);
    if (this.invalidations.size > REMEMBERED_INVALIDATIONS) {
      const [oldest, drop] = this.invalidations.entries().next().value!;
      this.invalidations.delete(oldest);
      this.invalidationForgotten = drop;
    }
    this.dropCount += 1;
    this.slots.delete(primary);
  }

  /**
   * Forgets every key `selects` takes, the number of answers dropped. `selects` is asked about each
   * key: a primary key (its marker) or a primary key, NUL and a variant's secondary key, and must
   * judge each by its primary key, so that a marker and all its variants go together. Unlike
   * `invalidate`, the variants go at once, not when the LRU reaches them: a purge frees their memory.
   */
  purge(selects: (key: string) => boolean): number {
    this.recentPurges.push({ drop: this.dropCount, selects });
    if (this.recentPurges.length > REMEMBERED_PURGES) this.purgeForgotten = this.recentPurges.shift()!.drop;
    this.dropCount += 1;
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

  /** How many purges and invalidations this cache has run: read it as a request starts, for `droppedSince`. */
  get drops(): number {
    return this.dropCount;
  }

  /**
   * Whether a purge or an invalidation run since `drops` (read earlier) took `primary`: an answer
   * whose request began before it (its upstream may have sent what was meant to go) is then not
   * stored. Other keys' drops do not count, so that purges of one path keep no other from filling;
   * past what it remembers (`REMEMBERED_PURGES`, `REMEMBERED_INVALIDATIONS`) it cannot tell, and answers yes.
   */
  droppedSince(primary: string, drops: number): boolean {
    if (this.dropCount === drops) return false;
    if (this.purgeForgotten >= drops || this.invalidationForgotten >= drops) return true;
    if ((this.invalidations.get(primary) ?? -1) >= drops) return true;
    for (const purge of this.recentPurges) if (purge.drop >= drops && purge.selects(primary)) return true;
    return false;
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
