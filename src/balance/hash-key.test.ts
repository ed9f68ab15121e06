import { describe, expect, it } from 'vitest';
import { hashKeyOf, type HashKeySource } from './hash-key.ts';
import type { PickContext } from './picker.ts';

describe('hashKeyOf', () => {
  it.each<{ name: string; source: HashKeySource; context: PickContext; expected: string | undefined }>([
    { name: 'the client IP', source: { from: 'client-ip' }, context: { clientIp: '192.0.2.1' }, expected: '192.0.2.1' },
    { name: 'nothing when the client IP is missing', source: { from: 'client-ip' }, context: {}, expected: undefined },
    { name: 'a header, whatever case the name is configured in', source: { from: 'header', name: 'X-User' }, context: { headers: { 'x-user': 'u1' } }, expected: 'u1' },
    { name: 'a repeated header joined by commas', source: { from: 'header', name: 'x-user' }, context: { headers: { 'x-user': ['u1', 'u2'] } }, expected: 'u1, u2' },
    { name: 'nothing for an empty header', source: { from: 'header', name: 'x-user' }, context: { headers: { 'x-user': '' } }, expected: undefined },
    { name: 'a cookie among others', source: { from: 'cookie', name: 'sid' }, context: { headers: { cookie: 'a=1; sid=abc; b=2' } }, expected: 'abc' },
    { name: 'nothing for a cookie whose name only ends like the wanted one', source: { from: 'cookie', name: 'sid' }, context: { headers: { cookie: 'xsid=abc' } }, expected: undefined },
    { name: 'the path without its query', source: { from: 'path' }, context: { url: '/a/b?c=d' }, expected: '/a/b' },
    { name: 'a query parameter', source: { from: 'query', name: 'tenant' }, context: { url: '/a?x=1&tenant=acme' }, expected: 'acme' },
    { name: 'nothing when the query lacks the parameter', source: { from: 'query', name: 'tenant' }, context: { url: '/a?x=1' }, expected: undefined },
    { name: 'nothing when there is no query at all', source: { from: 'query', name: 'tenant' }, context: { url: '/a' }, expected: undefined },
  ])('reads $name', ({ source, context, expected }) => {
    expect(hashKeyOf(source, context)).toBe(expected);
  });
});
