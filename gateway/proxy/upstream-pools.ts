import { Pool } from 'undici';
import type { Instance } from '../../src/discovery/instance.ts';
import { instanceAddress } from '../../src/discovery/instance.ts';

/** Transport settings shared by every upstream pool. */
export interface PoolSettings {
  connectTimeoutMs: number;
  /** Keep-alive sockets idle longer than this are closed (kept below typical backend timeouts, e.g. Node's 5 s). */
  keepAliveTimeoutMs: number;
  /** Connections per instance. */
  connections: number;
}

/** Defaults: 1 s connect, 4 s keep-alive (Node backends close idle sockets after 5 s), 256 connections. */
export const DEFAULT_POOL_SETTINGS: PoolSettings = { connectTimeoutMs: 1_000, keepAliveTimeoutMs: 4_000, connections: 256 };

/**
 * One undici `Pool` per upstream instance, keyed by address, so keep-alive sockets are reused
 * across requests. Pools are not closed when an instance leaves the registry (Envoy's grace rule
 * may still route to it); `sweep()` closes those unused for a while.
 */
export class UpstreamPools {
  private readonly pools = new Map<string, { pool: Pool; lastUsed: number }>();

  constructor(private readonly settings: PoolSettings = DEFAULT_POOL_SETTINGS) {}

  /** The pool for `instance`, created on first use. */
  get(instance: Pick<Instance, 'host' | 'port' | 'protocol'>, address = instanceAddress(instance)): Pool {
    const entry = this.pools.get(address);
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
        connect: { timeout: this.settings.connectTimeoutMs },
        // Timeouts are set per request from the route.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.pools.set(address, { pool, lastUsed: performance.now() });
      return pool;
    }
  }

  /** Closes, gracefully, the pools not used for `idleMs`; returns how many it closed. */
  sweep(idleMs: number): number {
    const cutoff = performance.now() - idleMs;
    let closed = 0;
    for (const [address, entry] of this.pools) {
      if (entry.lastUsed > cutoff) continue;
      this.pools.delete(address);
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
