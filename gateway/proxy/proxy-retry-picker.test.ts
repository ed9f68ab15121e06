import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createBalancer, type Balancer, type BalancerEndpoint } from '../../src/balance/index.ts';
import type { PickedEndpoint } from '../../src/balance/picker.ts';
import type { GatewayContext } from '../context.ts';
import { MUST_WAIT, type RequestGuard } from '../policy/service-guard.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import type { AttemptReceiver, UpstreamTransports } from '../transports/index.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { createProxy } from './proxy.ts';
import { TEST_PROXY_POLICY } from './proxy-testing.ts';

function endpoint(id: string): BalancerEndpoint {
  return { address: id, instance: { id, service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'http', metadata: {} }, routable: true };
}

/**
 * A proxy over `current()`'s picker whose transport refuses `a` (a retryable failure), answers 200
 * from the others, and runs `during` while the attempt on `a` is out, before it reports.
 */
async function retryAcross(current: () => Balancer, during: () => void, guard?: RequestGuard): Promise<{ status: number; upstream: string | undefined; attempts: number }> {
  const transport = {
    attemptThen(context: GatewayContext, pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
      if (pick.address === 'a') {
        during();
        return receiver.attemptEnded({ ok: false, errorClass: 'connect-refused', responseStarted: false, error: new Error('refused') });
      }
      context.outcome.status = 200;
      context.response.end('answered');
      // Held open until the test reads the loads, as a request still streaming its answer.
      held.push(pick);
      receiver.attemptEnded({ ok: true });
    },
  };
  const held: PickedEndpoint[] = [];
  const proxy = createProxy({
    pickerFor: () => current().picker,
    policyFor: () => ({ ...TEST_PROXY_POLICY, retries: 1, retryOn: ['connect-failure'] }),
    transports: { get: () => transport } as unknown as UpstreamTransports,
    ...(guard ? { guards: { guardFor: () => guard } } : {}),
  });
  const contexts: GatewayContext[] = [];
  const ended: GatewayContext[] = [];
  const server = createServer((request, response) => {
    const context = initialContext(request, response);
    context.service = 'svc';
    contexts.push(context);
    void proxy(context).then(() => ended.push(context));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const result = await sendTestRequest((server.address() as AddressInfo).port, '/');
    await waitFor(() => ended.length === 1);
    return { status: result.status, upstream: contexts[0]!.outcome.upstream, attempts: contexts[0]!.outcome.attempts };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('a retry picks from the host set in force when it is made, not the one its request started with', () => {
  it('never sends the retry to an instance discovery removed while the first attempt was out, and the retry loads a live member', async () => {
    const balancer = createBalancer({ algorithm: 'least-connections' });
    balancer.update([endpoint('a'), endpoint('b'), endpoint('c')]);
    // While the attempt on a is out, b leaves the registry (no pick on it in flight, so the balancer lets it go).
    const result = await retryAcross(() => balancer, () => void balancer.update([endpoint('a'), endpoint('c')]));
    // The picker the request started with would choose b, the least loaded untried member it still lists.
    expect(result).toEqual({ status: 200, upstream: 'c', attempts: 2 });
    expect(balancer.member('b')).toBeUndefined();
    expect(balancer.member('c')?.inFlight).toBe(1);
  });

  it('sends the retry through the balancer that a reload put in place of the one its request started with', async () => {
    const before = createBalancer({ algorithm: 'least-connections' });
    before.update([endpoint('a'), endpoint('b')]);
    const after = createBalancer({ algorithm: 'least-connections' });
    after.update([endpoint('a'), endpoint('c')]);
    let current = before;
    const result = await retryAcross(() => current, () => (current = after));
    expect(result).toEqual({ status: 200, upstream: 'c', attempts: 2 });
    expect(after.member('c')?.inFlight).toBe(1);
    expect(before.member('b')?.inFlight).toBe(0);
  });

  it('makes the first pick of a request that waited for a concurrency slot from the host set in force when the slot came', async () => {
    const balancer = createBalancer({ algorithm: 'least-connections' });
    balancer.update([endpoint('a'), endpoint('b')]);
    let entries = 0;
    const guard = {
      slot: undefined,
      enter: () => (entries++ === 0 ? MUST_WAIT : 1),
      // While the request waits, a leaves the registry.
      waitForSlot: () => (balancer.update([endpoint('b')]), Promise.resolve(true)),
      judges: () => true,
      record: () => undefined,
      mayRetry: () => true,
      retryEnded: () => undefined,
      leave: () => undefined,
    } as unknown as RequestGuard;
    // a would be refused and retried: a first pick from the picker read before the wait ends on a after all.
    const result = await retryAcross(() => balancer, () => undefined, guard);
    expect(result).toEqual({ status: 200, upstream: 'b', attempts: 1 });
    expect(balancer.member('a')).toBeUndefined();
  });
});

describe('a retry after a connect timeout', () => {
  /**
   * Sends `requests` requests through a proxy over `balancer` whose transport leaves `a`'s connect
   * unanswered (connect-timeout) and refuses every other instance's (connect-refused), three
   * attempts each; returns, per request, the instances its attempts went to.
   */
  async function attemptsOf(balancer: Balancer, requests: number): Promise<string[][]> {
    const sent: string[][] = [];
    let current: string[] = [];
    const transport = {
      attemptThen(_context: GatewayContext, pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        current.push(pick.address);
        const errorClass = pick.address === 'a' ? 'connect-timeout' : 'connect-refused';
        pick.done({ ok: false, latencyMs: 1, errorClass });
        receiver.attemptEnded({ ok: false, errorClass, responseStarted: false, error: new Error(errorClass) });
      },
    };
    const proxy = createProxy({
      pickerFor: () => balancer.picker,
      policyFor: () => ({ ...TEST_PROXY_POLICY, retries: 2, retryOn: ['connect-failure'] }),
      transports: { get: () => transport } as unknown as UpstreamTransports,
    });
    const ended: GatewayContext[] = [];
    const server = createServer((request, response) => {
      const context = initialContext(request, response);
      context.service = 'svc';
      void proxy(context).then(() => ended.push(context));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      for (let request = 0; request < requests; request += 1) {
        current = [];
        await sendTestRequest((server.address() as AddressInfo).port, '/');
        await waitFor(() => ended.length === request + 1);
        sent.push(current);
      }
      return sent;
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it.each(['round-robin', 'least-connections', 'random', 'weighted-round-robin', 'p2c-ewma'] as const)(
    'repeats on a refusing instance rather than end the request when every instance was tried and one timed out (%s)',
    async (algorithm) => {
      // Round-robin's cursor starts at random, and only a request that starts on b can end on a (from
      // a, each request makes an even number of picks and the next starts on a again): the first starts on b.
      const balancer = createBalancer({ algorithm }, algorithm === 'round-robin' ? { random: () => 0.5 } : {});
      balancer.update([endpoint('a'), endpoint('b')]);
      for (const attempts of await attemptsOf(balancer, 20)) {
        // a at most once, and every attempt made: the third never given up on a.
        expect(attempts.filter((address) => address === 'a')).toHaveLength(1);
        expect(attempts).toHaveLength(3);
      }
    },
  );
});
