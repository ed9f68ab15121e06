import { describe, expect, it } from 'vitest';
import { ConfigSplitError, splitConfig } from './store-writer-split.ts';

describe('splitConfig', () => {
  it('splits routes by name and each named section entry into objects, services first and routes last', () => {
    const split = splitConfig(
      'gw.yaml',
      `
listen: 127.0.0.1:8080
registries: [zk://127.0.0.1:2181/services]
routes:
  - { name: users, path: /users, service: user }
  - { name: orders, path: /orders, service: order }
services:
  user: { balancer: round-robin }
  order: null
middlewares:
  limit: { rateLimit: { average: 10 } }
consumers:
  alice: { keys: ['sha256:${'a'.repeat(64)}'] }
`,
    );
    expect(split.objects.map((object) => `${object.kind}/${object.name}`)).toEqual(['services/user', 'services/order', 'middlewares/limit', 'consumers/alice', 'routes/users', 'routes/orders']);
    expect(split.objects[0]!.value).toEqual({ balancer: 'round-robin' });
    expect(split.objects[4]!.value).toEqual({ name: 'users', path: '/users', service: 'user' });
    expect(split.ignored).toEqual(['listen', 'registries']);
  });

  it.each([
    ['a route without a name', 'routes:\n  - { path: /a, service: a }\n', 'routes.0.name: a stored route needs a name'],
    ['two routes with one name', 'routes:\n  - { name: a, service: a }\n  - { name: a, service: b }\n', 'routes.1.name: route name "a" is used twice'],
    ['a name a key cannot hold', 'services:\n  "a/b": {}\n', 'services.a/b: a stored name must match'],
    ['routes that are not a list', 'routes: { a: 1 }\n', 'routes: expected a list'],
    ['text that is not YAML', 'routes: [\n', 'not YAML or JSON'],
  ])('refuses %s, naming the file and the place', (_case, text, reason) => {
    expect(() => splitConfig('gw.yaml', text)).toThrow(ConfigSplitError);
    expect(() => splitConfig('gw.yaml', text)).toThrow(`gw.yaml: ${reason}`);
  });

  it('names where the YAML breaks on one line, ending with the place rather than the colon before the excerpt', () => {
    expect(() => splitConfig('gw.yaml', 'routes: [\n')).toThrow(/^gw\.yaml: not YAML or JSON \(.+ at line \d+, column \d+\)$/);
  });

  it('reads an empty file as no objects', () => {
    expect(splitConfig('empty.yaml', '')).toEqual({ objects: [], ignored: [] });
  });
});
