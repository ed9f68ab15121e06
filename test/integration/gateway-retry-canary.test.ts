// A retry on a canary or subset route goes to an untried instance wherever the route may send the
// request: the old canary picker asked only the subset the split chose, whose one member the
// request had just tried, so every pick of the retry's search repeated it while the other version
// had an untried instance; a subset route never reached its fallback while its selection had a
// member at all.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, sendRequest, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';

describe('retries on canary and subset routes', () => {
  const servers: Server[] = [];
  let gateway: GatewayProcess;

  const listen = async (server: Server): Promise<number> => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };

  beforeAll(async () => {
    // v1 resets every request before answering (a retryable failure, `reset`); v2 answers.
    const v1 = await listen(createServer((request) => request.socket.destroy()));
    const v2 = await listen(createServer((_request, response) => response.end('v2')));
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
services:
  shop:
    instances:
      - { host: 127.0.0.1, port: ${v1}, id: v1, metadata: { version: v1 } }
      - { host: 127.0.0.1, port: ${v2}, id: v2, metadata: { version: v2 } }
    balancer: round-robin
    healthCheck: false
    outlierDetection: false
    retryBudget: false
    retries: { attempts: 2 }
routes:
  - { path: /ready, service: shop, subset: { match: { version: v2 }, fallback: none } }
  - { path: /canary, service: shop, canary: { by: version, split: { v1: 99, v2: 1 } } }
  - { path: /subset, service: shop, subset: { match: { version: v1 }, fallback: any } }
  - { path: /lane, service: shop, canary: { by: version, split: { v1: 1, v2: 1 }, lanes: [{ header: x-canary, value: "on", to: v1 }] } }
`);
    await waitFor(async () => (await sendRequest(gateway.port, '/ready')).status === 200, { timeoutMs: 10_000, message: 'the v2 instance behind the gateway' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  // The 99/1 split chooses v1 for all but one pick in 100: a request's first attempt and the
  // picks of its retry's search (four in all) fell on v1 in each of these, and they all failed 502.
  it('sends the retry of a canary request whose subset failed to an untried instance of the other version', async () => {
    const answers = [];
    for (let request = 0; request < 10; request += 1) answers.push(await sendRequest(gateway.port, `/canary/${request}`));
    expect(answers.map(({ status, body }) => `${status} ${body}`)).toEqual(Array.from({ length: 10 }, () => '200 v2'));
  });

  it("sends the retry of a subset route's request whose selection failed to an untried instance of its fallback", async () => {
    const answers = [];
    for (let request = 0; request < 5; request += 1) answers.push(await sendRequest(gateway.port, `/subset/${request}`));
    expect(answers.map(({ status, body }) => `${status} ${body}`)).toEqual(Array.from({ length: 5 }, () => '200 v2'));
  });

  // A lane pins a tester's requests to its version: a retry of a request on the lane whose instances
  // all failed must not be answered by the other version (the tester would see v1 pass while it
  // resets every request); it repeats the lane's instance and fails as v1 did.
  it("keeps the retry of a lane's request on the lane's version, which failed, rather than answering from the other", async () => {
    const answers = [];
    for (let request = 0; request < 3; request += 1) answers.push(await sendRequest(gateway.port, `/lane/${request}`, { headers: { 'x-canary': 'on' } }));
    expect(answers.map(({ status, body }) => `${status} ${(JSON.parse(body) as { error: string }).error}`)).toEqual(Array.from({ length: 3 }, () => '502 reset-before-headers'));
  });
});
