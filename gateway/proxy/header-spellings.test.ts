import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { otherSpellingsRemover } from './header-spellings.ts';

describe('otherSpellingsRemover', () => {
  it.each([
    ['a dashed name: its spellings with underscores go, the name and unrelated names stay', ['x-user'], { 'x-user': 'client', x_user: 'a', 'x_user-': 'b', 'x-user_id': 'c', host: 'h' }, { 'x-user': 'client', 'x_user-': 'b', 'x-user_id': 'c', host: 'h' }],
    ['a name spelt with underscores: its dashed spelling goes too', ['X_Tenant_Id'], { x_tenant_id: 'client', 'x-tenant-id': 'a', 'x-tenant_id': 'b' }, { x_tenant_id: 'client' }],
    ['several names, mixed spellings', ['x-forwarded-for', 'x-real-ip'], { x_forwarded_for: 'a', 'x-forwarded_for': 'b', x_real_ip: 'c', 'x-real-ip': 'kept' }, { 'x-real-ip': 'kept' }],
    ['two spellings of one name listed (a route sets X-Tenant and removes X_Tenant): both are the caller\'s', ['x-tenant', 'X_Tenant'], { 'x-tenant': 'gateway', x_tenant: 'client', 'x-tenant_': 'c' }, { 'x-tenant': 'gateway', x_tenant: 'client', 'x-tenant_': 'c' }],
  ] as const)('removes, for %s', (_case, names, headers, left) => {
    const copy: IncomingHttpHeaders = { ...headers };
    otherSpellingsRemover(names)!(copy);
    expect(copy).toEqual(left);
  });

  it('says whether a name with `_` is left, and without a scan looks up only the dashed spellings of names listed with `_`', () => {
    const remove = otherSpellingsRemover(['x-user', 'x_tenant'])!;
    const headers: IncomingHttpHeaders = { x_user: 'a', x_other: 'b', 'x-tenant': 'c' };
    expect(remove(headers)).toBe(true);
    expect(headers).toEqual({ x_other: 'b' });
    const unscanned: IncomingHttpHeaders = { x_user: 'a', 'x-tenant': 'c' };
    expect(remove(unscanned, false)).toBe(false);
    expect(unscanned).toEqual({ x_user: 'a' });
    expect(remove({ 'x-user': 'a' })).toBe(false);
  });

  it('is undefined for no names, so that callers skip the scan', () => {
    expect(otherSpellingsRemover([])).toBeUndefined();
  });
});
