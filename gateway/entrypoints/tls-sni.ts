/** One certificate's entry in an SNI table: the DNS names it serves and what to hand out for them. */
export interface SniEntry<T> {
  /** Exact names (`a.example.com`) and wildcards (`*.example.com`); case and a trailing dot do not matter. */
  readonly names: readonly string[];
  readonly value: T;
}

/**
 * Chooses a certificate by the name a client sent in SNI, as browsers validate names (RFC 6125
 * §6.4.3): an exact name first, then a wildcard, which stands for exactly one leftmost label
 * (`*.example.com` matches `a.example.com`, not `example.com` nor `a.b.example.com`); anything
 * else, and a client without SNI, gets the default. When two certificates list one name, the first
 * listed wins. Immutable; a lookup is at most two map reads.
 */
export class SniTable<T> {
  private readonly exact = new Map<string, T>();
  /** Keyed by the wildcard's suffix without `*.`. */
  private readonly wildcard = new Map<string, T>();

  constructor(
    entries: readonly SniEntry<T>[],
    readonly fallback: T,
  ) {
    for (const entry of entries) {
      for (const written of entry.names) {
        const name = canonicalName(written);
        const target = name.startsWith('*.') ? this.wildcard : this.exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        if (key !== '' && !target.has(key)) target.set(key, entry.value);
      }
    }
  }

  /** What serves `servername` (undefined or empty: no SNI). */
  lookup(servername: string | undefined): T {
    if (!servername) return this.fallback;
    const name = canonicalName(servername);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    if (dot <= 0) return this.fallback;
    return this.wildcard.get(name.slice(dot + 1)) ?? this.fallback;
  }
}

/** A DNS name as SNI tables compare it: lower case, without a trailing dot (`A.Example.com.` is `a.example.com`). */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
