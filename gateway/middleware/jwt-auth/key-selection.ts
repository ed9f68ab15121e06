import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { VerificationKey } from '../../config/access-files.ts';

/** The curve node:crypto names for each ES algorithm (RFC 7518 §3.4). */
const EC_CURVES: Readonly<Record<string, string>> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/**
 * Whether `key` may verify a token signed with `alg`. The key's own type decides, never the
 * token: an RSA public key is never offered for HS256, which closes the key-confusion attack.
 */
export function keyFits(key: VerificationKey, alg: string): boolean {
  if (key.alg !== undefined && key.alg !== alg) return false;
  const type = key.key.asymmetricKeyType;
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg.startsWith('ES')) return type === 'ec' && key.key.asymmetricKeyDetails?.namedCurve === EC_CURVES[alg];
  if (alg === 'EdDSA') return type === 'ed25519' || type === 'ed448';
  return false;
}

/** The key for a token header among `keys`: the one with its `kid` when it names one (or else a key without a kid), else the first that fits `alg`. */
export function pickKey(keys: readonly VerificationKey[], alg: string, kid: string | undefined): VerificationKey | undefined {
  return namedKey(keys, alg, kid) ?? (kid === undefined ? undefined : unnamedKey(keys, alg));
}

/** The key with the token's `kid` that fits `alg`; for a token without a kid, the first key that fits. */
export function namedKey(keys: readonly VerificationKey[], alg: string, kid: string | undefined): VerificationKey | undefined {
  return keys.find((key) => (kid === undefined || key.kid === kid) && keyFits(key, alg));
}

/** Every key among `keys` that fits `alg`, in their order: what a token without a kid is checked against. */
export function fittingKeys(keys: readonly VerificationKey[], alg: string): VerificationKey[] {
  return keys.filter((key) => keyFits(key, alg));
}

/** The first key without a kid that fits `alg`: what a token whose `kid` no key carries falls back to. */
export function unnamedKey(keys: readonly VerificationKey[], alg: string): VerificationKey | undefined {
  return keys.find((key) => key.kid === undefined && keyFits(key, alg));
}

/** The signing keys of a JWKS document (RFC 7517); keys for encryption or that node:crypto cannot read are skipped. */
export function jwksKeys(document: unknown): VerificationKey[] {
  const list = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) return [];
  const keys: VerificationKey[] = [];
  for (const jwk of list as (JsonWebKey & { use?: string; kid?: unknown; alg?: unknown })[]) {
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    try {
      keys.push({ key: createPublicKey({ key: jwk, format: 'jwk' }), kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, alg: typeof jwk.alg === 'string' ? jwk.alg : undefined });
    } catch {
      // An unusable key (a symmetric "oct" key, an unknown curve) is not a reason to drop its siblings.
    }
  }
  return keys;
}
