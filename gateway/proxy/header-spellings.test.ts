import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { otherSpellingsRemover } from './header-spellings.ts';

describe('otherSpellingsRemover', () => {
  it.each([
    ['a dashed name: its spellings with underscores go, the name and unrelated names stay', ['x-user'], { 'x-user': 'client', x_user: 'a', 'x_user-': 'b', 'x-user_id': 'c', host: 'h' }, { 'x-user': 'client', 'x_user-': 'b', 'x-user_id': 'c', host: 'h' }],
    ['a name spelt with underscores: its dashed spelling goes too', ['X_Tenant_Id'], { x_tenant_id: 'client', 'x-tenant-id': 'a', 'x-tenant_id': 'b' }, { x_tenant_id: 'client' }],
    ['several names, mixed spellings', ['x-forwarded-for', 'x-real-ip'], { x_forwarded_for: 'a', 'x-forwarded_for': 'b', x_real_ip: 'c', 'x-real-ip': 'kept' }, { 'x-real-ip': 'kept' }],
  ] as const)('removes, for %s', (_case, names, headers, left) => {
    const copy: IncomingHttpHeaders = { ...headers };
    otherSpellingsRemover(names)!(copy);
    expect(copy).toEqual(left);
  });

  it('is undefined for no names, so that callers skip the scan', () => {
    expect(otherSpellingsRemover([])).toBeUndefined();
  });
});
