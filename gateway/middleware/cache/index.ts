import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type CachePolicy from 'http-cache-semantics';
import type { CacheSettings } from '../../config/types.ts';
import type { CacheAtProxy, GatewayContext, HeldAnswer, Middleware, ResponseBodyTap } from '../../context.ts';
import { updateInBackground, type BackgroundUpdateParts } from './cache-background.ts';
import { whenRetired } from '../middleware-retire.ts';
import { asksAsCacheWould, isConditional, isNotModified, preconditionsHold, refreshedHeaders } from './cache-conditional.ts';
import { recordClientGone } from '../client-gone.ts';
import { answerFromMemory, sendHit } from './cache-hit.ts';
import { cacheKey } from './cache-key.ts';
import { askRevalidation, bypasses, policyRequest, storablePolicyOf, varyHeaders } from './cache-policy.ts';
import { headTap, notModifiedTap, partTap, preconditionFailedTap } from './cache-range.ts';
import { FetchLocks } from './cache-lock.ts';
import { cacheRequestsTotal, cacheStoredTotal, forgetCache, showCache, type CacheStatus } from './cache-metrics.ts';
import { mayServeStale, staleAnswer, staleTriggerOf } from './cache-stale.ts';
import { ResponseCache, type CachedAnswer } from './cache-store.ts';

export { ResponseCache, variantKey, varyNames } from './cache-store.ts';
export { CACHE_PURGE_FIELDS, cachePurgedTotal, decodeCachePurgeSelector, purgeLiveCaches } from './cache-purge.ts';
export type { CachePurgeSelector } from './cache-purge.ts';
export type { CachedAnswer } from './cache-store.ts';

/** Methods that change nothing (RFC 9110 §9.2.1): any other one answered with success invalidates the stored answers of its URI (RFC 9111 §4.4). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * The key every variant of a request's resource is stored under: GET and HEAD share one, then
 * scheme, host, and path with query after the route's rewrites, then the entry point and route
 * (one cache may serve routes whose rewritten paths meet, `/a/x` and `/b/x` both `/x`, on different
 * services, or routes told apart by a header); a request whose consumer an
 * authentication middleware identified gets that consumer's own keys (APISIX proxy-cache's
 * `consumer_isolation`), since an API key in its own header is no `Authorization` RFC 9111 §3.5 knows of.
 */
export function primaryKey(context: GatewayContext): string {
  const host = (context.request.headers.host ?? '').toLowerCase();
  const scheme = context.secure ? 'https' : 'http';
  return cacheKey({ scheme, host, path: context.upstream.path, entryPoint: context.entryPoint, route: context.routeName, consumer: context.get('consumer')?.name });
}

/**
 * An HTTP response cache in this process's memory (nginx's `proxy_cache`, APISIX's `proxy-cache`
 * memory strategy) with RFC 9111's rules for a shared cache, which `http-cache-semantics` decides
 * (storable, fresh, `Vary`): a fresh stored answer is sent without picking an instance (`HIT`, with
 * `Age`; a 304 to a request whose conditionals it meets, a 412 to one whose `If-Match` or `If-Unmodified-Since` it fails); otherwise the request goes upstream
 * (`MISS`, `EXPIRED`, or `BYPASS` when it asked for a fresh answer), a stale answer's validators
 * with it (nginx's `proxy_cache_revalidate`; for a GET whatever the client's conditionals): a 304 freshens the stored answer, which is sent, or a 304 for that client (`REVALIDATED`);
 * a fetch that fails (no instance reached, a timeout, a 500, 502, 503 or 504) gets the client the
 * stale answer where `useStale` or the answer's own `stale-if-error` allow it (`STALE`); while one
 * request updates a stale answer, others get it at once where `useStale`'s `updating` or the answer's
 * own `stale-while-revalidate` allow it (`UPDATING`); with `backgroundUpdate`, the first request gets it at
 * once too (`STALE`), the update fetched without a client. An answer from upstream streams to the client as it comes while a copy gathers beside it, stored once the
 * whole body has come through, if it may be: not when it is longer than `maxEntryBytes` or the upstream broke
 * off. A client that leaves, or whose `Range` part was sent, does not stop it: the body is read on
 * for the copy alone (transport-response-body.ts), as nginx reads a cacheable answer on. Answers with `Set-Cookie` or `Vary: *` are never stored. A fetch that may
 * store asks for the whole answer (nginx's): a client's `Range` gets its part cut from it as it passes,
 * its `If-None-Match` and `If-Modified-Since` a 304 when the answer meets them.
 */
export function cache(settings: CacheSettings, name = 'cache'): Middleware {
  const store = new ResponseCache(settings.maxBytes);
  const methods = new Set(settings.methods);
  /** Whether a HEAD miss fetches and stores the GET's answer (`convertHead`): only where GETs are answered from the cache too. */
  const convertsHead = settings.convertHead && methods.has('GET') && methods.has('HEAD');
  const statusHeader = settings.cacheStatusHeader;
  const requests = Object.fromEntries((['HIT', 'MISS', 'EXPIRED', 'REVALIDATED', 'STALE', 'UPDATING', 'BYPASS'] as const).map((status) => [status, cacheRequestsTotal.labels(name, status)])) as Record<CacheStatus, ReturnType<typeof cacheRequestsTotal.labels>>;
  const stored = cacheStoredTotal.labels(name);
  /** Fetches of new entries under way, when misses wait for them (`lock`). */
  const locks = settings.lockTimeoutMs === undefined ? undefined : new FetchLocks();
  /**
   * The request updating each stale stored answer (nginx's `updating` mark; a background update's
   * own context, `updateInBackground`), when another may be
   * sent that answer meanwhile (`useStale: { on: [updating] }`, or the answer's own
   * `stale-while-revalidate`): keyed by the stored answer itself, so a variant is its own and an
   * answer replaced or dropped leaves no mark on its successor. Held until the updater's fetch
   * ended: stored, storing nothing, or its response closed.
   */
  const updaters = settings.useStale.on.includes('updating') || settings.useStale.answerDirectives ? new Map<CachedAnswer, GatewayContext>() : undefined;
  /** The policy of an answer that may be stored, or undefined (`storablePolicyOf`). */
  const storablePolicy = storablePolicyOf(settings);
  /** Bytes the copies gathering beside answers in flight hold together, kept within `maxBytes` as the stored ones are. */
  let gathering = 0;
  /** The requests whose taps gather an answer: their marks go when the tap ends, which may be after their responses closed. */
  const gatherers = new WeakSet<GatewayContext>();
  showCache(name, store);

  /**
   * The fetch of `context` (updating the stale answer `updated`, if any) has stored its
   * answer or will store none: misses waiting on its lock look again, and the next request that
   * finds `updated` stale updates it itself.
   */
  const fetchEnded = (context: GatewayContext, updated: CachedAnswer | undefined): void => {
    locks?.release(context);
    if (updated !== undefined && updaters?.get(updated) === context) updaters.delete(updated);
  };

  /** Gathers a GET's answer beside its way to the client and stores it once whole, if it may be stored. */
  const tapFor = (context: GatewayContext, primary: string, sent: IncomingHttpHeaders, status: number, headers: OutgoingHttpHeaders, drops: number, updated: CachedAnswer | undefined): ResponseBodyTap | undefined => {
    const policy = storablePolicy(context, sent, status, headers);
    if (policy === undefined) {
      // Nothing of this answer will be stored: misses waiting for it need not wait for its body.
      fetchEnded(context, updated);
      return undefined;
    }
    let chunks: Buffer[] | undefined = [];
    let length = 0;
    // The tap's end or abort lets go of the lock and the updating mark, which may come after the
    // response closed: the body may be read on for the tap alone (transport-response-body.ts).
    locks?.gathering(context);
    gatherers.add(context);
    const release = () => {
      gathering -= length;
      length = 0;
      chunks = undefined;
      gatherers.delete(context);
      // Kept, or given up on: either way the waiters look again now (a body given up on may stream on for long).
      fetchEnded(context, updated);
    };
    return {
      chunk(chunk) {
        if (chunks === undefined) return;
        // Over the entry's bound, or the copies in flight together over maxBytes (many misses at
        // once): the rest streams on, nothing more of this answer is kept.
        if (length + chunk.length > settings.maxEntryBytes || gathering + chunk.length > settings.maxBytes) return release();
        length += chunk.length;
        gathering += chunk.length;
        chunks.push(chunk);
      },
      end() {
        if (chunks === undefined) return;
        const body = Buffer.concat(chunks, length);
        // A purge or an invalidation of this key ran while this answer was on its way: it may be what was meant to go.
        if (!store.droppedSince(primary, drops)) {
          const kept = { ...headers };
          // A response body transform may have changed the length after these headers were taken.
          if (kept['content-length'] !== undefined || body.length > 0) kept['content-length'] = String(body.length);
          delete kept['transfer-encoding'];
          store.store(primary, sent, { status, headers: kept, body, policy });
          stored.inc();
        }
        release();
      },
      abort() {
        release();
      },
      keeping: () => chunks !== undefined,
    };
  };

  /**
   * The stored answer that a 304 to its revalidation stands for, freshened by that 304's headers
   * and stored again by this cache's rules (a lifetime, or `defaultTtl`; no `Set-Cookie`), or
   * forgotten when it may not be (the client still gets it, with the 304's headers). A 304 whose
   * validators do not select it (RFC 9111 §4.3.4, http-cache-semantics' `revalidatedPolicy`)
   * freshens nothing: the stored answer goes as it was, this once, and is forgotten.
   */
  const refreshed = (context: GatewayContext, primary: string, sent: IncomingHttpHeaders, found: CachedAnswer, notModified: OutgoingHttpHeaders, drops: number): HeldAnswer => {
    const revalidated = found.policy.revalidatedPolicy(policyRequest(context, sent), { status: 304, headers: notModified as CachePolicy.Headers });
    if (!revalidated.matches) {
      store.forget(primary, sent);
      return { status: found.status, headers: { ...found.headers, age: String(Math.floor(found.policy.age())) }, body: found.body };
    }
    const headers = refreshedHeaders(found.headers, notModified);
    const policy = storablePolicy(context, sent, found.status, headers);
    if (policy === undefined) store.forget(primary, sent);
    // Not stored again after a purge (or an invalidation) of this key since the lookup: that would bring back an answer it dropped.
    else if (!store.droppedSince(primary, drops)) store.store(primary, sent, { status: found.status, headers, body: found.body, policy });
    return { status: found.status, headers: { ...headers, age: String(Math.floor((policy ?? revalidated.policy).age())) }, body: found.body };
  };

  /** What a background update needs of this cache (`updateInBackground`), when a stale answer's first request gets it at once too (`backgroundUpdate`). */
  const background: BackgroundUpdateParts | undefined = settings.backgroundUpdateTimeoutMs !== undefined && updaters !== undefined ? { updaters, gatherers, tapFor, refreshed, fetchEnded, timeoutMs: settings.backgroundUpdateTimeoutMs } : undefined;

  /** The cache's work, where the proxy would run (`servingCachedHits`). */
  const atProxy: CacheAtProxy = async function cacheAtProxy(context, proxy) {
    const method = context.request.method ?? 'GET';
    if (!methods.has(method)) {
      if (!SAFE_METHODS.has(method)) invalidateOnSuccess(context, store);
      return proxy(context);
    }
    const primary = primaryKey(context);
    const bypass = bypasses(context.request.headers);
    const sent = varyHeaders(context);
    // Purges and invalidations counted now: an answer fetched from here on is not stored if one of this key ran meanwhile.
    let drops = store.drops;
    let found = bypass ? undefined : store.find(primary, sent);
    // A HEAD that goes upstream fetches the GET's answer to store, when the cache converts it (below).
    let mayStore = (method === 'GET' || (method === 'HEAD' && convertsHead)) && !/(?:^|,)\s*no-store\b/i.test(context.request.headers['cache-control'] ?? '');
    if (locks !== undefined && !bypass && found === undefined) {
      // Another request's fetch of this key is under way (nginx's `proxy_cache_lock`): its answer,
      // once stored, is this one's too. A request that would store nothing (a HEAD not converted)
      // takes no lock, but waits for a fetch under way; a Range request takes it, since it fetches the whole answer.
      const turn = await locks.awaitTurn(() => store.lockKey(primary, sent), context, mayStore, settings.lockTimeoutMs!, () => store.find(primary, sent) !== undefined);
      // Its fetch (after a handover, `free`) or its lookup begins now: a purge or an invalidation
      // during the wait came before it, and keeps nothing it fetches from being stored.
      if (turn === 'released' || turn === 'free') drops = store.drops;
      if (turn === 'released') found = store.find(primary, sent);
      if (turn === 'gone') {
        requests.MISS.inc();
        context.outcome.cacheStatus = 'MISS';
        return recordClientGone(context);
      }
      // Past the lock's timeout the request goes upstream beside the fetch, its answer not stored (as nginx's).
      if (turn === 'timeout') mayStore = false;
    }
    if (found !== undefined && found.policy.satisfiesWithoutRevalidation(policyRequest(context, sent))) {
      requests.HIT.inc();
      context.outcome.cacheStatus = 'HIT';
      return sendHit(context, found, sent, statusHeader);
    }
    // Stale, and another request updates it (nginx's `proxy_cache_use_stale updating`, RFC 5861's
    // `stale-while-revalidate`): the stored answer goes at once, as a hit, under the same rules as
    // one sent for a failure, instead of one more request upstream.
    const updater = found === undefined ? undefined : updaters?.get(found);
    if (found !== undefined && updater !== undefined && mayServeStale(settings.useStale, 'updating', found, context.request.headers)) {
      requests.UPDATING.inc();
      context.outcome.cacheStatus = 'UPDATING';
      return sendHit(context, found, sent, statusHeader, 'UPDATING');
    }
    // Stale, no one updates it yet, and it may go while it is updated (`backgroundUpdate`, nginx's
    // `proxy_cache_background_update`): this client gets it at once too (`STALE`, as nginx's
    // `$upstream_cache_status` says), and the update goes upstream without a client, holding the mark.
    if (found !== undefined && updater === undefined && background !== undefined && mayStore && mayServeStale(settings.useStale, 'updating', found, context.request.headers)) {
      requests.STALE.inc();
      context.outcome.cacheStatus = 'STALE';
      // The client's answer first; the mark is set before anything could await.
      const sending = sendHit(context, found, sent, statusHeader, 'STALE');
      updateInBackground(background, context, primary, found, sent, drops, proxy);
      return sending;
    }
    let status: CacheStatus = bypass ? 'BYPASS' : found === undefined ? 'MISS' : 'EXPIRED';
    context.outcome.cacheStatus = status;
    // A fetch that may fill the cache asks without the client's conditionals (nginx's proxy_cache
    // blanks them): the upstream's 304 to the client's own copy, or its 412, would store nothing,
    // and a route whose clients hold copies would never fill. The gateway judges them on the answer
    // instead, in RFC 9110 §13.2.2's order: `If-Match` and `If-Unmodified-Since` first
    // (`preconditionFailedTap`), then `If-None-Match` and `If-Modified-Since` (`notModifiedTap`).
    const judging = mayStore && (sent['if-none-match'] !== undefined || sent['if-modified-since'] !== undefined || sent['if-match'] !== undefined || sent['if-unmodified-since'] !== undefined);
    if (judging) {
      delete context.upstream.headers['if-none-match'];
      delete context.upstream.headers['if-modified-since'];
      delete context.upstream.headers['if-match'];
      delete context.upstream.headers['if-unmodified-since'];
    }
    if (found === undefined) requests[status].inc();
    else {
      // A fetch that may store asks with the cache's validators whatever the client's conditionals
      // (those it judges itself, above): a 304 freshens the entry, and the client gets the stored
      // answer or a 304 by its own. A conditional that the stored answer meets is the cache's own
      // question even on a fetch that stores nothing (a HEAD not converted); any other is the client's to pass on.
      const conditional = isConditional(sent);
      const revalidating = (mayStore || !conditional || asksAsCacheWould(sent, found.status, found.headers)) && askRevalidation(context, found, sent);
      // This request updates the stale answer when its fetch can (it stores, or revalidates); a
      // response closed already would never let the mark go.
      const updating = updaters !== undefined && (mayStore || revalidating) && updater === undefined && !context.response.destroyed;
      if (updating) updaters.set(found, context);
      // EXPIRED, REVALIDATED or STALE is known once the upstream answered (or did not): counted as the response closes.
      context.response.once('close', () => {
        requests[status].inc();
        if (updating && updaters.get(found) === context && !gatherers.has(context)) updaters.delete(found);
      });
      context.answerReplacer = (answerStatus, headers, errorClass) => {
        if (revalidating && answerStatus === 304 && errorClass === undefined) {
          status = 'REVALIDATED';
          context.outcome.cacheStatus = status;
          const answer = refreshed(context, primary, sent, found, headers, drops);
          return answerFromMemory(method, sent, answer.status, answer.headers, answer.body);
        }
        // The fetch failed (nginx's `proxy_cache_use_stale`, RFC 5861's `stale-if-error`): the
        // stored answer goes in the failure's place, which still counts against the upstream.
        const trigger = staleTriggerOf(answerStatus, errorClass);
        if (trigger === undefined || !mayServeStale(settings.useStale, trigger, found, context.request.headers)) return undefined;
        status = 'STALE';
        context.outcome.cacheStatus = status;
        return staleAnswer(method, found, sent);
      };
    }
    let upstream: { status: number; headers: OutgoingHttpHeaders } | undefined;
    // First of the hooks: it sees the upstream's own headers, before any middleware's edits (which
    // run again on every hit, for that request); the status header goes on every answer.
    context.responseHeaderHooks.unshift((answerStatus, headers) => {
      upstream ??= { status: answerStatus, headers: { ...headers } };
      if (statusHeader !== undefined) headers[statusHeader] = status;
    });
    if (mayStore) {
      // nginx's `proxy_cache_convert_head`: a HEAD that may store goes upstream as the GET whose
      // answer it stores (under the key they share), judged as any GET; the client still gets the
      // head alone (`headTap`), at once, while the body is read on to be stored.
      if (method === 'HEAD') context.upstream.method = 'GET';
      // A fetch that may fill the cache asks for the whole answer (nginx's proxy_cache blanks Range
      // and If-Range): its 200 is stored, and the client gets the part it asked for cut from it as
      // it passes (`partTap`). Any Range (also one this cache ignores, as on a hit: the whole answer).
      const ranged = sent.range !== undefined;
      if (ranged) {
        delete context.upstream.headers.range;
        delete context.upstream.headers['if-range'];
      }
      // A stored answer sent for a 304 (REVALIDATED) was stored again already; one sent for a failure (STALE) stays as it was.
      context.responseTapper = (answerStatus, headers, tapped) => {
        if (upstream === undefined || upstream.status !== answerStatus || status === 'REVALIDATED' || status === 'STALE') {
          fetchEnded(context, found);
          return undefined;
        }
        const tap = tapFor(tapped, primary, sent, answerStatus, upstream.headers, drops, found);
        // The client's own conditionals, kept from the upstream, judged on the answer: a 412, then a 304, come before any range (RFC 9110 §13.2.2).
        if (judging && !preconditionsHold(sent, answerStatus, upstream.headers)) return preconditionFailedTap(tap, headers, tapped, settings.maxEntryBytes);
        if (judging && isNotModified(sent, answerStatus, upstream.headers)) return notModifiedTap(tap, headers, upstream.headers, tapped, settings.maxEntryBytes);
        // A HEAD ignores its Range (RFC 9110 §14.2): the head of the whole answer, its body passed to no one.
        if (method === 'HEAD') return headTap(tap, answerStatus, headers, settings.maxEntryBytes);
        return ranged ? partTap(tap, method, sent, answerStatus, headers, settings.maxEntryBytes) : tap;
      };
    }
    await proxy(context);
  };
  // The lookup waits for the centre of the chain: every layer listed after the cache (an access
  // control, a rate limit, a rewrite, a header edit) judges and shapes a request before a stored
  // answer is chosen for it, as it does before the proxy; a layer that answers by itself sends no hit.
  const middleware: Middleware = function cache(context, next) {
    // An upgrade (a WebSocket's GET) wants a tunnel, not a stored answer, and its 101 is none to keep (as `errorPageFor`).
    if (context.request.headers.upgrade === undefined) context.cacheAtProxy = atProxy;
    return next();
  };
  whenRetired(middleware, () => forgetCache(name, store));
  return middleware;
}

/**
 * The proxy, behind the `cache` a request passed (`context.cacheAtProxy`): the centre of a chain
 * whose configuration declares a cache, so that a stored answer is looked up with the request as
 * the proxy would send it and goes out only after every layer of the chain let the request through.
 */
export function servingCachedHits(proxy: (context: GatewayContext) => Promise<void>): (context: GatewayContext) => Promise<void> {
  return (context) => {
    const cacheAtProxy = context.cacheAtProxy;
    if (cacheAtProxy === undefined) return proxy(context);
    context.cacheAtProxy = undefined;
    return cacheAtProxy(context, proxy);
  };
}

/** Forgets the stored answers of the request's URI once an unsafe method's answer is a success (RFC 9111 §4.4: 2xx or 3xx). */
function invalidateOnSuccess(context: GatewayContext, store: ResponseCache): void {
  const primary = primaryKey(context);
  context.responseHeaderHooks.push((status) => {
    if (status >= 200 && status < 400) store.invalidate(primary);
  });
}
