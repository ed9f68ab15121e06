import { Pool } from 'undici';
import type { Instance } from '../../src/discovery/instance.ts';

/** Transport settings shared by every upstream pool (the connect timeout is per service, see `get`). */
export interface PoolSettings {
  /** Keep-alive sockets idle longer than this are closed (kept below typical backend timeouts, e.g. Node's 5 s). */
  keepAliveTimeoutMs: number;
  /** Connections per instance. */
  connections: number;
}

/** Defaults: 4 s keep-alive (Node backends close idle sockets after 5 s), 256 connections per instance. */
export const DEFAULT_POOL_SETTINGS: PoolSettings = { keepAliveTimeoutMs: 4_000, connections: 256 };

/**
 * One undici `Pool` per upstream instance, keyed by address, so keep-alive sockets are reused
 * across requests. Pools are not closed when an instance leaves the registry (Envoy's grace rule
 * may still route to it); `sweep()` closes those unused for a while.
 */
export class UpstreamPools {
  private readonly pools = new Map<string, { pool: Pool; lastUsed: number }>();

  constructor(private readonly settings: PoolSettings = DEFAULT_POOL_SETTINGS) {}

  /** The pool for `instance` with `connectTimeoutMs`, created on first use. */
  get(instance: Pick<Instance, 'host' | 'port' | 'protocol'>, address: string, connectTimeoutMs: number): Pool {
    const key = `${address}|${connectTimeoutMs}`;
    const entry = this.pools.get(key);
    if (entry) {
      entry.lastUsed = performance.now();
      return entry.pool;
    }
    {
      const scheme = instance.protocol === 'https' ? 'https' : 'http';
      const pool = new Pool(`${scheme}://${address}`, {
        connections: this.settings.connections,
        pipelining: 1,
        keepAliveTimeout: this.settings.keepAliveTimeoutMs,
        keepAliveMaxTimeout: this.settings.keepAliveTimeoutMs,
        connect: { timeout: connectTimeoutMs },
        // Timeouts are set per request from the route.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(key, { pool, lastUsed: performance.now() });
      return pool;
    }
  }

  /** Closes, gracefully, the pools not used for `idleMs`; returns how many it closed. */
  sweep(idleMs: number): number {
    const cutoff = performance.now() - idleMs;
    let closed = 0;
    for (const [key, entry] of this.pools) {
      if (entry.lastUsed > cutoff) continue;
      this.pools.delete(key);
      entry.pool.close().catch(() => undefined);
      closed += 1;
    }
    return closed;
  }

  /** Closes every pool, waiting for in-flight requests. */
  async close(): Promise<void> {
    const entries = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(entries.map(({ pool }) => pool.close().catch(() => undefined)));
  }
}
