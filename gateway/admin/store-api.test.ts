import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { StoreLocation } from '../config-store/store-layout.ts';
import type { StoreWriter } from '../config-store/store-writer.ts';
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
    expect(await api.answer(request('PUT', '/api/store'), { kind: 'store' })).toMatchObject({ status: 405, headers: { allow: 'GET, HEAD' } });
  });
});
