import type { GatewayConfig, MiddlewareConfig, RedisSettings } from '../config/types.ts';
import type { Middleware } from '../context.ts';
import { bodyLimit } from './body-limit/index.ts';
import { cache } from './cache/index.ts';
import { compress } from './compress/index.ts';
import { cors } from './cors/index.ts';
import { fault } from './fault/index.ts';
import { errors } from './errors/index.ts';
import { forwardAuth } from './forward-auth/index.ts';
import { grpcWeb } from './grpc-web/index.ts';
import { headers } from './headers/index.ts';
import { hsts } from './hsts/index.ts';
import { inFlightReq } from './in-flight-req/index.ts';
import { ipAllowList, ipDenyList } from './ip-filter/index.ts';
import { jwtAuth } from './jwt-auth/index.ts';
import { keyAuth } from './key-auth/index.ts';
import { basicAuth } from './basic-auth/index.ts';
import { retire } from './middleware-retire.ts';
import { rateLimit } from './rate-limit/index.ts';
import { redirectRegex } from './redirect-regex/index.ts';
import { redirectScheme } from './redirect-scheme/index.ts';
import { respond } from './respond/index.ts';
import { rewrite } from './rewrite/index.ts';

/**
 * Builds one named middleware from its definition, the name it is declared under and the
 * configuration's `redis:` section (where a `policy: redis` rate limit counts; undefined for the others).
 */
export type NamedMiddlewareFactory = (definition: MiddlewareConfig, name: string, redis: RedisSettings | undefined) => Middleware;

/** Where a named middleware runs: which worker of how many (stateful middleware such as rate limits take a share). */
export interface MiddlewarePlacement {
  /** The name it is declared under. */
  readonly name?: string;
  /** 1/workers: this process's share of local rate-limit buckets; 1 in a one-process gateway. */
  readonly share?: number;
  /** The worker slot; null (or absent) in a one-process gateway. */
  readonly worker?: number | null;
}

/** The built-in factory: one middleware kind per folder; `redis` is the `redis:` section a `policy: redis` limit counts in. */
export function buildNamedMiddleware(definition: MiddlewareConfig, placement: MiddlewarePlacement = {}, redis?: RedisSettings): Middleware {
  switch (definition.kind) {
    case 'rateLimit':
      return rateLimit(definition.settings, { ...placement, ...(redis ? { redisSettings: redis } : {}) });
    case 'redirectScheme':
      return redirectScheme(definition.settings);
    case 'redirectRegex':
      return redirectRegex(definition.settings);
    case 'respond':
      return respond(definition.settings);
    case 'hsts':
      return hsts(definition.settings);
    case 'cors':
      return cors(definition.settings);
    case 'headers':
      return headers(definition.settings);
    case 'rewrite':
      return rewrite(definition.settings);
    case 'bodyLimit':
      return bodyLimit(definition.settings);
    case 'inFlightReq':
      return inFlightReq(definition.settings);
    case 'compress':
      return compress(definition.settings);
    case 'fault':
      return fault(definition.settings, { name: placement.name });
    case 'errors':
      return errors(definition.settings);
    case 'cache':
      return cache(definition.settings, placement.name);
    case 'keyAuth':
      return keyAuth(definition.settings);
    case 'basicAuth':
      return basicAuth(definition.settings);
    case 'jwtAuth':
      return jwtAuth(definition.settings);
    case 'ipAllowList':
      return ipAllowList(definition.settings);
    case 'ipDenyList':
      return ipDenyList(definition.settings);
    case 'forwardAuth':
      return forwardAuth(definition.settings);
    case 'grpcWeb':
      return grpcWeb();
  }
}

interface Entry {
  readonly fingerprint: string;
  readonly middleware: Middleware;
}

/** The `redis:` section `definition` counts in: the configuration's for a `policy: redis` rate limit, else none. */
function redisOf(definition: MiddlewareConfig, redis: RedisSettings | undefined): RedisSettings | undefined {
  return definition.kind === 'rateLimit' && definition.settings.policy === 'redis' ? redis : undefined;
}

/**
 * The named middleware of the running configuration, kept across reloads: `update` reuses the
 * built instance (and so its state, such as rate-limit buckets) of every name whose own
 * definition, and for a `policy: redis` limit the `redis:` section (its credentials' digests
 * included, so a rotated password file moves it to a new connection), is unchanged, builds the
 * new and changed ones, and drops the ones no longer declared (retiring the replaced and dropped
 * ones: `whenRetired`). Unrelated changes (a route, a service) therefore never reset a middleware's state.
 */
export class NamedMiddlewareRegistry {
  private entries = new Map<string, Entry>();

  constructor(private readonly factory: NamedMiddlewareFactory = (definition, name, redis) => buildNamedMiddleware(definition, { name }, redis)) {}

  /**
   * Brings the registry to the configuration's `middlewares`, built against its `redis:` section.
   * All or nothing: if a factory throws, the registry keeps what it had and the error propagates.
   */
  update(config: Pick<GatewayConfig, 'middlewares' | 'redis'>): void {
    const next = new Map<string, Entry>();
    for (const [name, definition] of config.middlewares) {
      const redis = redisOf(definition, config.redis);
      const fingerprint = canonicalJson(redis ? { definition, redis } : definition);
      const current = this.entries.get(name);
      next.set(name, current?.fingerprint === fingerprint ? current : { fingerprint, middleware: this.factory(definition, name, redis) });
    }
    const previous = this.entries;
    this.entries = next;
    // The instances replaced or dropped stop their background work (retire), once the new set is in place.
    for (const [name, entry] of previous) if (next.get(name) !== entry) retire(entry.middleware);
  }

  /** The middleware declared as `name`, or undefined when it is not declared. */
  get(name: string): Middleware | undefined {
    return this.entries.get(name)?.middleware;
  }

  /** The middleware for `names`, in order; throws on a name not declared (the config schema refuses those). */
  resolve(names: readonly string[]): Middleware[] {
    return names.map((name) => {
      const middleware = this.get(name);
      if (!middleware) throw new Error(`unknown middleware "${name}"`);
      return middleware;
    });
  }
}

/** JSON with object keys sorted, so equal settings give equal text whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, entry: unknown) =>
    entry !== null && typeof entry === 'object' && !Array.isArray(entry)
      ? Object.fromEntries(Object.entries(entry).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : entry,
  );
}
