import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerView } from '../../gateway/cluster/cluster-supervisor.ts';
import { logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

/** One request on a connection of its own (no keep-alive), so that each may land on either worker. */
function getFresh(url: string, cookie?: string): Promise<{ name: string; setCookie: readonly string[] }> {
  return new Promise((resolve, reject) => {
    const headers = { connection: 'close', ...(cookie === undefined ? {} : { cookie: `sb_sticky=${cookie}` }) };
    const request = httpRequest(url, { agent: false, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) return reject(new Error(`status ${response.statusCode}: ${Buffer.concat(chunks).toString()}`));
        resolve({ name: (JSON.parse(Buffer.concat(chunks).toString()) as { name: string }).name, setCookie: response.headers['set-cookie'] ?? [] });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

describe('sticky sessions with workers: 2 — every worker honours the cookies the others set', () => {
  let gateway: GatewayProcess;
  const backends: BackendProcess[] = [];

  async function workers(): Promise<WorkerView[]> {
    const response = await fetch(`http://127.0.0.1:${gateway.adminPort}/api/workers`);
    return (await response.json()) as WorkerView[];
  }

  beforeAll(async () => {
    backends.push(...(await Promise.all([startBackend({ name: 'a' }), startBackend({ name: 'b' })])));
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
workers: { count: 2 }
accessLog: false
services:
  user:
    balancer: round-robin
    sticky: { cookie: { name: sb_sticky } }
    instances: [${backends.map((backend) => `"127.0.0.1:${backend.port}"`).join(', ')}]
routes:
  - { path: /, service: user }
`);
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 20_000, message: 'both workers to listen' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await Promise.all(backends.map((backend) => backend.process.stop()));
  });

  it('sends every request with a cookie to its instance, whichever worker serves it', async () => {
    let answered = 0;
    const first = await waitFor(async () => {
      const answer = await getFresh(`${gateway.url}/who`).catch(() => undefined);
      if (answer !== undefined) answered += 1;
      return answer?.setCookie.length === 1 ? answer : undefined;
    }, { timeoutMs: 20_000, message: 'an answer with a sticky cookie' });
    const cookie = /^sb_sticky=([0-9a-f]{16});/.exec(first.setCookie[0]!)![1]!;
    // The primary counts a worker's requests in batches: the counts to start from are those that
    // include every request answered so far, or one counted late would pass for a request below.
    const before = await waitFor(
      async () => {
        const now = await workers();
        return now.reduce((sum, worker) => sum + worker.requests, 0) >= answered ? now : undefined;
      },
      { timeoutMs: 20_000, message: 'the workers to count the requests answered so far' },
    );
    const answers: Array<{ name: string; setCookie: readonly string[] }> = [];
    // Until both workers have served some of them (the primary counts each worker's requests).
    await waitFor(
      async () => {
        answers.push(await getFresh(`${gateway.url}/who`, cookie));
        const now = await workers();
        return now.every((worker, index) => worker.requests >= before[index]!.requests + 2);
      },
      { timeoutMs: 30_000, message: 'both workers to serve requests with the cookie' },
    );
    expect(answers.length).toBeGreaterThanOrEqual(4);
    expect(answers.every((answer) => answer.name === first.name && answer.setCookie.length === 0)).toBe(true);
  });
});
