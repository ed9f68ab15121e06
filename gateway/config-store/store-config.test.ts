import { describe, expect, it } from 'vitest';
import { mergeWithStore } from './store-config.ts';
import { mergeStoreDocument } from './store-merge.ts';
import { validateStoreObjects } from './store-objects.ts';
import { checkStoreObjectBeside } from './store-writer-validate.ts';

const ROOT = '/switchboard';
const FILE = {
  listen: '127.0.0.1:8080',
  admin: false,
  services: { api: { balancer: { algorithm: 'round-robin' } } },
  middlewares: { strict: { hsts: { maxAge: '1h' } } },
  routes: [
    { name: 'file-api', path: '/api', service: 'api' },
    { name: 'shared', path: '/shared', service: 'file-backend' },
  ],
};
const listing = (entries: Record<string, unknown>) => ({
  revision: '7',
  receivedAt: 0,
  entries: new Map(Object.entries(entries).map(([key, value]) => [`${ROOT}/${key}`, typeof value === 'string' ? value : JSON.stringify(value)])),
});

describe('validateStoreObjects', () => {
  it.each([
    ['a value that is not JSON', 'routes/a', '{"path": "/a",', /not JSON/],
    ['a route the schema refuses', 'routes/a', { path: 'no-slash', service: 'x' }, /path: expected a path starting with \//],
    ['a route whose name differs from its id', 'routes/a', { name: 'b', path: '/a', service: 'x' }, /name "b" differs from the key's id "a"/],
    ['a bad object name', 'routes/-bad', { path: '/a', service: 'x' }, /not a valid object name/],
    ['a middleware with two kinds', 'middlewares/m', { hsts: { maxAge: '1h' }, rewrite: { pattern: 'a', replacement: 'b' } }, /exactly one kind/],
    ['a route to an entry point the file lacks', 'routes/a', { path: '/a', service: 'x', entryPoints: ['nope'] }, /no entry point is named "nope"/],
    // In the words the file's check and the write API use, not zod's own ("Unrecognized key", "Invalid input: …").
    ['a route with a misspelt key', 'routes/a', { path: '/a', service: 'x', stripPrefx: true }, /^stripPrefx: unknown field "stripPrefx" \(did you mean "stripPrefix"\?\)$/],
    ['a route with a value of the wrong type', 'routes/a', { path: '/a', service: 'x', stripPrefix: 'yes' }, /^stripPrefix: expected boolean, received string$/],
    ['a service with a misspelt key', 'services/s', { balancr: 'random' }, /^balancr: unknown field "balancr" \(did you mean "balancer"\?\)$/],
    // Written around the API (etcdctl): a local limit's Redis fallback would do nothing, so it is refused, not taken.
    ['a local rate limit with onRedisError', 'middlewares/limit', { rateLimit: { average: 5, onRedisError: 'deny' } }, /^rateLimit\.onRedisError: applies only with policy: redis/],
  ])('refuses %s alone, with its key and reason', (_case, key, value, reason) => {
    const { objects, refused } = validateStoreObjects(ROOT, listing({ [key]: value, 'routes/good': { path: '/good', service: 'x' } }).entries, FILE);
    expect(refused).toEqual([{ key: `${ROOT}/${key}`, kind: key.split('/')[0], reason: expect.stringMatching(reason) }]);
    expect([...objects.routes.keys()]).toEqual(['good']);
  });

  it('accepts a route that names a middleware only the store declares (checked after merging)', () => {
    const { refused } = validateStoreObjects(ROOT, listing({ 'routes/a': { path: '/a', service: 'x', middlewares: ['from-store'] } }).entries, FILE);
    expect(refused).toEqual([]);
  });

  it('accepts every kind beside a file whose entry point uses a middleware the file declares (the file\'s sections are left out of each object\'s document)', () => {
    const file = { admin: false, entryPoints: { web: { listen: '127.0.0.1:8080', middlewares: ['strict'] } }, middlewares: FILE.middlewares };
    const { objects, refused } = validateStoreObjects(ROOT, listing({ 'routes/a': { path: '/a', service: 'x' }, 'services/s': { balancer: 'round-robin' }, 'middlewares/m': { hsts: { maxAge: '1h' } } }).entries, file);
    expect(refused).toEqual([]);
    expect(objects.routes.size + objects.services.size + objects.middlewares.size).toBe(3);
  });

  it('ignores peers and stray keys', () => {
    const { objects, refused } = validateStoreObjects(ROOT, new Map([[`${ROOT}/peers/gw-1`, '{}'], [`${ROOT}/other/x`, 'junk']]), FILE);
    expect(refused).toEqual([]);
    expect(objects.routes.size + objects.services.size).toBe(0);
  });
});

describe('mergeStoreDocument', () => {
  it('keeps the file settings, puts store routes after the file routes, and lets a store object replace a file object of the same name', () => {
    const { objects } = validateStoreObjects(
      ROOT,
      listing({
        'routes/b-store': { path: '/b', service: 'b' },
        'routes/a-store': { path: '/a', service: 'a' },
        'routes/shared': { path: '/shared', service: 'store-backend' },
        'services/api': { balancer: { algorithm: 'least-connections' } },
        'middlewares/extra': { hsts: { maxAge: '2h' } },
      }).entries,
      FILE,
    );
    const { document, refused } = mergeStoreDocument(ROOT, FILE, objects);
    expect(refused).toEqual([]);
    expect(document.listen).toBe('127.0.0.1:8080');
    expect((document.routes as { name: string }[]).map((route) => route.name)).toEqual(['file-api', 'a-store', 'b-store', 'shared']);
    expect((document.routes as { name: string; service: string }[]).find((route) => route.name === 'shared')?.service).toBe('store-backend');
    expect(document.services).toEqual({ api: { balancer: { algorithm: 'least-connections' } } });
    expect(Object.keys(document.middlewares as object)).toEqual(['strict', 'extra']);
  });

  it('turns a store route naming a missing middleware into an unavailable route without that middleware, and reports it', () => {
    const { objects } = validateStoreObjects(ROOT, listing({ 'routes/guarded': { path: '/g', service: 'g', middlewares: ['strict', 'missing-auth'] } }).entries, FILE);
    const { document, refused } = mergeStoreDocument(ROOT, FILE, objects);
    expect(refused).toEqual([{ key: `${ROOT}/routes/guarded`, kind: 'routes', reason: expect.stringContaining('"missing-auth"') }]);
    const route = (document.routes as Record<string, unknown>[]).find((entry) => entry.name === 'guarded');
    expect(route?.middlewares).toBeUndefined();
    expect(route?.unavailable).toMatch(/route guarded references middleware "missing-auth"/);
  });
});

describe('mergeWithStore', () => {
  it('parses the merged document with the file schema: the unavailable route keeps its place and the rest applies', () => {
    const merged = mergeWithStore('/tmp/gateway.yaml', ROOT, FILE, listing({ 'routes/ok': { path: '/ok', service: 'ok' }, 'routes/guarded': { path: '/g', service: 'g', middlewares: ['nope'] }, 'routes/bad': '{' }));
    if (!merged.ok) throw merged.error;
    expect(merged.config.routes.map((route) => [route.name, route.unavailable !== undefined])).toEqual([
      ['file-api', false],
      ['shared', false],
      ['guarded', true],
      ['ok', false],
    ]);
    expect(merged.refused.map((entry) => entry.key).sort()).toEqual([`${ROOT}/routes/bad`, `${ROOT}/routes/guarded`]);
    // The text is what workers parse: the same configuration comes out of it.
    expect(JSON.parse(merged.text).routes).toHaveLength(4);
  });

  it('says of a route naming a middleware the store holds but refused that it was refused, not that it was never declared', () => {
    const merged = mergeWithStore(
      '/tmp/gateway.yaml',
      ROOT,
      FILE,
      listing({ 'middlewares/redir': { redirectRegex: { regex: '^http://(.*', replacement: 'https://$1' } }, 'routes/guarded': { path: '/g', service: 'g', middlewares: ['redir', 'nope'] } }),
    );
    if (!merged.ok) throw merged.error;
    expect(merged.refused.find((entry) => entry.key === `${ROOT}/routes/guarded`)?.reason).toBe(
      'references middleware "nope" that is declared neither in the file nor in the store; references middleware "redir" whose store object is refused (see its own refusal)',
    );
  });
});

describe('mergeWithStore blames the store object a merged issue points into', () => {
  it.each(['elsewhere', 'shop.example.com'])('refuses alone a certificate named %s whose files this gateway lacks, and applies the rest', (name) => {
    const merged = mergeWithStore('/tmp/gateway.yaml', ROOT, FILE, listing({ [`certificates/${name}`]: { certFile: '/nonexistent/site.pem', keyFile: '/nonexistent/site.key' }, 'routes/ok': { path: '/ok', service: 'ok' } }));
    if (!merged.ok) throw merged.error;
    expect(merged.config.routes.map((route) => route.name)).toContain('ok');
    expect(merged.refused).toEqual([{ key: `${ROOT}/certificates/${name}`, kind: 'certificates', reason: expect.stringContaining(`certificates.${name}.certFile`) }]);
  });
});

describe('mergeWithStore says what refusals for files wait for', () => {
  it('lists a store object refused for files it names, with those files, and not one refused for its content', () => {
    const merged = mergeWithStore(
      '/tmp/gateway.yaml',
      ROOT,
      FILE,
      listing({
        'services/secure': { protocol: 'https', tls: { caFile: 'keys/ca.pem' } },
        'certificates/site': { certFile: '/nonexistent/site.pem', keyFile: '/nonexistent/site.key' },
        'certificates/typo': { certFile: '/elsewhere/typo.pem', keyFile: '/elsewhere/typo.key', unknownField: true },
        'routes/bad': { path: 'no-slash', service: 'x' },
      }),
    );
    if (!merged.ok) throw merged.error;
    expect(merged.refused.map((entry) => entry.key).sort()).toEqual([`${ROOT}/certificates/site`, `${ROOT}/certificates/typo`, `${ROOT}/routes/bad`, `${ROOT}/services/secure`]);
    expect([...merged.waitingFor.keys].sort()).toEqual([`${ROOT}/certificates/site`, `${ROOT}/services/secure`]);
    // Relative paths from the configuration file's folder, as the readers take them.
    expect([...merged.waitingFor.files].sort()).toEqual(['/nonexistent/site.key', '/nonexistent/site.pem', '/tmp/keys/ca.pem']);
  });

  it('lists nothing when every refusal is for content', () => {
    const merged = mergeWithStore('/tmp/gateway.yaml', ROOT, FILE, listing({ 'routes/bad': { path: 'no-slash', service: 'x' } }));
    expect(merged.waitingFor.keys.size).toBe(0);
    expect(merged.waitingFor.files).toEqual([]);
  });
});

describe('a store route with a mirror', () => {
  const mirrored = (service: string) => ({ path: '/m', service: 'shop', mirror: { service } });

  it.each([
    ['a service the file declares', 'api', {}],
    ['a service only a file route targets', 'file-backend', {}],
    ['a service only the store declares', 'shadow', { 'services/shadow': {} }],
    ['a service only another store route targets', 'other', { 'routes/other': { path: '/o', service: 'other' } }],
  ])('applies with its mirror when it names %s', (_case, service, more) => {
    const merged = mergeWithStore('/tmp/gateway.yaml', ROOT, FILE, listing({ 'routes/mirrored': mirrored(service), ...more }));
    if (!merged.ok) throw merged.error;
    expect(merged.refused).toEqual([]);
    expect(merged.config.routes.find((route) => route.name === 'mirrored')?.mirror?.service).toBe(service);
  });

  it('is refused alone, at its mirror.service, when neither the file nor the store names that service; the rest applies', () => {
    const merged = mergeWithStore('/tmp/gateway.yaml', ROOT, FILE, listing({ 'routes/mirrored': mirrored('nowhere'), 'routes/ok': { path: '/ok', service: 'ok' } }));
    if (!merged.ok) throw merged.error;
    expect(merged.config.routes.map((route) => route.name)).toEqual(['file-api', 'shared', 'ok']);
    expect(merged.refused).toEqual([{ key: `${ROOT}/routes/mirrored`, kind: 'routes', reason: expect.stringMatching(/mirror\.service: unknown service "nowhere"/) }]);
  });

  it('is taken by the write API beside a file that does not itself name the mirror service (the store may)', () => {
    expect(checkStoreObjectBeside(FILE, 'routes', 'mirrored', mirrored('shadow'))).toMatchObject({ ok: true });
  });
});
