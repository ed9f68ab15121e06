import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeTempDirSync } from '../../test/harness/temp-dirs.ts';
import { parseConfig } from './load.ts';
import { errorOf, expectRefused } from './config-testing.ts';
import { skippedKeyWarning } from './access-files.ts';

const HASH = `sha256:${'ab'.repeat(32)}`;
/** `htpasswd -nbB c secret`'s hash, and another in bcrypt's older `$2a$` spelling. */
const HTPASSWD_HASH = '$2y$05$ZdO6qGk0Y8Bq7bK3dJ0m6eq9cJ1yRr3o8C5yW1X0f2tQG3bV9Zb7K';
const BCRYPT_A_HASH = '$2a$04$ZdO6qGk0Y8Bq7bK3dJ0m6eq9cJ1yRr3o8C5yW1X0f2tQG3bV9Zb7K';

function refusal(text: string, path = '/etc/sb/gateway.yaml'): string {
  return errorOf(text, path).message;
}

describe('access-control configuration', () => {
  it('resolves consumers and hands each authentication kind the consumers it can match', () => {
    const config = parseConfig(
      'gateway.yaml',
      `consumers:
  a: { keys: ["${HASH.toUpperCase().replace('SHA256', 'sha256')}"], rateLimit: { average: 2 } }
  b: { jwt: [{ issuer: https://idp }] , labels: { plan: pro } }
  c: { passwords: ["${HTPASSWD_HASH}", "${BCRYPT_A_HASH}"] }
middlewares:
  keys: { keyAuth: { query: api_key } }
  basic: { basicAuth: { realm: ops } }
  ips: { ipAllowList: { sourceRange: [10.0.0.0/8] } }
forwarding: { trustedProxies: [loopback] }
`,
    );
    expect(config.consumers).toEqual([
      { name: 'a', keyHashes: ['ab'.repeat(32)], passwordHashes: [], jwt: [], labels: {}, rateLimit: { average: 2, periodMs: 1_000, burst: 2 } },
      { name: 'b', keyHashes: [], passwordHashes: [], jwt: [{ issuer: 'https://idp', subject: undefined }], labels: { plan: 'pro' }, rateLimit: undefined },
      // htpasswd's $2y$ is read as $2b$ (the same algorithm), the spelling the bcrypt binding checks.
      { name: 'c', keyHashes: [], passwordHashes: [`$2b$${HTPASSWD_HASH.slice(4)}`, BCRYPT_A_HASH], jwt: [], labels: {}, rateLimit: undefined },
    ]);
    expect(config.middlewares.get('keys')).toEqual({ kind: 'keyAuth', settings: { header: undefined, query: 'api_key', strip: true, consumers: [config.consumers[0]] } });
    expect(config.middlewares.get('basic')).toEqual({ kind: 'basicAuth', settings: { realm: 'ops', strip: true, consumers: [config.consumers[2]] } });
    expect(config.middlewares.get('ips')).toEqual({ kind: 'ipAllowList', settings: { sourceRange: ['10.0.0.0/8'], depth: 0, trustedProxies: ['loopback'] } });
  });

  it.each([
    ['a plain key instead of its hash', `consumers: { a: { keys: [my-secret-key] } }`, 'consumers.a.keys.0 (line 1): expected sha256:<64 hex digits>'],
    ['an MD5 htpasswd hash', `consumers: { a: { passwords: ["$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"] } }`, 'consumers.a.passwords.0 (line 1): expected a bcrypt hash ($2y$…'],
    ['a plain password', `consumers: { a: { passwords: [hunter2] } }`, 'MD5, SHA-1 and crypt hashes are refused'],
    ['a bcrypt cost of 3', `consumers: { a: { passwords: ["$2b$03$ZdO6qGk0Y8Bq7bK3dJ0m6eq9cJ1yRr3o8C5yW1X0f2tQG3bV9Zb7K"] } }`, 'consumers.a.passwords.0 (line 1): expected a bcrypt hash'],
    ['a realm with a quote', `middlewares: { b: { basicAuth: { realm: 'say "hi"' } } }`, 'middlewares.b.basicAuth.realm (line 1): must not hold `"` or `\\`'],
    ['alg none', `middlewares: { j: { jwtAuth: { algorithms: [none], secretFile: s } } }`, 'middlewares.j.jwtAuth.algorithms.0 (line 1): expected one of HS256'],
    ['no algorithms', `middlewares: { j: { jwtAuth: { secretFile: s } } }`, 'middlewares.j.jwtAuth.algorithms'],
    ['HS256 without a secret', `middlewares: { j: { jwtAuth: { algorithms: [HS256], publicKeyFiles: [k.pem] } } }`, 'middlewares.j.jwtAuth.secretFile (line 1): HS256 need a secretFile'],
    ['ES256 without keys', `middlewares: { j: { jwtAuth: { algorithms: [ES256], secretFile: s } } }`, 'ES256 need publicKeyFiles or jwks'],
    ['a JWKS URL that is not http(s)', `middlewares: { j: { jwtAuth: { algorithms: [ES256], jwks: { url: "file:///etc/keys" } } } }`, 'middlewares.j.jwtAuth.jwks.url (line 1): expected an http(s) URL'],
    ['a bad CIDR', `middlewares: { i: { ipDenyList: { sourceRange: [10.0.0.0/33] } } }`, 'middlewares.i.ipDenyList.sourceRange.0 (line 1)'],
    ['an unknown rate-limit key', `middlewares: { l: { rateLimit: { average: 1, key: tenant } } }`, 'expected client-ip, route, service, consumer, header:<name> or claim:<name>'],
  ])('refuses %s', (_name, text, message) => {
    expectRefused(text, message);
  });

  it('refuses missing, short and unusable key files with their paths, and reads good ones', () => {
    const dir = makeTempDirSync('sb-access-');
    writeFileSync(join(dir, 'short.secret'), 'too-short\n');
    writeFileSync(join(dir, 'garbage.pem'), 'hello');
    writeFileSync(join(dir, 'good.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }));
    writeFileSync(join(dir, 'good.secret'), `${'s'.repeat(40)}\n`);
    const file = join(dir, 'gateway.yaml');
    const message = refusal(`middlewares: { j: { jwtAuth: { algorithms: [HS256, ES256], secretFile: short.secret, publicKeyFiles: [garbage.pem, missing.pem] } } }`, file);
    expect(message).toContain(`middlewares.j.jwtAuth.secretFile (line 1): ${join(dir, 'short.secret')}: an HMAC secret needs at least 32 bytes (found 9)`);
    expect(message).toContain(`middlewares.j.jwtAuth.publicKeyFiles.0 (line 1): ${join(dir, 'garbage.pem')}: not a usable public key`);
    expect(message).toContain(`${join(dir, 'missing.pem')}: not a usable public key, certificate, JWK or JWKS (ENOENT)`);
    const config = parseConfig(file, `middlewares: { j: { jwtAuth: { algorithms: [HS256, ES256], secretFile: good.secret, publicKeyFiles: [good.pem] } } }`);
    const settings = config.middlewares.get('j');
    expect(settings?.kind === 'jwtAuth' && [settings.settings.keys?.secret?.length, settings.settings.keys?.publicKeys.length]).toEqual([40, 1]);
    // The material stays out of what /api/config shows.
    expect(JSON.stringify(settings)).not.toContain('ssss');
  });

  it('refuses a key file holding no key jose would verify with, naming the file, the key and why, and skips such a key beside a usable one', () => {
    const dir = makeTempDirSync('sb-access-');
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    const strong = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    writeFileSync(join(dir, 'weak.pem'), weak.export({ format: 'pem', type: 'spki' }));
    writeFileSync(join(dir, 'legacy.json'), JSON.stringify({ keys: [{ ...weak.export({ format: 'jwk' }), kid: 'legacy' }, { ...weak.export({ format: 'jwk' }) }] }));
    writeFileSync(join(dir, 'keys.json'), JSON.stringify({ keys: [{ ...strong.export({ format: 'jwk' }), kid: 'current' }, { ...weak.export({ format: 'jwk' }), kid: 'legacy' }, { ...weak.export({ format: 'jwk' }) }] }));
    writeFileSync(join(dir, 'ed448.pem'), generateKeyPairSync('ed448').publicKey.export({ format: 'pem', type: 'spki' }));
    const file = join(dir, 'gateway.yaml');
    const message = refusal(`middlewares: { j: { jwtAuth: { algorithms: [RS256, EdDSA], publicKeyFiles: [weak.pem, legacy.json, ed448.pem, keys.json] } } }`, file);
    expect(message).toContain(`middlewares.j.jwtAuth.publicKeyFiles.0 (line 1): ${join(dir, 'weak.pem')}: the key cannot verify tokens: an RSA key of 1024 bits (jose verifies with 2048 bits or more)`);
    expect(message).toContain(`middlewares.j.jwtAuth.publicKeyFiles.1 (line 1): ${join(dir, 'legacy.json')}: the key "legacy" cannot verify tokens: an RSA key of 1024 bits`);
    expect(message).toContain(`middlewares.j.jwtAuth.publicKeyFiles.1 (line 1): ${join(dir, 'legacy.json')}: key 2 cannot verify tokens: an RSA key of 1024 bits`);
    expect(message).toContain(`middlewares.j.jwtAuth.publicKeyFiles.2 (line 1): ${join(dir, 'ed448.pem')}: the key cannot verify tokens: an Ed448 key (jose verifies EdDSA with Ed25519 keys only)`);
    expect(message).not.toContain('keys.json');
    // A JWKS file that holds a usable key loads it and skips the others, as the same document from a JWKS URL does.
    const settings = parseConfig(file, `middlewares: { j: { jwtAuth: { algorithms: [RS256], publicKeyFiles: [keys.json] } } }`).middlewares.get('j');
    const keys = settings?.kind === 'jwtAuth' ? settings.settings.keys : undefined;
    expect(keys?.publicKeys.map(({ kid, key }) => [kid, key.asymmetricKeyDetails?.modulusLength])).toEqual([['current', 2048]]);
    expect(keys?.skippedKeys).toEqual([
      { file: join(dir, 'keys.json'), key: 'the key "legacy"', reason: 'an RSA key of 1024 bits (jose verifies with 2048 bits or more)' },
      { file: join(dir, 'keys.json'), key: 'key 3', reason: 'an RSA key of 1024 bits (jose verifies with 2048 bits or more)' },
    ]);
    // The warning names the file, the key (its kid, or its place in the file) and why, as the refusal above does.
    expect(keys?.skippedKeys.map(skippedKeyWarning)).toEqual([
      `${join(dir, 'keys.json')}: the key "legacy" is skipped, it cannot verify tokens: an RSA key of 1024 bits (jose verifies with 2048 bits or more); the file's other keys are used`,
      `${join(dir, 'keys.json')}: key 3 is skipped, it cannot verify tokens: an RSA key of 1024 bits (jose verifies with 2048 bits or more); the file's other keys are used`,
    ]);
  });
});
