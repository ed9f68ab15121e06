import type { KeyObject } from 'node:crypto';
import { signingKeys, type VerificationKey } from '../../config/access-files.ts';

/** The curve node:crypto names for each ES algorithm (RFC 7518 §3.4). */
const EC_CURVES: Readonly<Record<string, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/**
 * Whether `key` may verify a token signed with `alg`. The key's own type decides, never the
 * token: an RSA public key is never offered for HS256, which closes the key-confusion attack. The
 * types jose does not verify with (RSA-PSS, Ed448: `joseRefusal`) fit no algorithm.
 */
export function keyFits(key: VerificationKey, alg: string): boolean {
  if (key.alg !== undefined && key.alg !== alg) return false;
  const type = key.key.asymmetricKeyType;
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa';
  if (alg.startsWith('ES')) return type === 'ec' && key.key.asymmetricKeyDetails?.namedCurve === EC_CURVES[alg];
  if (alg === 'EdDSA') return type === 'ed25519';
  return false;
}

/** The key that carries the token's `kid` and fits `alg`. */
export function namedKey(keys: readonly VerificationKey[], alg: string, kid: string): VerificationKey | undefined {
  return keys.find((key) => key.kid === kid && keyFits(key, alg));
}

/** Every key among `keys` that fits `alg`, in their order: what a token without a kid is checked against. */
export function fittingKeys(keys: readonly VerificationKey[], alg: string): VerificationKey[] {
  return keys.filter((key) => keyFits(key, alg));
}

/** The first key without a kid that fits `alg`: what a token whose `kid` no key carries falls back to. */
export function unnamedKey(keys: readonly VerificationKey[], alg: string): VerificationKey | undefined {
  return keys.find((key) => key.kid === undefined && keyFits(key, alg));
}

/**
 * The signing keys of a JWKS document (RFC 7517) by the rule a key file's follow (`signingKeys`):
 * `refused` holds the keys left out that are no encryption key, with their kids and why.
 */
export function jwksKeys(document: unknown): { keys: VerificationKey[]; refused: RefusedKey[] } {
  const list = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) return { keys: [], refused: [] };
  const { keys, refused } = signingKeys(list as unknown[]);
  return { keys, refused: refused.map(({ kid, reason }) => ({ kid, reason })) };
}

/** A JWKS key left out that is no encryption key, and why (node:crypto cannot read it, or jose would not verify with it). */
export interface RefusedKey {
  readonly kid: string | undefined;
  readonly reason: string;
}

/**
 * The warning for a JWKS key left out, worded as a key file's (`skippedKeyWarning`): which document,
 * which key (its kid, or that it has none) and why it cannot verify tokens.
 */
export function refusedJwksKeyWarning(url: string, { kid, reason }: RefusedKey): string {
  return `JWKS ${url}: ${kid === undefined ? 'a key without a kid' : `the key ${JSON.stringify(kid)}`} is skipped, it cannot verify tokens: ${reason}`;
}

/** Whether `key` is among `keys` (the same public key, whatever its kid): a key in a key file and the JWKS both is tried once. */
export function isAmong(key: KeyObject, keys: readonly VerificationKey[]): boolean {
  return keys.some((entry) => entry.key.equals(key));
}
