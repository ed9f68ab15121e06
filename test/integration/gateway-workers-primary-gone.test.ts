import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerView } from '../../gateway/cluster/cluster-supervisor.ts';
import { acceptsConnections, logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';
import { descendantsOf, killStillRunning, stillRunning, type ProcessRecord } from '../harness/process-tree.ts';

const DRAIN_TIMEOUT_MS = 10_000;

/** One request on a connection of its own (no keep-alive), so that each may land on either worker; rejects when the answer is cut. */
function getFresh(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { agent: false, headers: { connection: 'close' } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

describe('workers: 2 — the primary killed with SIGKILL', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  let adminPort: number;
  let tree: ProcessRecord[] = [];

  const workers = async (): Promise<WorkerView[]> => (await (await fetch(`http://127.0.0.1:${adminPort}/api/workers`)).json()) as WorkerView[];

  beforeAll(async () => {
    backend = await startBackend({ name: 'a' });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
workers: 2
accessLog: false
services:
  user: { instances: ["127.0.0.1:${backend.port}"] }
routes:
  - { path: /, service: user }
shutdown: { drainTimeout: ${DRAIN_TIMEOUT_MS / 1_000}s }
`);
    adminPort = gateway.adminPort;
    await waitFor(async () => (await workers()).every((worker) => worker.state === 'listening'), { timeoutMs: 30_000, message: 'both workers to listen' });
  }, 60_000);

  afterAll(async () => {
    killStillRunning(tree);
    await gateway?.process.kill();
    await backend?.process.kill();
  });

  it('leaves no worker behind, and each finishes the requests it was serving before it exits', async () => {
    // Held requests on fresh connections until both workers serve at least one.
    const held: Promise<{ status: number; body: string }>[] = [];
    await waitFor(async () => {
      // A cut answer becomes a status 0 and its error, for the comparison below to show.
      held.push(getFresh(`${gateway.url}/stream/held-${held.length}`).catch((error: Error) => ({ status: 0, body: error.message })));
      const view = await waitFor(async () => {
        const now = await workers();
        return now.reduce((sum, worker) => sum + worker.inFlight, 0) === held.length ? now : undefined;
      }, { timeoutMs: 10_000, message: 'the held request to be in flight' });
      return view.every((worker) => worker.inFlight >= 1);
    }, { timeoutMs: 30_000, message: 'a held request on each worker' });
    tree = descendantsOf(gateway.process.pid!).filter((record) => record.command.includes('switchboard'));
    expect(tree).toHaveLength(2);

    process.kill(gateway.process.pid!, 'SIGKILL');
    // node:cluster's primary held the listening socket: no new connection is taken from here on.
    await waitFor(async () => !(await acceptsConnections(gateway.port)), { timeoutMs: 5_000, message: 'the entry point to stop accepting' });
    // Each worker saw its primary go and drains: no answer it had started is cut.
    await waitFor(async () => (await logOf(gateway.process)).split('\n').filter((line) => line.includes('the primary went away; draining')).length === 2, {
      timeoutMs: 5_000,
      message: 'both workers to say they drain',
    });
    expect(stillRunning(tree)).toHaveLength(2);
    for (let index = 0; index < held.length; index += 1) await fetch(`http://127.0.0.1:${backend.port}/release/held-${index}`, { method: 'POST' });
    for (const answer of await Promise.all(held)) expect(answer).toEqual({ status: 200, body: 'first a\nsecond\n' });
    // Then they exit by themselves, well within the drain bound: no orphan keeps serving a stale configuration.
    await waitFor(() => stillRunning(tree).length === 0, { timeoutMs: DRAIN_TIMEOUT_MS, message: 'every worker to exit' });
  });
});
