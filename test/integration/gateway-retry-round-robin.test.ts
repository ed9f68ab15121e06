// A round-robin retry goes to an instance the request has not tried, wherever other requests left
// the cursor: once a request had tried four instances in a row from the cursor, the cursor led
// every pick of its retry's search (four in all) back to them, and the retry repeated one while an
// untried instance remained.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, sendRequest, startGateway, waitFor, type GatewayProcess, type HttpAnswer } from '../harness/index.ts';

/** A request of `/held` that an instance holds until the test resets it: which instance, and its connection. */
interface HeldRequest {
  readonly instance: string;
  readonly socket: Socket;
}

describe('round-robin retries', () => {
  const servers: Server[] = [];
  const held: HeldRequest[] = [];
  const resetters: string[] = [];
  let gateway: GatewayProcess;

  const listen = async (server: Server): Promise<string> => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  beforeAll(async () => {
    const healthy = await listen(createServer((_request, response) => response.end('healthy')));
    // Five instances that reset every request before answering (a retryable failure, `reset`):
    // `/held` once the test says so, so that it can move the cursor while the attempt is out; any other at once.
    for (let index = 0; index < 5; index += 1) {
      const server = createServer((request) => {
        if (request.url === '/held') held.push({ instance: resetters[index]!, socket: request.socket });
        else request.socket.destroy();
      });
      resetters.push(await listen(server));
    }
    gateway = await startGateway(`
entryPoints:
  web: { listen: "127.0.0.1:{{port}}" }
services:
  six:
    instances: ["${healthy}", "${resetters.join('", "')}"]
    balancer: round-robin
    healthCheck: false
    outlierDetection: false
    retryBudget: false
    retries: { attempts: 6 }
routes:
  - { path: /held, service: six }
  - { path: /, service: six, retries: false }
`);
  });

  afterAll(async () => {
    await gateway?.process.stop();
    for (const { socket } of held) socket.destroy();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('sends a retry to an untried instance when the cursor stands on four the request tried, and reaches the healthy one', async () => {
    // One attempt each (retries: false): a 200 comes from the healthy instance, and the cursor then stands on the instance after it.
    await waitFor(async () => (await sendRequest(gateway.port, '/one')).status === 200, { timeoutMs: 10_000, message: 'a request of one attempt answered by the healthy instance' });
    let answer: HttpAnswer | undefined;
    const answered = sendRequest(gateway.port, '/held').then((result) => (answer = result));
    const visited: string[] = [];
    for (;;) {
      const next = await waitFor(() => answer ?? held.shift(), { timeoutMs: 10_000, message: `the next attempt of /held after ${visited.join(', ')}` }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
      });
      if (!('socket' in next)) break;
      visited.push(next.instance);
      if (visited.length === 4) {
        // The request tried the four instances after the healthy one in turn, and the cursor stands
        // on the fifth: requests of one attempt move it past that one and the healthy one, back
        // onto the first the request tried.
        expect((await sendRequest(gateway.port, '/one')).status).toBe(502);
        expect((await sendRequest(gateway.port, '/one')).status).toBe(200);
      }
      next.socket.destroy();
    }
    await answered;
    // Every resetting instance once, none repeated while another was untried, then the healthy one.
    expect(visited).toHaveLength(5);
    expect(new Set(visited).size).toBe(5);
    expect(answer).toMatchObject({ status: 200, body: 'healthy' });
  });
});
