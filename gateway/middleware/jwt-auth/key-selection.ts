import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { joseRefusal, type VerificationKey } from '../../config/access-files.ts';

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

/** A JWKS key that node:crypto reads but jose would not verify with, and why. */
export interface RefusedKey {
  readonly kid: string | undefined;
  readonly reason: string;
}

/**
 * The signing keys of a JWKS document (RFC 7517); keys for encryption or that node:crypto cannot
 * read are skipped, and so are the `refused` ones, which jose would not verify with (`joseRefusal`).
 */
export function jwksKeys(document: unknown): { keys: VerificationKey[]; refused: RefusedKey[] } {
  const keys: VerificationKey[] = [];
  const refused: RefusedKey[] = [];
  const list = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) return { keys, refused };
  for (const jwk of list as (JsonWebKey & { use?: string; kid?: unknown; alg?: unknown })[]) {
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    let key;
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      // An unusable key (a symmetric "oct" key, an unknown curve) is not a reason to drop its siblings.
      continue;
    }
    const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
    const reason = joseRefusal(key);
    if (reason === undefined) keys.push({ key, kid, alg: typeof jwk.alg === 'string' ? jwk.alg : undefined });
    else refused.push({ kid, reason });
  }
  return { keys, refused };
}
