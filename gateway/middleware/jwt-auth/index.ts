import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyResult } from 'jose';
import type { KeyObject } from 'node:crypto';
import type { ConsumerConfig, JwtAuthSettings } from '../../config/types.ts';
import { componentLogger } from '../../../src/logger.ts';
import type { Middleware } from '../../context.ts';
import { endedDuringWait } from '../client-gone.ts';
import { denyAccess, identify } from '../consumers/index.ts';
import { otherSpellingsRemover } from '../../proxy/header-spellings.ts';
import { JwksSource, type JwksSourceOptions } from './jwks-source.ts';
import { fittingKeys, isAmong, namedKey, refusedJwksKeyWarning, unnamedKey, type RefusedKey } from './key-selection.ts';
import { skippedKeyWarning, type VerificationKey } from '../../config/access-files.ts';
import { TokenCache } from './token-cache.ts';
import { readToken } from './token-source.ts';

export { JwksSource, type JwksSourceOptions } from './jwks-source.ts';
export { fittingKeys, jwksKeys, keyFits, namedKey, unnamedKey } from './key-selection.ts';
export { TokenCache } from './token-cache.ts';
export { cookieValue, readToken } from './token-source.ts';

/** What a verified token lets through: the upstream headers its claims fill, and its consumer. */
interface Verdict {
  readonly headers: readonly (readonly [string, string])[];
  readonly consumer: ConsumerConfig | undefined;
  readonly claims: JWTPayload;
}

declare module '../../context.ts' {
  interface ContextVariables {
    /** The claims of the token jwtAuth verified; later middleware (a rate limit keyed by `claim:<name>`) read them. */
    jwtClaims: JWTPayload;
  }
}

/** What `jwtAuth` needs besides its settings. */
export interface JwtAuthOptions extends JwksSourceOptions {
  /** Wall clock in epoch ms for `exp`/`nbf` and the cache (tests pass a fake one). */
  readonly wallClock?: () => number;
}

const CHALLENGE = 'Bearer realm="switchboard"';

/**
 * JWT verification with jose: the token (Authorization header, cookie or query parameter) must
 * use an algorithm of the allow-list, verify with a configured key (the HMAC secret for HS*, a
 * key file or JWKS key of the matching type otherwise), and pass `iss`, `aud`, `exp` and `nbf`
 * with `clockSkew` leeway. The chosen claims then replace any same-named client headers upstream
 * (spelt with underscores too), and a matching consumer is published. Verdicts are cached per token until it expires, so a
 * client that reuses its token pays one signature check per `cacheTtl`.
 */
export function jwtAuth(settings: JwtAuthSettings, options: JwtAuthOptions = {}): Middleware {
  const wallClock = options.wallClock ?? Date.now;
  const fileKeys = settings.keys?.publicKeys ?? [];
  const secret = settings.keys?.secret;
  const log = componentLogger('jwt-auth');
  const onError = options.onError ?? ((error: Error) => log.warn({ url: settings.jwks?.url, err: error.message }, 'JWKS fetch failed; the last keys stay in use'));
  const onRefusedKeys =
    options.onRefusedKeys ??
    ((keys: readonly RefusedKey[]) => {
      const url = settings.jwks?.url ?? '';
      for (const key of keys) log.warn({ url, kid: key.kid, reason: key.reason }, refusedJwksKeyWarning(url, key));
    });
  const jwks = settings.jwks ? new JwksSource(settings.jwks, { ...options, onError, onRefusedKeys }) : undefined;
  for (const skipped of settings.keys?.skippedKeys ?? []) log.warn({ file: skipped.file, key: skipped.key, reason: skipped.reason }, skippedKeyWarning(skipped));
  const cache = new TokenCache<Verdict>(settings.cacheSize, settings.cacheTtlMs, wallClock);
  const claimHeaders = Object.entries(settings.claimsToHeaders);
  // The token's own header too (`X_Token` beside `X-Token`): CGI-style upstreams would read an unchecked one as the token.
  const removeClaimHeaderSpellings = otherSpellingsRemover([...claimHeaders.map(([, header]) => header), ...(settings.from.header === undefined ? [] : [settings.from.header])]);
  /**
   * The key for a token header that names a kid. A key that carries it wins wherever it is (a key
   * file, the JWKS); else a key without a kid stands in, unless `refresh`: then the JWKS is fetched
   * again first (within its cooldown) for a kid it may have gained. A signer that puts a kid on
   * tokens its key file lacks is thus served without waiting for the identity provider, and a key
   * rotated in at the provider still verifies (`verify` tries again with `refresh` when the stand-in fails).
   */
  const keyFor = async (alg: string, kid: string, refresh: boolean): Promise<{ key: KeyObject; standIn: boolean } | undefined> => {
    const named = namedKey(fileKeys, alg, kid) ?? (jwks && namedKey(await jwks.current(), alg, kid));
    if (named) return { key: named.key, standIn: false };
    const standIn = unnamedKey(fileKeys, alg) ?? (jwks && unnamedKey(await jwks.current(), alg));
    if (standIn && !(refresh && jwks)) return { key: standIn.key, standIn: true };
    const refreshed = jwks && namedKey(await jwks.refreshIfCooledDown(), alg, kid);
    if (refreshed) return { key: refreshed.key, standIn: false };
    return standIn && { key: standIn.key, standIn: true };
  };
  /**
   * The keys a token without a kid may be signed by, in turn: every key file's key that fits `alg`,
   * then the JWKS's (read only once the files' failed, so a file key never waits for the identity
   * provider), then the keys a new fetch of the JWKS adds, once all of those failed too (or none
   * fits): a provider publishes a rotated-in key before it signs with it, and a copy fetched before
   * that lacks it. That fetch is the unknown kid's, at most one per cooldown, so a flood of tokens
   * no key verifies costs the provider nothing more. A key already tried is not tried again, a key
   * in a key file and in the JWKS both (`isAmong`: the same public key, whatever its kid) included.
   */
  async function* unnamedKeys(alg: string): AsyncGenerator<KeyObject> {
    const tried: VerificationKey[] = [];
    // Only against the keys tried: a key that did not fit before (its `alg` corrected since) is new to this token.
    function* untried(keys: readonly VerificationKey[]): Generator<KeyObject> {
      for (const entry of fittingKeys(keys, alg)) {
        if (isAmong(entry.key, tried)) continue;
        tried.push(entry);
        yield entry.key;
      }
    }
    yield* untried(fileKeys);
    if (!jwks) return;
    const known = await jwks.current();
    yield* untried(known);
    const fetched = await jwks.refreshIfCooledDown();
    if (fetched !== known) yield* untried(fetched);
  }
  /**
   * A key getter for one verification; `usedStandIn` tells whether a key without the token's kid was
   * given (`given`), and `otherKeys` holds the keys a token without a kid is checked against next.
   * `spent` is a stand-in that failed the token already: found again after the refresh (the JWKS
   * gained no key of that kid), it is not checked a second time.
   */
  const getterFor = (refresh: boolean, spent?: KeyObject) => {
    const getter = {
      usedStandIn: false,
      given: undefined as KeyObject | undefined,
      otherKeys: [] as AsyncIterable<KeyObject> | readonly KeyObject[],
      getKey: (async ({ alg = '', kid }) => {
        if (alg.startsWith('HS')) {
          if (secret) return secret;
        } else if (kid === undefined) {
          const keys = unnamedKeys(alg);
          getter.otherKeys = keys;
          const first = await keys.next();
          if (!first.done) return first.value;
        } else {
          const found = await keyFor(alg, kid, refresh);
          if (found && spent?.equals(found.key) === true) throw new errors.JWSSignatureVerificationFailed();
          if (found) {
            getter.usedStandIn = found.standIn;
            getter.given = found.key;
            return found.key;
          }
        }
        throw new errors.JWKSNoMatchingKey();
      }) as JWTVerifyGetKey,
    };
    return getter;
  };
  const verifyOptions = {
    algorithms: [...settings.algorithms],
    clockTolerance: Math.ceil(settings.clockSkewMs / 1_000),
    ...(settings.issuer ? { issuer: [...settings.issuer] } : {}),
    ...(settings.audience ? { audience: [...settings.audience] } : {}),
  };
  const verifyWith = async (token: string, refresh: boolean, spent?: KeyObject): Promise<JWTVerifyResult> => {
    const getter = getterFor(refresh, spent);
    const options = { ...verifyOptions, currentDate: new Date(wallClock()) };
    try {
      return await jwtVerify(token, getter.getKey, options);
    } catch (error) {
      if (!(error instanceof errors.JWSSignatureVerificationFailed)) throw error;
      // The stand-in was not the signer: the identity provider may have rotated in a key since the last fetch.
      if (!refresh && jwks && getter.usedStandIn) return verifyWith(token, true, getter.given);
      // A token without a kid may be signed by any key that fits (an old and a new key during a rotation).
      // jose checks the signature before the claims, so only the signer's check can end otherwise
      // (expired, wrong audience), and that answer is the token's: no later key is tried after it.
      for await (const key of getter.otherKeys) {
        try {
          return await jwtVerify(token, key, options);
        } catch (next) {
          if (!(next instanceof errors.JWSSignatureVerificationFailed)) throw next;
        }
      }
      throw error;
    }
  };
  const verify = async (token: string): Promise<Verdict> => {
    const { payload } = await verifyWith(token, false);
    const verdict = { headers: claimsAsHeaders(payload, claimHeaders), consumer: consumerOf(payload, settings.consumers), claims: payload };
    cache.set(token, verdict, payload.exp === undefined ? undefined : payload.exp * 1_000 + settings.clockSkewMs);
    return verdict;
  };
  return async function jwtAuth(context, next) {
    const token = readToken(context, settings.from);
    if (settings.stripAuthorization) delete context.upstream.headers.authorization;
    // Whatever the client sent under a claim header's name is dropped, verified or not.
    for (const [, header] of claimHeaders) if (context.upstream.headers[header] !== undefined) delete context.upstream.headers[header];
    // And under another spelling of it (`X_User`), or of the token's header, which CGI-style upstreams read as the same variable.
    removeClaimHeaderSpellings?.(context.upstream.headers, context.underscoreNames);
    if (token === undefined || token === '') return denyAccess(context, { status: 401, reason: 'missing-token', message: 'a bearer token is required', challenge: CHALLENGE });
    let verdict = cache.get(token);
    if (!verdict) {
      try {
        verdict = await verify(token);
      } catch (error) {
        if (endedDuringWait(context)) return;
        const { reason, message } = denialOf(error);
        return denyAccess(context, { status: 401, reason, message, challenge: `${CHALLENGE}, error="invalid_token", error_description="${message}"` });
      }
      // The client left while the keys were fetched (a JWKS URL that answers slowly): nothing goes upstream for it.
      if (endedDuringWait(context)) return;
    }
    if (!verdict.consumer && settings.consumerRequired) return denyAccess(context, { status: 403, reason: 'unknown-consumer', message: 'the token belongs to no consumer' });
    for (const [header, value] of verdict.headers) context.upstream.headers[header] = value;
    context.set('jwtClaims', verdict.claims);
    identify(context, verdict.consumer);
    await next();
  };
}

/**
 * The upstream headers of the configured claims present in `payload`; a value with control
 * characters is left out (it could not travel in a header). Text beyond ASCII travels as its UTF-8
 * bytes, as a Go or nginx upstream reads it: as a JavaScript string a `李` could not be sent at all
 * (the request failed) and an `é` went out as one Latin-1 byte.
 */
function claimsAsHeaders(payload: JWTPayload, claimHeaders: readonly (readonly [string, string])[]): [string, string][] {
  const headers: [string, string][] = [];
  for (const [claim, header] of claimHeaders) {
    const value = payload[claim];
    if (value === undefined || value === null) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (!hasControlCharacter(text)) headers.push([header, isAscii(text) ? text : Buffer.from(text, 'utf8').toString('latin1')]);
  }
  return headers;
}

/** The first consumer whose JWT match names this token's `iss` (and `sub`, when it names one). */
function consumerOf(payload: JWTPayload, consumers: readonly ConsumerConfig[]): ConsumerConfig | undefined {
  return consumers.find((consumer) => consumer.jwt.some((match) => match.issuer === payload.iss && (match.subject === undefined || match.subject === payload.sub)));
}

/** The stable reason and the client's message for a failed verification; never the token or the key. */
function denialOf(error: unknown): { reason: string; message: string } {
  const code = (error as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return { reason: 'token-expired', message: 'the token has expired' };
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return { reason: 'invalid-claims', message: `the token's ${(error as errors.JWTClaimValidationFailed).claim} claim is not accepted` };
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return { reason: 'algorithm-not-allowed', message: "the token's algorithm is not accepted" };
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return { reason: 'unknown-key', message: 'no key verifies this token' };
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return { reason: 'invalid-signature', message: "the token's signature is not valid" };
    default:
      return { reason: 'invalid-token', message: 'the token is malformed' };
  }
}

function hasControlCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index += 1) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function isAscii(text: string): boolean {
  for (let index = 0; index < text.length; index += 1) if (text.charCodeAt(index) > 0x7f) return false;
  return true;
}
