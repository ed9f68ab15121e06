import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, type AdminClient } from '../harness/admin-client.ts';
import { http2Request, logOf, makeTempDir, removeTempDir, sendRequest, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { sampleValue } from '../harness/prometheus-text.ts';

describe('respond: the gateway answers a route itself, with no upstream', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let admin: AdminClient;
  let dir: string;
  let bodyFile: string;

  beforeAll(async () => {
    backend = await startBackend({ name: 'api' });
    dir = await makeTempDir('sb-respond-');
    bodyFile = join(dir, 'maintenance.html');
    await writeFile(bodyFile, '<h1>Back soon</h1>');
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}", h2c: true }
admin: 127.0.0.1:{{adminPort}}
accessLog: true
services:
  api: { instances: [127.0.0.1:${backend.port}], healthCheck: false, outlierDetection: { consecutiveErrors: 2 } }
middlewares:
  maintenance: { respond: { status: 503, body: "down for maintenance", headers: { Retry-After: 120 } } }
  maintenance-page: { respond: { status: 503, bodyFile: ${bodyFile}, contentType: text/html } }
  gone: { respond: { status: 204 } }
  frame-deny: { headers: { response: { set: { X-Frame-Options: DENY } } } }
routes:
  - { name: maintenance, path: /maintenance, service: api, middlewares: [frame-deny, maintenance] }
  - { name: page, path: /page, service: api, middlewares: [maintenance-page] }
  - { name: gone, path: /gone, service: api, middlewares: [gone] }
  - { name: plain, path: /plain, service: api }
`);
    admin = adminClient(`http://127.0.0.1:${gateway.adminPort}`);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'api')?.instances.length === 1, { message: 'the api service to list its instance' });
  });
  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
    if (dir) await removeTempDir(dir);
  });

  it('answers over HTTP/1.1 with its status, body and headers, through the headers middleware before it, and never reaches the upstream', async () => {
    const answers = [];
    // More 503s than outlierDetection's consecutiveErrors: none of them is the instance's.
    for (let index = 0; index < 4; index += 1) answers.push(await sendRequest(gateway.port, `/maintenance/${index}`));
    for (const answer of answers) {
      expect(answer, await logOf(gateway.process)).toMatchObject({ status: 503, body: 'down for maintenance' });
      expect(answer.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'content-length': '20', 'retry-after': '120', 'x-frame-options': 'DENY' });
      expect(answer.headers['x-request-id']).toBeTruthy();
    }
    const instance = (await admin.services()).find((service) => service.name === 'api')!.instances[0]!;
    expect([instance.requests, instance.errors, instance.health.state, instance.routable]).toEqual([0, 0, 'healthy', true]);
    // The upstream is there and counted for a route that goes to it.
    expect((await sendRequest(gateway.port, '/plain')).status).toBe(200);
    await waitFor(async () => (await admin.services()).find((service) => service.name === 'api')!.instances[0]!.requests === 1, { message: 'the plain request to count on the instance' });
  });

  it("answers HEAD with GET's head and no body, and a 204 with neither body nor length", async () => {
    const head = await sendRequest(gateway.port, '/maintenance', { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.headers['content-type'], head.body]).toEqual([503, '20', 'text/plain; charset=utf-8', '']);
    const gone = await sendRequest(gateway.port, '/gone');
    expect([gone.status, gone.headers['content-length'], gone.headers['content-type'], gone.body]).toEqual([204, undefined, undefined, '']);
  });

  it('answers over HTTP/2 alike, HEAD with the head only', async () => {
    const answer = await http2Request(gateway.port, '/maintenance');
    expect(answer).toMatchObject({ status: 503, body: 'down for maintenance', headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': '20', 'retry-after': '120', 'x-frame-options': 'DENY' } });
    const head = await http2Request(gateway.port, '/maintenance', 'HEAD');
    expect([head.status, head.headers['content-length'], head.body]).toEqual([503, '20', '']);
  });

  it('logs and counts its answers as the route and service they came through, with no upstream and no error', async () => {
    const before = sampleValue(await admin.metrics(), 'switchboard_requests_total', { route: 'page', service: 'api', status: '5xx' }) ?? 0;
    const answer = await sendRequest(gateway.port, '/page?from=log');
    expect([answer.status, answer.headers['content-type'], answer.body]).toEqual([503, 'text/html', '<h1>Back soon</h1>']);
    const line = await waitFor(async () => (await logOf(gateway.process)).split('\n').find((text) => text.includes('"path":"/page?from=log"')), { message: 'the access log line of /page?from=log' });
    const logged = JSON.parse(line) as Record<string, unknown>;
    expect(logged).toMatchObject({ status: 503, bytes: 18, attempts: 0, route: 'page', service: 'api' });
    expect([logged.upstream, logged.errorClass]).toEqual([undefined, undefined]);
    // Counted once the response has closed, which the client may see first.
    const metrics = await waitFor(async () => {
      const read = await admin.metrics();
      return sampleValue(read, 'switchboard_requests_total', { route: 'page', service: 'api', status: '5xx' }) === before + 1 ? read : undefined;
    }, { message: 'the 503 of /page to be counted' });
    expect(metrics.get('switchboard_upstream_errors_total')?.samples.filter((sample) => sample.labels.service === 'api') ?? []).toEqual([]);
  });

  it('sends the new text of its bodyFile once the file changes, with no save of the configuration', async () => {
    await writeFile(bodyFile, '<h1>Back at six</h1>');
    await waitFor(async () => (await sendRequest(gateway.port, '/page')).body === '<h1>Back at six</h1>', { timeoutMs: 15_000, message: 'the new maintenance page' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    expect((await sendRequest(gateway.port, '/page')).headers['content-length']).toBe('20');
  });
});
