import { describe, expect, it } from 'vitest';
import { storePlaceOf } from './store-api.ts';

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
