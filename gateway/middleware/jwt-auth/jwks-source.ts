import type { VerificationKey } from '../../config/access-files.ts';
import type { JwksSettings } from '../../config/types.ts';
import { jwksKeys, type RefusedKey } from './key-selection.ts';

/** What a JWKS source needs besides its settings (tests pass a fake clock or fetch). */
export interface JwksSourceOptions {
  readonly now?: () => number;
  readonly fetch?: typeof globalThis.fetch;
  /** Told about each failed fetch (never with key material). */
  readonly onError?: (error: Error) => void;
  /** Told about the keys of a fetched document that jose would not verify with, when they are not the ones told last. */
  readonly onRefusedKeys?: (refused: readonly RefusedKey[]) => void;
}

/**
 * The keys of one JWKS URL. The first fetch starts at construction; afterwards a request that finds
 * the keys older than `refreshMs` starts a refresh in the background (no timer, so a source that
 * a reload dropped costs nothing), and a token no key verifies (an unknown `kid`, or no `kid` and
 * every key failed) may force one, at most once per `cooldownMs`. A failed or malformed fetch keeps
 * the last good keys: an identity provider that is down does not lock every client out. A key jose
 * would not verify with is left out, and told about once for as long as the document holds it.
 */
export class JwksSource {
  private keys: readonly VerificationKey[] = [];
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | undefined;
  /** The refused keys last told about, so that a document that keeps them is not told about at each fetch. */
  private refusedTold = '[]';
  private readonly now: () => number;
  private readonly fetch: typeof globalThis.fetch;

  constructor(
    private readonly settings: JwksSettings,
    private readonly options: JwksSourceOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.fetch = options.fetch ?? globalThis.fetch;
    void this.refresh();
  }

  /** The current keys; waits for the first fetch while none has succeeded yet, and starts a due refresh without waiting for it. */
  async current(): Promise<readonly VerificationKey[]> {
    if (this.keys.length === 0) await this.refreshIfCooledDown();
    else if (this.now() - this.fetchedAt >= this.settings.refreshMs && this.now() - this.attemptedAt >= this.settings.cooldownMs) void this.refresh();
    return this.keys;
  }

  /** Fetches again unless a fetch was tried less than `cooldownMs` ago; resolves when that fetch (or the one in flight) ends. */
  async refreshIfCooledDown(): Promise<readonly VerificationKey[]> {
    if (this.inFlight) await this.inFlight;
    else if (this.now() - this.attemptedAt >= this.settings.cooldownMs) await this.refresh();
    return this.keys;
  }

  private refresh(): Promise<void> {
    this.inFlight ??= this.load().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async load(): Promise<void> {
    this.attemptedAt = this.now();
    try {
      const response = await this.fetch(this.settings.url, { signal: AbortSignal.timeout(this.settings.timeoutMs), headers: { accept: 'application/json' } });
      if (!response.ok) throw new Error(`JWKS ${this.settings.url} answered ${response.status}`);
      const { keys, refused } = jwksKeys(await response.json());
      this.tellRefused(refused);
      if (keys.length === 0) throw new Error(`JWKS ${this.settings.url} holds no usable signing key`);
      this.keys = keys;
      this.fetchedAt = this.now();
    } catch (error) {
      this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private tellRefused(refused: readonly RefusedKey[]): void {
    const told = JSON.stringify(refused);
    if (told === this.refusedTold) return;
    this.refusedTold = told;
    if (refused.length > 0) this.options.onRefusedKeys?.(refused);
  }
}
