import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.ts';
import { startGateway, type Gateway } from '../pipeline.ts';
import { waitFor } from '../../test/harness/wait.ts';

const TOKEN = 'cache-purge-test-token';

/** The real pipeline in this process: the `purgeable` cache in front of a backend whose every answer is new. */
describe('POST /api/cache/purge on a gateway of one process', () => {
  let backend: Server;
  let gateway: Gateway;
  let open: Gateway;
  let served = 0;
  /** The path whose answers the backend holds until the test sends them (`held`). */
  let holding: string | undefined;
  const held: (() => void)[] = [];
  const auth = { authorization: `Bearer ${TOKEN}` };
  const configText = (port: number, admin: string) => `
listen: 127.0.0.1:0
admin: ${admin}
accessLog: false
services:
  site: { instances: ["127.0.0.1:${port}"], healthCheck: false }
middlewares:
  purgeable: { cache: { maxSize: 1MiB } }
  headersOnly: { headers: { response: { remove: [server] } } }
routes:
  - { name: site, path: /site, service: site, stripPrefix: true, middlewares: [purgeable] }
`;
  const get = async (path: string, via = gateway, headers: Record<string, string> = {}) => {
    const response = await fetch(`http://127.0.0.1:${[...via.ports.values()][0]}/site${path}`, { headers });
    return { body: await response.text(), status: response.headers.get('x-cache-status') };
  };
  const purge = (body: string, headers: Record<string, string> = auth, port = gateway.adminPort) =>
    fetch(`http://127.0.0.1:${port}/api/cache/purge`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  beforeAll(async () => {
    backend = createServer((request, response) => {
      served += 1;
      const body = `${request.url} answer ${served}`;
      // /revalidated has a validator, and answers a conditional request with 304.
      const validated = request.url === '/revalidated' ? { etag: '"v1"' } : {};
      const notModified = validated.etag !== undefined && request.headers['if-none-match'] === validated.etag;
      const answer = () => (notModified ? response.writeHead(304, { 'cache-control': 'max-age=60', ...validated }).end() : response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain', ...validated }).end(body));
      // Only GETs are held: an unsafe method's answer (which invalidates) goes at once.
      if (request.url === holding && request.method === 'GET') held.push(answer);
      else answer();
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const port = (backend.address() as AddressInfo).port;
    gateway = await startGateway(parseConfig('g.yaml', configText(port, `{ listen: 127.0.0.1:0, token: ${TOKEN} }`)));
    open = await startGateway(parseConfig('open.yaml', configText(port, '127.0.0.1:0').replaceAll('purgeable', 'purgeableOpen')));
  });

  afterAll(async () => {
    await gateway?.close();
    await open?.close();
    await new Promise<void>((resolve) => backend?.close(() => resolve()));
  });

  it('drops the stored answer of a path, which the next request fetches anew, and leaves the others', async () => {
    const first = await get('/a');
    const other = await get('/b');
    expect([first.status, (await get('/a')).status, (await get('/b')).status]).toEqual(['MISS', 'HIT', 'HIT']);
    const answer = await purge(JSON.stringify({ middleware: 'purgeable', path: '/a' }));
    expect([answer.status, await answer.json()]).toEqual([200, { purged: 1 }]);
    const again = await get('/a');
    expect(again.status).toBe('MISS');
    expect(again.body).not.toBe(first.body);
    expect(await get('/b')).toEqual({ body: other.body, status: 'HIT' });
  });

  it('normalises the path and prefix it is given as a request\'s: another spelling of the stored URI drops it', async () => {
    // Stored under the normalised path: unreserved escapes decoded, the others in upper-case hex.
    for (const path of ['/caf%C3%A9', '/~user/a']) expect((await get(path)).status).toBe('MISS');
    const purged = await purge(JSON.stringify({ middleware: 'purgeable', path: '/caf%c3%a9' }));
    expect([purged.status, await purged.json()]).toEqual([200, { purged: 1 }]);
    // A prefix ending in a dot is no dot segment to drop: it does not widen to /~user/.
    const narrow = await purge(JSON.stringify({ middleware: 'purgeable', prefix: '/~user/.' }));
    expect([narrow.status, await narrow.json()]).toEqual([200, { purged: 0 }]);
    const prefixed = await purge(JSON.stringify({ middleware: 'purgeable', prefix: '/%7Euser/' }));
    expect([prefixed.status, await prefixed.json()]).toEqual([200, { purged: 1 }]);
    expect([(await get('/caf%C3%A9')).status, (await get('/~user/a')).status]).toEqual(['MISS', 'MISS']);
    const refused = await purge(JSON.stringify({ path: '/bad%zz' }));
    expect([refused.status, ((await refused.json()) as { code: string }).code]).toEqual([400, 'SB_CACHE_PURGE_INVALID']);
  });

  it('does not store an answer whose request was upstream when a purge of it ran', async () => {
    holding = '/held';
    const inFlight = get('/held');
    await waitFor(() => held.length === 1, { timeoutMs: 10_000, message: 'the backend to hold /held' });
    const purged = await purge(JSON.stringify({ middleware: 'purgeable', path: '/held' }));
    expect([purged.status, await purged.json()]).toEqual([200, { purged: 0 }]);
    holding = undefined;
    held.shift()!();
    const old = await inFlight;
    expect(old.status).toBe('MISS');
    // The old answer, fetched before the purge, must not be what the next request gets.
    const next = await get('/held');
    expect([next.status, next.body === old.body]).toEqual(['MISS', false]);
    expect((await get('/held')).status).toBe('HIT');
  });

  it('stores an answer whose request was upstream while a purge of another path ran', async () => {
    holding = '/fill';
    const inFlight = get('/fill');
    await waitFor(() => held.length === 1, { timeoutMs: 10_000, message: 'the backend to hold /fill' });
    const purged = await purge(JSON.stringify({ middleware: 'purgeable', path: '/elsewhere' }));
    expect(purged.status).toBe(200);
    holding = undefined;
    held.shift()!();
    const filled = await inFlight;
    expect(filled.status).toBe('MISS');
    // The purge took another path: this answer is none it meant to drop.
    expect(await get('/fill')).toEqual({ body: filled.body, status: 'HIT' });
  });

  it('does not store an answer whose request was upstream when an unsafe method changed its resource', async () => {
    holding = '/edited';
    const inFlight = get('/edited');
    await waitFor(() => held.length === 1, { timeoutMs: 10_000, message: 'the backend to hold /edited' });
    // A successful POST invalidates the URI's stored answers (RFC 9111 §4.4), the one on its way too.
    const edit = await fetch(`http://127.0.0.1:${[...gateway.ports.values()][0]}/site/edited`, { method: 'POST', body: 'new' });
    expect(edit.status).toBe(200);
    await edit.text();
    holding = undefined;
    held.shift()!();
    const old = await inFlight;
    expect(old.status).toBe('MISS');
    const next = await get('/edited');
    expect([next.status, next.body === old.body]).toEqual(['MISS', false]);
  });

  it('does not store again an answer it dropped while the upstream was revalidating it', async () => {
    const stored = await get('/revalidated');
    expect([stored.status, (await get('/revalidated')).status]).toEqual(['MISS', 'HIT']);
    // A client's max-age=0 makes the cache ask the upstream (If-None-Match), which holds its 304.
    holding = '/revalidated';
    const revalidating = get('/revalidated', gateway, { 'cache-control': 'max-age=0' });
    await waitFor(() => held.length === 1, { timeoutMs: 10_000, message: 'the backend to hold the revalidation' });
    const purged = await purge(JSON.stringify({ middleware: 'purgeable', path: '/revalidated' }));
    expect([purged.status, await purged.json()]).toEqual([200, { purged: 1 }]);
    holding = undefined;
    held.shift()!();
    expect((await revalidating).status).toBe('REVALIDATED');
    const next = await get('/revalidated');
    expect([next.status, next.body === stored.body]).toEqual(['MISS', false]);
  });

  it('refuses bad input with 400 and the reason, dropping nothing', async () => {
    const kept = await get('/kept');
    const refusals: [string, string, string][] = [
      ['', 'SB_ADMIN_BODY', 'the body is empty'],
      ['{"path": "/kept"', 'SB_ADMIN_BODY', 'the body is not JSON'],
      ['{}', 'SB_CACHE_PURGE_INVALID', 'say which answers to drop'],
      ['{"middleware": "purgeable"}', 'SB_CACHE_PURGE_INVALID', 'say which answers to drop'],
      ['{"all": true, "midleware": "purgeable"}', 'SB_CACHE_PURGE_INVALID', 'unknown field "midleware"'],
      ['{"middleware": "nothing", "path": "/kept"}', 'SB_CACHE_PURGE_UNKNOWN_MIDDLEWARE', 'no middleware is named "nothing": the cache middleware are purgeable'],
      ['{"middleware": "headersOnly", "all": true}', 'SB_CACHE_PURGE_UNKNOWN_MIDDLEWARE', '"headersOnly" is a headers middleware, not a cache'],
    ];
    for (const [body, code, reason] of refusals) {
      const answer = await purge(body);
      const refusal = (await answer.json()) as { code: string; message: string };
      expect([answer.status, refusal.code]).toEqual([400, code]);
      expect(refusal.message).toContain(reason);
    }
    expect(await get('/kept')).toEqual({ body: kept.body, status: 'HIT' });
  });

  it('needs the token: 401 without it or with a wrong one, 403 on a listener that has none, 405 for GET; nothing dropped', async () => {
    const kept = await get('/guarded');
    for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token' }] as Record<string, string>[]) {
      const answer = await purge('{"all": true}', headers);
      expect([answer.status, ((await answer.json()) as { error: string }).error]).toEqual([401, 'unauthorized']);
    }
    const tokenless = await purge('{"all": true}', {}, open.adminPort);
    expect([tokenless.status, ((await tokenless.json()) as { code: string }).code]).toEqual([403, 'SB_ADMIN_WRITE_NEEDS_TOKEN']);
    const read = await fetch(`http://127.0.0.1:${gateway.adminPort}/api/cache/purge`, { headers: auth });
    expect([read.status, read.headers.get('allow')]).toEqual([405, 'POST']);
    expect(await get('/guarded')).toEqual({ body: kept.body, status: 'HIT' });
  });
});
