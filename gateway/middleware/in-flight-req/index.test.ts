import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/harness/wait.ts';
import type { GatewayContext } from '../../context.ts';
import { fakeProxy, serveMiddleware, type MiddlewareServer, type TestResponse } from '../middleware-testing.ts';
import { inFlightReq } from './index.ts';

/** A proxy that holds each request until the test lets it go (`release(path)`), or fails it when its path says so. */
function heldProxy() {
  const answer = fakeProxy();
  const waiting = new Map<string, () => void>();
  return {
    waiting,
    release(path: string) {
      waiting.get(path)!();
      waiting.delete(path);
    },
    async proxy(context: GatewayContext): Promise<void> {
      const path = context.upstream.path;
      await new Promise<void>((resolve) => waiting.set(path, resolve));
      if (path.startsWith('/fail')) throw new Error('the inner chain failed');
      await answer(context);
    },
  };
}

describe('inFlightReq', () => {
  let server: MiddlewareServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers 429 in-flight-limit past amount per key, at once, and lets the next in once one has finished', async () => {
    const held = heldProxy();
    server = await serveMiddleware([inFlightReq({ amount: 2, key: { from: 'header', name: 'x-tenant' }, ipv6Subnet: 64 })], (context) => held.proxy(context));
    const tenant = (name: string) => ({ headers: { 'x-tenant': name } });
    const first = server.send('/a1', tenant('a'));
    const second = server.send('/a2', tenant('a'));
    await waitFor(() => held.waiting.size === 2, { timeoutMs: 5_000, message: 'two requests of tenant a in flight' });
    const refused = await server.send('/a3', tenant('a'));
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body.toString())).toMatchObject({ error: 'in-flight-limit', status: 429 });
    expect(held.waiting.has('/a3')).toBe(false);
    // Another key has its own count.
    const other = server.send('/b1', tenant('b'));
    await waitFor(() => held.waiting.has('/b1'), { timeoutMs: 5_000, message: "tenant b's request in flight" });
    held.release('/a1');
    expect((await first).status).toBe(200);
    const third = server.send('/a4', tenant('a'));
    await waitFor(() => held.waiting.has('/a4'), { timeoutMs: 5_000, message: 'a third request of tenant a let in once one finished' });
    for (const path of ['/a2', '/a4', '/b1']) held.release(path);
    const answers: TestResponse[] = await Promise.all([second, third, other]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    expect(server.contexts.find((context) => context.upstream.path === '/a3')?.outcome).toMatchObject({ status: 429, errorClass: 'in-flight-limit' });
  });

  it('frees the slot of a request whose inner chain failed', async () => {
    const held = heldProxy();
    server = await serveMiddleware([inFlightReq({ amount: 1, key: { from: 'client-ip' }, ipv6Subnet: 64 })], (context) => held.proxy(context));
    const failed = server.send('/fail');
    await waitFor(() => held.waiting.has('/fail'), { timeoutMs: 5_000, message: 'the failing request in flight' });
    expect((await server.send('/refused')).status).toBe(429);
    held.release('/fail');
    expect((await failed).status).toBe(500);
    const next = server.send('/next');
    await waitFor(() => held.waiting.has('/next'), { timeoutMs: 5_000, message: 'the next request let in' });
    held.release('/next');
    expect((await next).status).toBe(200);
  });
});
