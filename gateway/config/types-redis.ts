/** A `host:port` pair of a Redis node or sentinel. */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** Where the Redis is: one server by URL, a Sentinel-managed master, or a Redis Cluster. */
export type RedisTarget =
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'sentinel'; readonly sentinels: readonly RedisNode[]; readonly name: string }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[] };

/** The top-level `redis:` section: the Redis that gateway features share (the cluster-wide rate limit first). */
export interface RedisSettings {
  readonly target: RedisTarget;
  readonly password: string | undefined;
  /** Every command's deadline and the connect timeout: past it a caller gets an error, never a hang. */
  readonly timeoutMs: number;
  /** Prepended to every key the gateway writes, so that several gateways (or apps) can share one Redis. */
  readonly keyPrefix: string;
  /** How many gateway instances share the Redis budgets; a fallback local bucket gets 1/gateways of the limit. */
  readonly gateways: number;
}
