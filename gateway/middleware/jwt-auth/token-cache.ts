/**
 * Verified tokens and what their verification decided, each kept until its own expiry (or
 * `ttlMs`, whichever comes first) and at most `maxEntries` at once, oldest evicted first. A hit
 * costs one Map lookup instead of a signature check (an ES256 verify is ~0.1 ms of CPU).
 */
export class TokenCache<Value> {
  private readonly entries = new Map<string, { readonly value: Value; readonly until: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The value stored for `token` while it is still valid; an expired entry is dropped. */
  get(token: string): Value | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (entry.until > this.now()) return entry.value;
    this.entries.delete(token);
    return undefined;
  }

  /** Stores `value` for `token` until `expiresAtMs` (epoch ms; undefined for a token without `exp`), capped at `ttlMs` from now. */
  set(token: string, value: Value, expiresAtMs: number | undefined): void {
    if (this.maxEntries === 0) return;
    const until = Math.min(expiresAtMs ?? Number.POSITIVE_INFINITY, this.now() + this.ttlMs);
    if (until <= this.now()) return;
    if (this.entries.size >= this.maxEntries && !this.entries.has(token)) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, { value, until });
  }

  /** Entries held, expired ones included until they are looked up or evicted. */
  get size(): number {
    return this.entries.size;
  }
}
