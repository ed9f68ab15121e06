import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { BasicAuthSettings, ConsumerConfig } from '../../config/types.ts';
import type { Middleware } from '../../context.ts';
import { endAnsweredByListener, recordClientGone, whileClientStays } from '../client-gone.ts';
import { denyAccess, identify } from '../consumers/index.ts';
import { TokenCache } from '../jwt-auth/token-cache.ts';

/** Verified credentials remembered per middleware, and for how long. */
const CACHE_SIZE = 10_000;
const CACHE_TTL_MS = 5 * 60_000;

/**
 * A bcrypt hash (cost 10) of a random password nobody holds: what a user name is checked against
 * when no consumer has a password (`standInHash`).
 */
const UNKNOWN_USER_HASH = '$2b$10$KTzqxwY6ME.jfD4nBbuvxuBi.bygrBo29g8uEwibJvITBkxm9WjYe';

/**
 * bcrypt checks running at once in this process, and waiting: libuv's thread pool (4 threads by
 * default) also serves zlib, DNS lookups and file reads, which a flood of guesses must not starve.
 * Past the queue a request is refused at once (503 `auth-busy`) instead of waiting in memory.
 */
const MAX_CHECKS = 2;
const MAX_WAITING = 256;

export type Compare = (password: string, hash: string) => Promise<boolean>;
/** The process's bcrypt checks: every basicAuth shares the thread pool, so they share the bound. */
let sharedCheck: BoundedCompare | undefined;

/**
 * bcrypt's native binding, loaded by the first `basicAuth` built (a gateway without one never
 * loads it). It checks on libuv's thread pool: a check (~50–100 ms of CPU at cost 10) never
 * holds the event loop, as a JavaScript bcrypt would for its whole length.
 */
function bcryptCheck(): BoundedCompare {
  sharedCheck ??= boundedCompare((createRequire(import.meta.url)('bcrypt') as { compare: Compare }).compare, MAX_CHECKS, MAX_WAITING);
  return sharedCheck;
}

/**
 * HTTP Basic authentication (RFC 7617; Traefik's BasicAuth, APISIX's basic-auth): the user name is
 * a consumer's name and the password must match one of its bcrypt `passwords`. The consumer is then
 * published as the `consumer` context variable and named upstream in `X-Consumer`. No credentials,
 * or wrong ones, answer 401 with a `Basic` challenge. A verified Authorization value is remembered
 * (as its SHA-256, never the password) for 5 minutes, so a client sending it on every request pays
 * one bcrypt check per 5 minutes; a change of any consumer's passwords rebuilds the middleware and
 * forgets them all. With `strip` (default) the Authorization header does not go upstream. `check`
 * is the process's bounded bcrypt unless a test passes its own.
 */
export function basicAuth(settings: BasicAuthSettings, check: BoundedCompare = bcryptCheck()): Middleware {
  const unknownUserHash = standInHash(settings.consumers);
  const consumers = new Map<string, ConsumerConfig>(settings.consumers.map((consumer) => [consumer.name, consumer]));
  const cache = new TokenCache<ConsumerConfig>(CACHE_SIZE, CACHE_TTL_MS);
  const challenge = `Basic realm="${settings.realm}", charset="UTF-8"`;
  return async function basicAuth(context, next) {
    const headers = context.upstream.headers;
    const authorization = headers.authorization;
    if (settings.strip && authorization !== undefined) delete headers.authorization;
    const credentials = readCredentials(authorization);
    if (credentials === undefined) return denyAccess(context, { status: 401, reason: 'missing-credentials', message: 'a user name and password are required', challenge });
    const invalid = { status: 401, reason: 'invalid-credentials', message: 'the user name or password is not valid', challenge };
    if (credentials === 'malformed') return denyAccess(context, invalid);
    const cacheKey = createHash('sha256').update(authorization as string).digest('base64');
    let consumer = cache.get(cacheKey);
    if (!consumer) {
      // Only a check waits (in the queue, on the thread pool): a remembered value pays for no watch.
      const watched = await whileClientStays(context, (left) => verify(check, consumers.get(credentials.user), credentials.password, unknownUserHash, left.signal));
      if (watched === undefined) return recordClientGone(context);
      const verified = watched.result;
      // A check that ran to its end is remembered even so: the client's next attempt needs none.
      if (verified !== BUSY && verified !== undefined) cache.set(cacheKey, verified, undefined);
      // Nobody is left to hear the verdict, and nothing goes on.
      if (watched.clientGone) return recordClientGone(context);
      // Its listener answered in its place meanwhile (a body that missed `limits.requestTimeout` while
      // the check held it unread): that answer is the request's, and nothing goes on, as after a
      // forwardAuth check or a rateLimit delay.
      if (endAnsweredByListener(context)) return;
      if (verified === BUSY) return denyAccess(context, { status: 503, reason: 'auth-busy', message: 'too many password checks are waiting; try again shortly', retryAfterSeconds: 1 });
      if (!verified) return denyAccess(context, invalid);
      consumer = verified;
    }
    identify(context, consumer);
    await next();
  };
}

export const BUSY = Symbol('busy');
/** A bcrypt check under the process's bound; `left` aborts when the client has gone (its check is then skipped). */
export type BoundedCompare = (password: string, hash: string, left?: AbortSignal) => Promise<boolean | typeof BUSY>;

/**
 * `compare` at most `maxChecks` at once, `maxWaiting` more queued in arrival order; BUSY past that,
 * and BUSY without a check for one whose client left (`left` aborted) before its turn: it leaves the
 * queue at once, so a flood that connects and disconnects holds neither the slots nor the places in
 * line of requests somebody will read. A check already running ends as it will (bcrypt's native
 * work cannot be stopped).
 */
export function boundedCompare(compare: Compare, maxChecks: number, maxWaiting: number): BoundedCompare {
  let running = 0;
  const waiting = new Set<() => void>();
  // The slot passes to the next in line (a Set iterates in insertion order), or is freed.
  const release = () => {
    const next = waiting.values().next();
    if (next.done) running -= 1;
    else {
      waiting.delete(next.value);
      next.value();
    }
  };
  const wait = (left: AbortSignal | undefined) =>
    new Promise<boolean>((resolve) => {
      const turn = () => {
        left?.removeEventListener('abort', gone);
        resolve(true);
      };
      const gone = () => {
        waiting.delete(turn);
        resolve(false);
      };
      waiting.add(turn);
      left?.addEventListener('abort', gone, { once: true });
    });
  return async (password, hash, left) => {
    if (left?.aborted) return BUSY;
    if (running >= maxChecks) {
      if (waiting.size >= maxWaiting) return BUSY;
      // Given its turn, the waiter holds the slot its predecessor passed on.
      if (!(await wait(left))) return BUSY;
    } else running += 1;
    try {
      return await compare(password, hash);
    } finally {
      release();
    }
  };
}

/**
 * The hash a user name no consumer has is checked against, its outcome ignored: the costliest of the
 * consumers' own. A bcrypt check's time doubles with each step of cost, so a stand-in of another cost
 * than the consumers' (htpasswd -B writes cost 5 unless told -C) would tell a wrong password from a
 * name that does not exist.
 */
export function standInHash(consumers: readonly ConsumerConfig[]): string {
  const hashes = consumers.flatMap((consumer) => consumer.passwordHashes);
  if (hashes.length === 0) return UNKNOWN_USER_HASH;
  // `$2b$NN$…`: the cost is the two digits after the version.
  return hashes.reduce((costliest, hash) => (Number(hash.slice(4, 6)) > Number(costliest.slice(4, 6)) ? hash : costliest));
}

/** `consumer` when `password` matches one of its hashes; a missing consumer costs one check too. */
async function verify(check: BoundedCompare, consumer: ConsumerConfig | undefined, password: string, unknownUserHash: string, left: AbortSignal): Promise<ConsumerConfig | undefined | typeof BUSY> {
  if (!consumer) {
    const outcome = await check(password, unknownUserHash, left);
    return outcome === BUSY ? BUSY : undefined;
  }
  for (const hash of consumer.passwordHashes) {
    const outcome = await check(password, hash, left);
    if (outcome === BUSY) return BUSY;
    if (outcome) return consumer;
  }
  return undefined;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * The user name and password of an `Authorization: Basic <base64(user:password)>` value (the scheme
 * in any case, RFC 9110 §11.1; the text as UTF-8, RFC 7617 §2.1): undefined when there is no Basic
 * value (none, another scheme, several headers), 'malformed' when it does not decode to `user:password`.
 */
export function readCredentials(value: string | string[] | undefined): { user: string; password: string } | 'malformed' | undefined {
  if (typeof value !== 'string' || value.length < 6 || value.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const encoded = value.slice(6).trim();
  if (!BASE64.test(encoded)) return 'malformed';
  const text = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  // A control character or a replacement character (bytes that are not UTF-8) is no one's name or password.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (colon <= 0 || /[\u0000-\u001f\u007f\ufffd]/.test(text)) return 'malformed';
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}
