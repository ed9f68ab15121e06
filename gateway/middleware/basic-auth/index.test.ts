import { compare, hashSync } from 'bcrypt';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/harness/wait.ts';
import type { BasicAuthSettings, ConsumerConfig } from '../../config/types.ts';
import { accessDeniedTotal } from '../consumers/index.ts';
import { echoed, serveMiddleware, type MiddlewareServer } from '../middleware-testing.ts';
import { basicAuth, boundedCompare, BUSY, readCredentials, type BoundedCompare } from './index.ts';

// Cost 4, the lowest bcrypt allows: the tests check the logic, not the cost.
const ops: ConsumerConfig = { name: 'ops', keyHashes: [], passwordHashes: [hashSync('old-pass', 4), hashSync('pässwörd:with colon', 4)], jwt: [], labels: {}, rateLimit: undefined };
const settings = (strip = true): BasicAuthSettings => ({ realm: 'ops area', strip, consumers: [ops] });
const basic = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;
const denials = async (reason: string) => (await accessDeniedTotal.get()).values.find((value) => value.labels.reason === reason)?.value ?? 0;

describe('basicAuth', () => {
  let server: MiddlewareServer;
  afterEach(() => server.close());

  it('passes a consumer with any of its passwords (UTF-8, a colon in the password), names it upstream and strips the header', async () => {
    server = await serveMiddleware([basicAuth(settings())]);
    for (const credentials of ['ops:old-pass', 'ops:pässwörd:with colon']) {
      const response = await server.send('/x', { headers: { authorization: basic(credentials), 'x-consumer': 'admin' } });
      expect([response.status, echoed(response).headers['x-consumer'], echoed(response).headers.authorization]).toEqual([200, 'ops', undefined]);
    }
    const lowerScheme = await server.send('/x', { headers: { authorization: `basic ${Buffer.from('ops:old-pass').toString('base64')}` } });
    expect(lowerScheme.status).toBe(200);
  });

  it('with strip: false, sends the Authorization header on', async () => {
    server = await serveMiddleware([basicAuth(settings(false))]);
    const response = await server.send('/x', { headers: { authorization: basic('ops:old-pass') } });
    expect([response.status, echoed(response).headers.authorization]).toEqual([200, basic('ops:old-pass')]);
  });

  it.each([
    ['no credentials', undefined, 'missing-credentials'],
    ['a bearer token', 'Bearer abc', 'missing-credentials'],
    ['a wrong password', basic('ops:wrong'), 'invalid-credentials'],
    ['an unknown user with a right password', basic('root:old-pass'), 'invalid-credentials'],
    ['the password of another case of the name', basic('OPS:old-pass'), 'invalid-credentials'],
    ['no colon', basic('ops'), 'invalid-credentials'],
    ['an empty user name', basic(':old-pass'), 'invalid-credentials'],
    ['not base64', 'Basic !!!!', 'invalid-credentials'],
  ])('refuses %s with 401, a Basic challenge and a count', async (_name, authorization, reason) => {
    server = await serveMiddleware([basicAuth(settings())]);
    const before = await denials(reason);
    const response = await server.send('/x', { headers: authorization === undefined ? {} : { authorization } });
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Basic realm="ops area", charset="UTF-8"');
    expect(JSON.parse(response.body.toString())).toMatchObject({ error: reason, status: 401 });
    expect(response.body.toString()).not.toContain('old-pass');
    expect(await denials(reason)).toBe(before + 1);
  });

  it('remembers a verified value, not a refused one', async () => {
    const consumer = { ...ops, passwordHashes: [hashSync('pass', 4)] };
    const middleware = basicAuth({ realm: 'r', strip: true, consumers: [consumer] });
    server = await serveMiddleware([middleware]);
    expect((await server.send('/x', { headers: { authorization: basic('ops:pass') } })).status).toBe(200);
    // The hash no longer matches anything, yet the verified value is served from the cache.
    consumer.passwordHashes.splice(0, 1, hashSync('other', 4));
    expect((await server.send('/x', { headers: { authorization: basic('ops:pass') } })).status).toBe(200);
    expect((await server.send('/x', { headers: { authorization: basic('ops:other') } })).status).toBe(200);
    expect((await server.send('/x', { headers: { authorization: basic('ops:wrong') } })).status).toBe(401);
  });

  it("checks a name no consumer has against a hash of the consumers' own cost, so it takes as long as a wrong password", async () => {
    // htpasswd -B writes cost 5 unless told -C: a fixed cost-10 stand-in made an unknown name 30 times slower.
    const htpasswd = { ...ops, passwordHashes: [hashSync('pass', 5)] };
    const checked: string[] = [];
    const check: BoundedCompare = async (password, hash) => {
      checked.push(hash);
      return compare(password, hash);
    };
    server = await serveMiddleware([basicAuth({ realm: 'r', strip: true, consumers: [htpasswd, { ...ops, name: 'cheap', passwordHashes: [hashSync('x', 4)] }] }, check)]);
    for (const credentials of ['ops:wrong', 'nobody:wrong', 'nobody:pass']) expect((await server.send('/x', { headers: { authorization: basic(credentials) } })).status).toBe(401);
    expect(checked.map((hash) => hash.slice(0, 7))).toEqual(['$2b$05$', '$2b$05$', '$2b$05$']);
  });
});

describe('readCredentials', () => {
  it.each([
    [undefined, undefined],
    [['Basic b3BzOng='], undefined],
    ['Digest x', undefined],
    ['Basic', undefined],
    ['Basic b3BzOng=', { user: 'ops', password: 'x' }],
    ['BASIC   b3BzOg==', { user: 'ops', password: '' }],
    [`Basic ${Buffer.from([0x6f, 0x3a, 0xff]).toString('base64')}`, 'malformed'],
    [`Basic ${Buffer.from('o\n:x').toString('base64')}`, 'malformed'],
    ['Basic b3Bz Ong=', 'malformed'],
  ])('reads %j as %j', (value, expected) => {
    expect(readCredentials(value as string | string[] | undefined)).toEqual(expected);
  });
});

describe('boundedCompare', () => {
  it('runs at most maxChecks at once, queues maxWaiting more in order, and answers BUSY past that at once', async () => {
    const started: string[] = [];
    const finish = new Map<string, (ok: boolean) => void>();
    const check = boundedCompare((password) => new Promise<boolean>((resolve) => {
      started.push(password);
      finish.set(password, resolve);
    }), 2, 2);
    const outcomes = ['a', 'b', 'c', 'd', 'e'].map((password) => check(password, 'hash'));
    expect(await outcomes[4]).toBe(BUSY);
    expect(started).toEqual(['a', 'b']);
    finish.get('a')!(true);
    expect(await outcomes[0]).toBe(true);
    await waitFor(() => started.length === 3);
    expect(started).toEqual(['a', 'b', 'c']);
    for (const password of ['b', 'c']) finish.get(password)!(false);
    await waitFor(() => started.length === 4);
    finish.get('d')!(true);
    expect(await Promise.all(outcomes.slice(1, 4))).toEqual([false, false, true]);
    // Every slot is free again: two run at once.
    void check('f', 'hash');
    void check('g', 'hash');
    await waitFor(() => started.length === 6);
  });

  it('takes a waiter whose client left out of the line at once: no check, its place and the slot for the next', async () => {
    const started: string[] = [];
    const finish = new Map<string, (ok: boolean) => void>();
    const check = boundedCompare((password) => new Promise<boolean>((resolve) => {
      started.push(password);
      finish.set(password, resolve);
    }), 1, 1);
    const left = new AbortController();
    const running = check('a', 'hash');
    const gone = check('b', 'hash', left.signal);
    left.abort();
    // Its answer comes before the slot frees, and its place in line is free again at once.
    expect(await gone).toBe(BUSY);
    const next = check('c', 'hash');
    expect(await check('d', 'hash')).toBe(BUSY);
    finish.get('a')!(false);
    await waitFor(() => started.length === 2);
    expect(started).toEqual(['a', 'c']);
    finish.get('c')!(true);
    expect([await running, await next]).toEqual([false, true]);
    // A client gone before it asks gets no check and no place.
    const before = new AbortController();
    before.abort();
    expect(await check('e', 'hash', before.signal)).toBe(BUSY);
    void check('f', 'hash');
    await waitFor(() => started.length === 3);
    expect(started).toEqual(['a', 'c', 'f']);
  });
});
