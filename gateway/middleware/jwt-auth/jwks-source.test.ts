import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { JwksSource } from './jwks-source.ts';

/** A new P-256 JWK under `kid`; a kid that starts with `weak` gets an RSA key of 1024 bits, which jose does not verify with. */
const jwkOf = (kid: string) => {
  const { publicKey } = kid.startsWith('weak') ? generateKeyPairSync('rsa', { modulusLength: 1024 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig' };
};

/** A scripted JWKS endpoint: each call answers the next step (a key list, or an error). */
function scripted(steps: (string[] | Error)[]) {
  const calls: number[] = [];
  const keys = new Map<string, object>();
  const fetch = (async () => {
    calls.push(calls.length);
    const step = steps[Math.min(calls.length - 1, steps.length - 1)]!;
    if (step instanceof Error) throw step;
    return new Response(JSON.stringify({ keys: step.map((kid) => keys.get(kid) ?? keys.set(kid, jwkOf(kid)).get(kid)) }), { status: 200 });
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

const settings = { url: 'http://idp.test/jwks', refreshMs: 60_000, cooldownMs: 10_000, timeoutMs: 1_000 };
const kids = (keys: readonly { kid: string | undefined }[]) => keys.map((key) => key.kid);

describe('JwksSource', () => {
  it('keeps the last good keys when a refresh fails or the document holds no key', async () => {
    let now = 0;
    const errors: string[] = [];
    const endpoint = scripted([['k1'], new Error('connect ECONNREFUSED'), []]);
    const source = new JwksSource(settings, { fetch: endpoint.fetch, now: () => now, onError: (error) => errors.push(error.message) });
    expect(kids(await source.current())).toEqual(['k1']);
    now = 20_000;
    expect(kids(await source.refreshIfCooledDown())).toEqual(['k1']);
    now = 40_000;
    expect(kids(await source.refreshIfCooledDown())).toEqual(['k1']);
    expect(errors).toEqual(['connect ECONNREFUSED', 'JWKS http://idp.test/jwks holds no usable signing key']);
  });

  it('fetches on an unknown kid no more than once per cooldown, and refreshes in the background once the keys are old', async () => {
    let now = 0;
    const endpoint = scripted([['k1'], ['k1', 'k2'], ['k2', 'k3']]);
    const source = new JwksSource(settings, { fetch: endpoint.fetch, now: () => now });
    await source.current();
    now = 5_000;
    expect(kids(await source.refreshIfCooledDown())).toEqual(['k1']);
    expect(endpoint.calls.length).toBe(1);
    now = 10_000;
    expect(kids(await source.refreshIfCooledDown())).toEqual(['k1', 'k2']);
    now = 69_999;
    await source.current();
    expect(endpoint.calls.length).toBe(2);
    now = 70_000;
    // Due: this request still gets the current keys; the next sees the refreshed ones.
    expect(kids(await source.current())).toEqual(['k1', 'k2']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(kids(await source.current())).toEqual(['k2', 'k3']);
  });

  it('leaves out the keys jose would not verify with, and tells about them once for as long as the document holds them', async () => {
    let now = 0;
    const told: (string | undefined)[][] = [];
    const endpoint = scripted([['weak-1', 'k1'], ['weak-1', 'k1'], ['weak-1', 'weak-2', 'k1'], ['k1'], ['weak-1', 'k1']]);
    const source = new JwksSource(settings, { fetch: endpoint.fetch, now: () => now, onRefusedKeys: (refused) => told.push(kids(refused)) });
    const fetched = [kids(await source.current())];
    for (let step = 1; step < 5; step += 1) {
      now += settings.cooldownMs;
      fetched.push(kids(await source.refreshIfCooledDown()));
    }
    expect(fetched).toEqual([['k1'], ['k1'], ['k1'], ['k1'], ['k1']]);
    expect(told).toEqual([['weak-1'], ['weak-1', 'weak-2'], ['weak-1']]);
  });
});
