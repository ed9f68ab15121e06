import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';

const ENTRY_POINTS = 'entryPoints: { web: { listen: ":8080" }, admin: { listen: ":8081" } }\n';
const namesOf = (routes: string[]) => parseConfig('gateway.yaml', `${ENTRY_POINTS}routes:\n${routes.map((route) => `  - ${route}\n`).join('')}`, { readFiles: false }).routes.map((route) => route.name);

describe('route names', () => {
  it.each([
    ['a path', '{ path: /api/user/, service: a }', '/api/user'],
    ['no path (a catch-all)', '{ service: a }', '/'],
    ['a host and a path', '{ host: API.example.com, path: /v1, service: a }', 'api.example.com/v1'],
    ['a host alone', '{ host: "*.example.com", service: a }', '*.example.com/'],
    ['a regex', '{ host: a.test, pathRegex: "^/v[0-9]+/", service: a }', 'a.test ~^/v[0-9]+/'],
    ['methods, sorted', '{ path: /a, methods: [post, GET], service: a }', 'GET,POST /a'],
    ['a gRPC service', '{ grpcService: helloworld.Greeter, service: a }', '/helloworld.Greeter'],
    ['entry points, sorted', '{ path: /a, entryPoints: [web, admin], service: a }', '/a @admin,web'],
  ])('derives the name of an unnamed route from what it matches: %s', (_case, route, name) => {
    expect(namesOf([route])).toEqual([name]);
  });

  it('shows header names and a digest of their values, never the values', () => {
    const [one, same, other] = namesOf(['{ path: /a, headers: { X-Token: s3cret, x-env: eu }, service: a }', '{ path: /b, headers: { x-env: eu, x-token: s3cret }, service: a }', '{ path: /a, headers: { x-env: us, x-token: s3cret }, service: a }']);
    expect(one).toMatch(/^\/a \{x-env,x-token\}~[0-9a-f]{6}$/);
    expect(one).not.toContain('s3cret');
    expect(same!.slice(2)).toBe(one!.slice(2));
    expect(other).not.toBe(one);
  });

  it('leaves the values of credential headers out of the digest, telling such routes apart by order', () => {
    const [one, two, plain] = namesOf(['{ path: /a, headers: { x-api-key: k1 }, service: a }', '{ path: /a, headers: { X-Api-Key: k2 }, service: a }', '{ path: /a, headers: { x-env: k1 }, service: a }']);
    expect(two).toBe(`${one}#2`);
    expect(namesOf(['{ path: /a, headers: { x-env: k2 }, service: a }'])[0]).not.toBe(plain);
  });

  it('keeps every name when routes are inserted before, removed or reordered', () => {
    const before = namesOf(['{ path: /a, service: a }', '{ name: named, path: /n, service: n }', '{ path: /b, methods: GET, service: b }']);
    const after = namesOf(['{ path: /new, service: x }', '{ path: /b, methods: GET, service: b }', '{ name: named, path: /n, service: n }', '{ path: /a, service: a }']);
    expect(before).toEqual(['/a', 'named', 'GET /b']);
    expect(after).toEqual(['/new', 'GET /b', 'named', '/a']);
  });

  it('tells identical matches apart by their order among themselves, and never takes a name a route was given', () => {
    expect(namesOf(['{ path: /a, service: a }', '{ path: /b, service: b }', '{ path: /a, service: c }'])).toEqual(['/a', '/b', '/a#2']);
    expect(namesOf(['{ path: /a, service: a }', '{ name: "/a#2", path: /x, service: x }', '{ path: /a, service: c }'])).toEqual(['/a', '/a#2', '/a#3']);
    expect(namesOf(['{ path: /a, service: a }', '{ name: /a, path: /x, service: x }'])).toEqual(['/a#2', '/a']);
  });

  it('bounds a long derived name with a digest that keeps distinct matches apart', () => {
    const long = 'x'.repeat(300);
    const [a, b] = namesOf([`{ pathRegex: "^/${long}a", service: a }`, `{ pathRegex: "^/${long}b", service: a }`]);
    expect([a!.length, b!.length]).toEqual([128, 128]);
    expect(a).not.toBe(b);
  });
});
