import type { IncomingMessage } from 'node:http';
import { errorMessage } from '../../src/errors.ts';
import { componentLogger } from '../../src/logger.ts';
import type { GatewayConfig, PathSettings } from '../config/index.ts';
import { decodeCachePurgeSelector, type CachePurgeSelector } from '../middleware/cache/index.ts';
import { normalisePath } from '../router/path-normalise.ts';
import { adminError, readAdminBody, type StoreAnswer } from './store-api.ts';

/** The admin endpoint that drops `cache` middleware answers. */
export const CACHE_PURGE_PATH = '/api/cache/purge';

/** A purge request's body is a handful of fields. */
const PURGE_BODY_LIMIT_BYTES = 16 * 1024;

/** What a purge did: the answers dropped (summed over the workers) and, with `workers`, how many workers did not answer in time. */
export interface CachePurgeResult {
  readonly purged: number;
  readonly workersUnanswered?: number;
}

/** What the purge endpoint needs from the gateway. */
export interface CachePurgeOptions {
  /** The admin token; without one, a purge is refused (403), as every write is. */
  readonly token: string | undefined;
  /** The configuration in force, whose `cache` middleware a purge may name. */
  readonly config: () => GatewayConfig;
  /** Drops what the selector picks in every process that holds caches; never rejects, and bounded. */
  readonly purge: (selector: CachePurgeSelector) => Promise<CachePurgeResult>;
}

const log = componentLogger('admin');

/**
 * `POST /api/cache/purge` with a JSON selector (`CachePurgeSelector`): a write, so it needs the
 * token even where reads would not. Bad input answers 400 with the reason, and nothing is dropped.
 */
export async function answerCachePurge(request: IncomingMessage, options: CachePurgeOptions): Promise<StoreAnswer> {
  if (request.method !== 'POST') return { ...adminError(405, 'method-not-allowed', 'SB_ADMIN_METHOD', `${CACHE_PURGE_PATH} answers POST only`), headers: { allow: 'POST' } };
  if (options.token === undefined) return adminError(403, 'forbidden', 'SB_ADMIN_WRITE_NEEDS_TOKEN', 'writes need an admin token: set admin: { listen, token } in the gateway configuration');
  const body = await readJson(request);
  if ('status' in body) return body;
  const decoded = decodeCachePurgeSelector(body.value);
  const config = options.config();
  const selector = typeof decoded === 'string' ? decoded : normalisedSelector(decoded, config.paths);
  if (typeof selector === 'string') return adminError(400, 'bad-request', 'SB_CACHE_PURGE_INVALID', selector);
  const refused = unknownMiddleware(selector.middleware, config);
  if (refused !== undefined) return adminError(400, 'bad-request', 'SB_CACHE_PURGE_UNKNOWN_MIDDLEWARE', refused);
  const result = await options.purge(selector);
  log.info({ ...selector, ...result, client: request.socket.remoteAddress ?? 'unknown' }, 'cache purged');
  return { status: 200, body: result };
}

/**
 * `selector` with its path or prefix normalised as a request's path is before the cache keys it
 * (`normalisePath`: `%7E` is `~`, `%c3` is `%C3`), so that any spelling of a stored URI selects it;
 * or why it cannot be. A prefix is normalised with a character after it, so that its end is never
 * read as a dot segment: `/products/.` selects `/products/.hidden`, it does not widen to `/products/`.
 */
function normalisedSelector(selector: CachePurgeSelector, paths: PathSettings): CachePurgeSelector | string {
  const field = selector.path !== undefined ? 'path' : selector.prefix !== undefined ? 'prefix' : undefined;
  if (field === undefined) return selector;
  const given = selector[field]!;
  const normalised = normalisePath(field === 'path' ? given : `${given}x`, paths);
  if (typeof normalised !== 'string') return `"${field}" cannot be normalised as a request path (${normalised.error}): ${JSON.stringify(given)}`;
  return { ...selector, [field]: field === 'path' ? normalised : normalised.slice(0, -1) };
}

/** Why `name` names no `cache` middleware of `config`, or undefined when it does (or is absent). */
function unknownMiddleware(name: string | undefined, config: GatewayConfig): string | undefined {
  if (name === undefined) return undefined;
  const definition = config.middlewares.get(name);
  if (definition?.kind === 'cache') return undefined;
  const caches = [...config.middlewares].filter(([, candidate]) => candidate.kind === 'cache').map(([cache]) => cache);
  const known = caches.length === 0 ? 'no cache middleware is configured' : `the cache middleware are ${caches.join(', ')}`;
  return definition === undefined ? `no middleware is named ${JSON.stringify(name)}: ${known}` : `${JSON.stringify(name)} is a ${definition.kind} middleware, not a cache: ${known}`;
}

async function readJson(request: IncomingMessage): Promise<{ value: unknown } | StoreAnswer> {
  const read = await readAdminBody(request, PURGE_BODY_LIMIT_BYTES, `a purge request is at most ${PURGE_BODY_LIMIT_BYTES} bytes`, 'the body is empty: send a JSON object such as {"path": "/products/42"}');
  if (!('text' in read)) return read;
  try {
    return { value: JSON.parse(read.text) as unknown };
  } catch (failure) {
    return adminError(400, 'bad-request', 'SB_ADMIN_BODY', `the body is not JSON: ${errorMessage(failure)}`);
  }
}
