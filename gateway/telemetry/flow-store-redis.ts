// Flow totals in Redis, shared by every gateway that points at it: one hash per calendar minute, hour
// and day (`<prefix>:minute:<start second>`), one field per series and counter, incremented in
// batches. Requests never wait for Redis: the roll buffers, a timer flushes in one pipeline.
import type { Cluster, Redis } from 'ioredis';
import { Counter } from 'prom-client';
import { errorMessage } from '../../src/errors.ts';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { reconnectIfSilent, REDIS_CALL_TIMED_OUT } from '../redis/redis-connection.ts';
import { FLOW_KEY_SEPARATOR, type FlowCounts } from './flow-series.ts';
import { emptyTotals, FLOW_BUCKETS, type FlowStore, type FlowTotals } from './flow-store.ts';

/** How often buffered counts go to Redis. */
export const FLOW_FLUSH_MS = 2_000;
/** Bound of every Redis call; past it the call counts as failed (its counts are dropped, not retried twice). */
export const FLOW_REDIS_TIMEOUT_MS = 1_000;
/** Seconds each bucket kind outlives its end, so a day's hash is still there the next day. */
const TTL_SECONDS: Readonly<Record<(typeof FLOW_BUCKETS)[number][0], number>> = { minute: 2 * 3_600, hour: 2 * 86_400, day: 8 * 86_400 };
const FIELDS = ['r', 'e', 'i', 'o'] as const;

/** Redis calls of the flow store that failed or timed out, by operation; their counts are lost, requests are not. */
export const flowStoreFailuresTotal = new Counter({
  name: 'switchboard_flow_store_failures_total',
  help: 'Flow statistics calls to Redis that failed or timed out, by operation (flush: those counts are lost; read: the API showed local totals).',
  labelNames: ['operation'] as const,
  registers: [metricsRegistry],
});

/** Options of a Redis flow store. */
export interface RedisFlowStoreOptions {
  /**
   * Key prefix; gateways that share totals share it. Keep it a hash tag (`{…}`): a pipeline may
   * not cross Redis Cluster slots, and the tag puts every flow key in one.
   */
  readonly prefix?: string;
  readonly flushMs?: number;
  readonly timeoutMs?: number;
  readonly log?: Logger;
}

/**
 * A `FlowStore` in Redis through an ioredis client (a server, Sentinel or Cluster) the caller owns;
 * create it with `enableOfflineQueue: false`, so an outage fails calls at once instead of queueing them.
 * Failures are logged once per outage, counted, and never reach a request.
 */
export class RedisFlowStore implements FlowStore {
  readonly kind = 'redis';
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  /** Hash name without the prefix (`minute:<start>`) → its TTL and the increments of its fields. */
  private pending = new Map<string, { ttl: number; fields: Map<string, number> }>();
  private flushing: Promise<void> | undefined;
  private failing = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly client: Redis | Cluster,
    options: RedisFlowStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? '{switchboard:flow}';
    this.timeoutMs = options.timeoutMs ?? FLOW_REDIS_TIMEOUT_MS;
    this.log = options.log ?? componentLogger('flow-store');
    this.timer = setInterval(() => void this.flush(), options.flushMs ?? FLOW_FLUSH_MS);
    this.timer.unref();
  }

  add(key: string, second: number, counts: FlowCounts): void {
    for (const [name, seconds] of FLOW_BUCKETS) {
      const hash = `${name}:${second - (second % seconds)}`;
      let entry = this.pending.get(hash);
      if (!entry) {
        entry = { ttl: seconds + TTL_SECONDS[name], fields: new Map() };
        this.pending.set(hash, entry);
      }
      const fields = entry.fields;
      const values = [counts.requests, counts.errors, counts.bytesIn, counts.bytesOut];
      FIELDS.forEach((field, index) => {
        if (values[index] === 0) return;
        const fieldName = `${key}${FLOW_KEY_SEPARATOR}${field}`;
        fields.set(fieldName, (fields.get(fieldName) ?? 0) + values[index]!);
      });
    }
  }

  /** Sends the buffered counts in one pipeline; one flush at a time, so a slow Redis never stacks them up. */
  flush(): Promise<void> {
    if (this.flushing || this.pending.size === 0) return this.flushing ?? Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const pipeline = this.client.pipeline();
    for (const [hash, { ttl, fields }] of batch) {
      const key = `${this.prefix}:${hash}`;
      for (const [field, value] of fields) pipeline.hincrby(key, field, value);
      pipeline.expire(key, ttl);
    }
    this.flushing = this.bounded(pipeline.exec(), 'flush')
      .then((results) => {
        const failed = results?.find(([error]) => error);
        if (failed) throw failed[0];
        if (this.failing) this.log.info('flow statistics reach Redis again');
        this.failing = false;
      })
      .catch((error: unknown) => this.failed('flush', error))
      .finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  async totals(second: number): Promise<Map<string, FlowTotals>> {
    const pipeline = this.client.pipeline();
    for (const [name, seconds] of FLOW_BUCKETS) pipeline.hgetall(`${this.prefix}:${name}:${second - (second % seconds)}`);
    let hashes: unknown[];
    try {
      const results = await this.bounded(pipeline.exec(), 'read');
      hashes = FLOW_BUCKETS.map((_bucket, index) => {
        const [error, hash] = results?.[index] ?? [new Error('no reply')];
        if (error) throw error;
        return hash;
      });
    } catch (error) {
      this.failed('read', error);
      throw error;
    }
    const totals = new Map<string, FlowTotals>();
    FLOW_BUCKETS.forEach(([name], index) => {
      const hash = hashes[index];
      for (const [field, text] of Object.entries((hash ?? {}) as Record<string, string>)) {
        const cut = field.lastIndexOf(FLOW_KEY_SEPARATOR);
        const key = field.slice(0, cut);
        let entry = totals.get(key);
        if (!entry) {
          entry = emptyTotals();
          totals.set(key, entry);
        }
        const counts = entry[name];
        const value = Number(text);
        switch (field.slice(cut + 1)) {
          case 'r': counts.requests += value; break;
          case 'e': counts.errors += value; break;
          case 'i': counts.bytesIn += value; break;
          case 'o': counts.bytesOut += value; break;
        }
      }
    });
    return totals;
  }

  /** Keeps them: every gateway sharing the Redis adds to the same fields, and the hashes expire (`TTL_SECONDS`). */
  drop(): void {}

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }

  /**
   * Moves the counts not sent yet to `next` (a store on another Redis, after a reload moved it),
   * which sends them with its own; a flush already under way still goes here. Close this one after.
   */
  handOver(next: RedisFlowStore): void {
    clearInterval(this.timer);
    for (const [hash, { ttl, fields }] of this.pending) {
      let entry = next.pending.get(hash);
      if (!entry) {
        entry = { ttl, fields: new Map() };
        next.pending.set(hash, entry);
      }
      for (const [field, value] of fields) entry.fields.set(field, (entry.fields.get(field) ?? 0) + value);
    }
    this.pending = new Map();
  }

  private bounded<T>(call: Promise<T>, operation: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`flow statistics ${operation} took longer than ${this.timeoutMs} ms`), { code: REDIS_CALL_TIMED_OUT })), this.timeoutMs);
    });
    call.catch(() => undefined);
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  }

  /** Counts and logs a failed call; one that timed out also repairs a connection gone silent, as the rate limiter's probe does. */
  private failed(operation: string, error: unknown): void {
    reconnectIfSilent(this.client, error);
    flowStoreFailuresTotal.inc({ operation });
    if (this.failing) return;
    this.failing = true;
    this.log.warn({ operation, reason: errorMessage(error) }, 'flow statistics cannot reach Redis; counting goes on locally and is retried every flush');
  }
}
