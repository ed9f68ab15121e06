import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { StoreLocation } from '../config-store/store-layout.ts';
import { StoreForbiddenError, type StoreWriter } from '../config-store/store-writer.ts';
import { REDACTED } from '../config/redaction.ts';
import { StoreApi, storePlaceOf } from './store-api.ts';

describe('storePlaceOf', () => {
  it.each([
    ['/api/store', { kind: 'store' }],
    ['/api/routes/x', { kind: 'routes', name: 'x' }],
    ['/api/services/user%2Dapi', { kind: 'services', name: 'user-api' }],
    ['/api/middlewares/limit', { kind: 'middlewares', name: 'limit' }],
    ['/api/consumers/alice', { kind: 'consumers', name: 'alice' }],
    ['/api/routes', undefined],
    ['/api/peers/gw-1', undefined],
    ['/api/routes/a/b', undefined],
    ['/api/stats/services/user', undefined],
    ['/api/routes/a%2Fb', undefined],
    ['/api/services/..', undefined],
    ['/api/services/%2E%2E', undefined],
    ['/api/routes/.', undefined],
    ['/api/routes/%E0%A4%A', undefined],
    ['/api/routes/bad%20name', { kind: 'routes', name: 'bad name' }],
  ])('reads %s as %j', (path, place) => {
    expect(storePlaceOf(path)).toEqual(place);
  });
});

describe('StoreApi', () => {
  const writer = {
    get: async (kind: string, name: string) => (kind === 'routes' && name === 'x' ? { revision: '7', value: { name: 'x', service: 'a' } } : undefined),
    list: async () => ({ revision: '7', objects: [], unreadable: [] }),
  };
  const api = new StoreApi({ token: undefined, location: () => ({ url: 'etcd://127.0.0.1:2379/switchboard' }) as StoreLocation, record: () => undefined, openWriter: async () => writer as unknown as StoreWriter });
  const request = (method: string, url: string) => ({ method, url, headers: {} }) as IncomingMessage;

  it('answers HEAD as GET (the admin server leaves the body out) and lists HEAD among the allowed methods', async () => {
    expect(await api.answer(request('HEAD', '/api/routes/x'), { kind: 'routes', name: 'x' })).toMatchObject({ status: 200, headers: { etag: '"7"' } });
    expect(await api.answer(request('HEAD', '/api/store'), { kind: 'store' })).toMatchObject({ status: 200 });
    expect(await api.answer(request('POST', '/api/routes/x'), { kind: 'routes', name: 'x' })).toMatchObject({ status: 405, headers: { allow: 'GET, HEAD, PUT, DELETE' } });
    expect(await api.answer(request('DELETE', '/api/store'), { kind: 'store' })).toMatchObject({ status: 405, headers: { allow: 'GET, HEAD, PUT' } });
    // PUT judges many objects together (?dryRun=true): a write, which needs the token.
    expect(await api.answer(request('PUT', '/api/store?dryRun=true'), { kind: 'store' })).toMatchObject({ status: 403, body: { code: 'SB_ADMIN_WRITE_NEEDS_TOKEN' } });
  });

  it('answers a store that refuses the gateway\'s user 403 store-forbidden with the writer\'s message, not 503', async () => {
    const refusing = { get: async () => undefined, put: async () => Promise.reject(new StoreForbiddenError('zk://zk:2181/sb', '/sb/routes', 'put /sb/routes/x: no right')) };
    const refusingApi = new StoreApi({ token: 't', location: () => ({ url: 'zk://zk:2181/sb' }) as StoreLocation, record: () => undefined, openWriter: async () => refusing as unknown as StoreWriter });
    const body = Object.assign(Readable.from([Buffer.from(JSON.stringify({ path: '/x', service: 'a' }))]), { method: 'PUT', url: '/api/routes/x', headers: {}, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;
    expect(await refusingApi.answer(body, { kind: 'routes', name: 'x' })).toEqual({
      status: 403,
      body: { error: 'store-forbidden', code: 'SB_CONFIG_STORE_FORBIDDEN', status: 403, message: 'config store zk://zk:2181/sb: put /sb/routes/x: no right' },
    });
  });

  describe('with secrets in the store', () => {
    const route = { name: 'x', path: '/x', service: 'a', headers: { 'x-api-key': 'route-secret-1' }, requestHeaders: { set: { authorization: 'Bearer route-secret-2' } } };
    const consumer = { keys: [`sha256:${'ab'.repeat(32)}`] };
    const objects = { 'routes/x': route, 'consumers/alice': consumer, 'middlewares/sso': { forwardAuth: { address: 'http://gw:mw-secret-3@auth:4181/check' } } } as Record<string, unknown>;
    const puts: unknown[] = [];
    const secretWriter = {
      get: async (kind: string, name: string) => (objects[`${kind}/${name}`] ? { revision: '7', value: objects[`${kind}/${name}`] } : undefined),
      list: async () => ({ revision: '7', objects: Object.entries(objects).map(([key, value]) => ({ kind: key.split('/')[0], name: key.split('/')[1], revision: '7', value })), unreadable: [] }),
      put: async (_kind: string, _name: string, value: unknown) => {
        puts.push(value);
        return { revision: '8', created: false };
      },
    };
    const secretApi = new StoreApi({ token: 't', location: () => ({ url: 'etcd://127.0.0.1:2379/switchboard' }) as StoreLocation, record: () => undefined, openWriter: async () => secretWriter as unknown as StoreWriter });
    const put = (url: string, body: unknown) => Object.assign(Readable.from([Buffer.from(JSON.stringify(body))]), { method: 'PUT', url, headers: {}, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;

    it('answers a read of one object, of the whole store and a write with every secret redacted', async () => {
      const answers = [
        await secretApi.answer(request('GET', '/api/routes/x'), { kind: 'routes', name: 'x' }),
        await secretApi.answer(request('GET', '/api/consumers/alice'), { kind: 'consumers', name: 'alice' }),
        await secretApi.answer(request('GET', '/api/middlewares/sso'), { kind: 'middlewares', name: 'sso' }),
        await secretApi.answer(request('GET', '/api/store'), { kind: 'store' }),
        await secretApi.answer(put('/api/routes/x', route), { kind: 'routes', name: 'x' }),
      ];
      expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
      expect(JSON.stringify(answers)).not.toMatch(/secret-\d|abab/);
      expect(answers[0]!.body).toMatchObject({ value: { headers: { 'x-api-key': REDACTED }, requestHeaders: { set: { authorization: REDACTED } } } });
      expect(answers[1]!.body).toMatchObject({ value: { keys: [REDACTED] } });
      expect(puts).toEqual([route]);
    });

    it('refuses a YAML body that does not parse with a one-line reason ending with the place', async () => {
      const body = Object.assign(Readable.from([Buffer.from('name: x\npath: [/x\n')]), { method: 'PUT', url: '/api/routes/x', headers: { 'content-type': 'application/yaml' }, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;
      const answer = await secretApi.answer(body, { kind: 'routes', name: 'x' });
      expect(answer).toMatchObject({ status: 400, body: { code: 'SB_ADMIN_BODY' } });
      expect((answer.body as { message: string }).message).toMatch(/^the body is not YAML: .+ at line \d+, column \d+$/);
    });

    it('refuses a write that sends a read-back redacted secret, naming where, and writes nothing', async () => {
      puts.length = 0;
      const read = (await secretApi.answer(request('GET', '/api/routes/x'), { kind: 'routes', name: 'x' })).body as { value: unknown };
      const answer = await secretApi.answer(put('/api/routes/x', { ...(read.value as object), path: '/y' }), { kind: 'routes', name: 'x' });
      expect(answer).toMatchObject({ status: 400, body: { code: 'SB_ADMIN_REDACTED_VALUE', issues: [{ path: 'routes[x].headers.x-api-key' }, { path: 'routes[x].requestHeaders.set.authorization' }] } });
      const keys = await secretApi.answer(put('/api/consumers/alice', { keys: [REDACTED] }), { kind: 'consumers', name: 'alice' });
      expect(keys).toMatchObject({ status: 400, body: { issues: [{ path: 'consumers.alice.keys[0]' }] } });
      expect(puts).toEqual([]);
    });
  });

  it('judges no warnings for a write or a deletion asked with ?warnings=false, each judgement being a merge of the whole store, and refuses another value of it', async () => {
    let judgements = 0;
    const store = {
      get: async () => ({ revision: '7', value: { name: 'x', path: '/x', service: 'a' } }),
      put: async () => ({ revision: '8', created: false }),
      delete: async () => undefined,
    };
    const counting = new StoreApi({
      token: 't',
      location: () => ({ url: 'etcd://127.0.0.1:2379/switchboard' }) as StoreLocation,
      record: () => undefined,
      openWriter: async () => store as unknown as StoreWriter,
      composed: () => {
        judgements += 1;
        return undefined;
      },
    });
    const call = (method: string, url: string) => Object.assign(Readable.from(method === 'PUT' ? [Buffer.from(JSON.stringify({ path: '/x', service: 'a' }))] : []), { method, url, headers: {}, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;
    const quiet = [await counting.answer(call('PUT', '/api/routes/x?warnings=false'), { kind: 'routes', name: 'x' }), await counting.answer(call('DELETE', '/api/routes/x?warnings=false'), { kind: 'routes', name: 'x' })];
    expect(quiet.map((answer) => answer.status)).toEqual([200, 200]);
    expect(quiet.map((answer) => 'warnings' in (answer.body as object))).toEqual([false, false]);
    expect(judgements).toBe(0);
    const told = [await counting.answer(call('PUT', '/api/routes/x?warnings=true'), { kind: 'routes', name: 'x' }), await counting.answer(call('DELETE', '/api/routes/x'), { kind: 'routes', name: 'x' })];
    expect(told.map((answer) => (answer.body as { warnings?: unknown }).warnings)).toEqual([[], []]);
    expect(judgements).toBe(2);
    // Misspelt, it would be ignored: refused, as a misspelt dry run is, before anything is written.
    expect(await counting.answer(call('PUT', '/api/routes/x?warnings=no'), { kind: 'routes', name: 'x' })).toMatchObject({ status: 400, body: { code: 'SB_ADMIN_QUERY' } });
    expect(await counting.answer(call('DELETE', '/api/routes/x?warning=false'), { kind: 'routes', name: 'x' })).toMatchObject({ status: 400, body: { code: 'SB_ADMIN_QUERY' } });
  });

  it('judges the objects of a dry run of many in slices, letting the event loop turn meanwhile', async () => {
    // Counts the event loop's turns from the end of the body to the listing, which follows the objects' checks.
    let turns = 0;
    let counting = true;
    const tick = () => {
      turns += 1;
      if (counting) setImmediate(tick);
    };
    let turnsAtEnd = 0;
    let turnsAtList = 0;
    const listing = {
      list: async () => {
        turnsAtList = turns;
        return { revision: '7', objects: [], unreadable: [] };
      },
    };
    const manyApi = new StoreApi({ token: 't', location: () => ({ url: 'etcd://127.0.0.1:2379/switchboard' }) as StoreLocation, record: () => undefined, openWriter: async () => listing as unknown as StoreWriter, composed: () => undefined });
    const objects = Array.from({ length: 3_000 }, (_, index) => ({ kind: 'routes', name: `r${index}`, value: { path: `/r/${index}`, service: 'a' } }));
    const body = Object.assign(Readable.from([Buffer.from(JSON.stringify({ objects }))]), { method: 'PUT', url: '/api/store?dryRun=true', headers: {}, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;
    (body as unknown as Readable).once('end', () => {
      turnsAtEnd = turns;
      setImmediate(tick);
    });
    const answer = await manyApi.answer(body, { kind: 'store' });
    counting = false;
    expect(answer).toMatchObject({ status: 200, body: { dryRun: true, warnings: [] } });
    expect((answer.body as { objects: unknown[] }).objects).toHaveLength(3_000);
    // In one turn, as it was, the 3,000 checks (hundreds of milliseconds on a loaded machine) let nothing else run.
    expect(turnsAtList - turnsAtEnd).toBeGreaterThan(0);
  });
});
