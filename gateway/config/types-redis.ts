import type { ConnectionCredentials } from '../../src/connection-credentials.ts';

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

/** `redis.tls` as written: paths relative to the configuration file's folder, and the name to verify. */
export interface RedisTlsFiles {
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** The name the server's certificate must carry (SNI too); none: the host connected to. */
  readonly serverName?: string | undefined;
}

/** `redis.auth` or `redis.sentinelAuth` as written: an ACL user (none: Redis' default user) and its password's file. */
export interface RedisAuthFiles {
  readonly username?: string | undefined;
  readonly passwordFile: string;
}

/** The top-level `redis:` section: the Redis that gateway features share (the cluster-wide rate limit first). */
export interface RedisSettings {
  readonly target: RedisTarget;
  readonly password: string | undefined;
  /** TLS files as written (with a rediss:// url, or towards every Sentinel and Cluster node). */
  readonly tls?: RedisTlsFiles | undefined;
  /** AUTH from a file, as written. */
  readonly auth?: RedisAuthFiles | undefined;
  /** The Sentinels' own AUTH, as written. */
  readonly sentinelAuth?: RedisAuthFiles | undefined;
  /** What `tls` and `auth` name, read at load (`readRegistryCredentials`); undefined when neither is given or files are not read. */
  readonly credentials?: ConnectionCredentials | undefined;
  /** What `sentinelAuth` names, read at load. */
  readonly sentinelCredentials?: ConnectionCredentials | undefined;
  /** Every command's deadline and the connect timeout: past it a caller gets an error, never a hang. */
  readonly timeoutMs: number;
  /** Prepended to every key the gateway writes, so that several gateways (or apps) can share one Redis. */
  readonly keyPrefix: string;
  /** How many gateway instances share the Redis budgets; a fallback local bucket gets 1/gateways of the limit. */
  readonly gateways: number;
}
