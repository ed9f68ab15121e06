import { createHash, createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { GatewayConfig, MiddlewareConfig } from './types.ts';

/** One verification key: a public key with the `kid` and `alg` its JWK named, if any. */
export interface VerificationKey {
  readonly key: KeyObject;
  readonly kid: string | undefined;
  readonly alg: string | undefined;
}

/**
 * The key material of a `jwtAuth` as read at configuration load. The secret and keys are private
 * fields, so `/api/config` and the reload fingerprint see only the paths and a digest.
 */
export class KeyMaterial {
  readonly #secret: Uint8Array | undefined;
  readonly #publicKeys: readonly VerificationKey[];
  readonly #skippedKeys: readonly SkippedKey[];
  /** SHA-256 over every file read: changed contents under the same paths are changed settings. */
  readonly sha256: string;

  constructor(secret: Uint8Array | undefined, publicKeys: readonly VerificationKey[], digest: string, skippedKeys: readonly SkippedKey[] = []) {
    this.#secret = secret;
    this.#publicKeys = publicKeys;
    this.#skippedKeys = skippedKeys;
    this.sha256 = digest;
  }

  /** The HMAC secret (HS256/384/512), if a `secretFile` was given. */
  get secret(): Uint8Array | undefined {
    return this.#secret;
  }

  /** Public keys from `publicKeyFiles`, in file order; without the skipped ones. */
  get publicKeys(): readonly VerificationKey[] {
    return this.#publicKeys;
  }

  /** The keys of `publicKeyFiles` jose does not verify with, left out beside usable keys of the same file. */
  get skippedKeys(): readonly SkippedKey[] {
    return this.#skippedKeys;
  }
}

/** A key file's key that jose does not verify with (`joseRefusal`), skipped because its file holds usable ones too. */
export interface SkippedKey {
  readonly file: string;
  /** Its `kid`, or its place in the file. */
  readonly key: string;
  readonly reason: string;
}

/**
 * The warning for a skipped key, read by whoever wrote the key file: which file, which key (its kid,
 * or its place in the file) and why it cannot verify, worded as the refusal of a file of no other key.
 */
export function skippedKeyWarning({ file, key, reason }: SkippedKey): string {
  return `${file}: ${key} is skipped, it cannot verify tokens: ${reason}; the file's other keys are used`;
}

/** A problem with one key file, at the key path that names it. */
export interface AccessFileIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/**
 * Reads the `secretFile` and `publicKeyFiles` of every `jwtAuth` middleware (relative paths from
 * the configuration file's folder) and parses them with node:crypto, so that a bad file refuses the
 * configuration with its path and the reason instead of failing requests later.
 */
export function readAccessFiles(config: GatewayConfig, configPath: string): { config: GatewayConfig; issues: AccessFileIssue[] } {
  const base = dirname(configPath);
  const issues: AccessFileIssue[] = [];
  const middlewares = new Map<string, MiddlewareConfig>();
  for (const [name, definition] of config.middlewares) {
    if (definition.kind !== 'jwtAuth') {
      middlewares.set(name, definition);
      continue;
    }
    const at = ['middlewares', name, 'jwtAuth'];
    const digest = createHash('sha256');
    let secret: Uint8Array | undefined;
    const { secretFile, publicKeyFiles } = definition.settings;
    if (secretFile !== undefined) {
      const absolute = resolve(base, secretFile);
      try {
        // A trailing newline is an editor's, not the secret's.
        secret = new Uint8Array(Buffer.from(readFileSync(absolute, 'utf8').replace(/\r?\n$/, ''), 'utf8'));
        if (secret.length < 32) issues.push({ path: [...at, 'secretFile'], message: `${absolute}: an HMAC secret needs at least 32 bytes (found ${secret.length})` });
        digest.update(secret);
      } catch (error) {
        issues.push({ path: [...at, 'secretFile'], message: `cannot read ${absolute} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` });
      }
    }
    const publicKeys: VerificationKey[] = [];
    const skippedKeys: SkippedKey[] = [];
    publicKeyFiles.forEach((file, index) => {
      const absolute = resolve(base, file);
      try {
        const text = readFileSync(absolute, 'utf8');
        digest.update(text);
        const { keys, refused } = parseKeyFile(text);
        publicKeys.push(...keys);
        // Beside a usable key, such a key is skipped (a JWKS saved from a provider may hold a legacy one); a file of nothing else is a mistake.
        if (keys.length > 0) skippedKeys.push(...refused.map(({ label, reason }) => ({ file: absolute, key: label, reason })));
        else if (refused.length === 0) issues.push({ path: [...at, 'publicKeyFiles', index], message: `${absolute}: holds no signing key (only keys whose "use" is not "sig")` });
        else for (const { label, reason } of refused) issues.push({ path: [...at, 'publicKeyFiles', index], message: `${absolute}: ${label} cannot verify tokens: ${reason}` });
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        issues.push({ path: [...at, 'publicKeyFiles', index], message: `${absolute}: not a usable public key, certificate, JWK or JWKS (${reason})` });
      }
    });
    const keys = new KeyMaterial(secret, publicKeys, digest.digest('hex'), skippedKeys);
    middlewares.set(name, { kind: 'jwtAuth', settings: { ...definition.settings, keys } });
  }
  return { config: { ...config, middlewares }, issues };
}

/** The fewest bits jose verifies with in an RSA key (RFC 7518 §3.3 asks for 2048 or more). */
const MIN_RSA_BITS = 2_048;

/**
 * Why jose refuses to verify with `key` whatever the algorithm, or undefined when it does not. jose
 * says so only when a token comes (an error other than a bad signature: a TypeError, or on Node 20
 * and 24 a different error or DOMException for RSA-PSS and Ed448), which ended the search of a token
 * without a kid through the keys as `invalid-token`; so such a key is told apart when read and
 * skipped, in a key file beside usable keys and in the JWKS; a key file of no other key is refused.
 */
export function joseRefusal(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (type === 'rsa' && bits !== undefined && bits < MIN_RSA_BITS) return `an RSA key of ${bits} bits (jose verifies with ${MIN_RSA_BITS} bits or more)`;
  if (type === 'rsa-pss') return 'an RSA-PSS key (id-RSASSA-PSS), which jose does not take; as a JWK with "kty": "RSA" it verifies PS256/384/512 too';
  if (type === 'ed448') return 'an Ed448 key (jose verifies EdDSA with Ed25519 keys only)';
  return undefined;
}

/** A key of a key file or a JWKS that cannot verify tokens, and why (`signingKeys`). */
export interface RefusedKey {
  readonly kid: string | undefined;
  /** Its kid, or its place in its document, for messages: `the key "a"`, `key 2`, `the key`. */
  readonly label: string;
  readonly reason: string;
}

/**
 * The one rule for which keys of a key file or a JWKS verify tokens: signing keys (no `use`, or
 * `"sig"`; encryption keys are left out without a word, as a provider's JWKS may publish them)
 * that node:crypto reads and jose verifies with (`joseRefusal`); the others are `refused`, with why.
 */
export function signingKeys(jwks: readonly unknown[]): { keys: VerificationKey[]; refused: RefusedKey[] } {
  const keys: VerificationKey[] = [];
  const refused: RefusedKey[] = [];
  jwks.forEach((entry, index) => {
    const jwk = (entry ?? {}) as JsonWebKey & { use?: unknown; kid?: unknown; alg?: unknown };
    if (jwk.use !== undefined && jwk.use !== 'sig') return;
    const kid = stringOr(jwk.kid);
    const label = kid !== undefined ? `the key "${kid}"` : jwks.length > 1 ? `key ${index + 1}` : 'the key';
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch (error) {
      // An unreadable key (a symmetric "oct" key, an unknown curve) is not a reason to drop its siblings.
      return void refused.push({ kid, label, reason: `not a public key node:crypto reads (${(error as Error).message})` });
    }
    const reason = joseRefusal(key);
    if (reason === undefined) keys.push({ key, kid, alg: stringOr(jwk.alg) });
    else refused.push({ kid, label, reason });
  });
  return { keys, refused };
}

/**
 * The public keys of a PEM file (public key, certificate, or a private key's public half) or a JWK /
 * JWKS JSON file, by the rule a JWKS URL's keys follow (`signingKeys`); throws when the file is neither.
 */
export function parseKeyFile(text: string): { keys: VerificationKey[]; refused: RefusedKey[] } {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const json = JSON.parse(trimmed) as { keys?: unknown };
    const jwks = Array.isArray(json.keys) ? (json.keys as unknown[]) : [json];
    if (jwks.length === 0) throw new Error('the JWKS holds no keys');
    return signingKeys(jwks);
  }
  let key: KeyObject;
  if (trimmed.includes('-----BEGIN CERTIFICATE-----')) key = new X509Certificate(trimmed).publicKey;
  else if (!trimmed.includes('-----BEGIN ')) throw new Error('no "-----BEGIN" line and not JSON');
  else key = createPublicKey(trimmed);
  const reason = joseRefusal(key);
  return reason === undefined ? { keys: [{ key, kid: undefined, alg: undefined }], refused: [] } : { keys: [], refused: [{ kid: undefined, label: 'the key', reason }] };
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
