import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { BehaviorSubject } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceBalancer, type ServiceBalancer } from '../../src/balance/index.ts';
import type { Instance, InstanceProtocol } from '../../src/discovery/instance.ts';
import type { ServiceConf } from '../../src/discovery/load-balance-conf.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import { isUpstreamFailure, type UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import { parseConfig } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import { accessLogText } from '../middleware/access-log/index.ts';
import { initialContext, sendTestRequest } from '../middleware/middleware-testing.ts';
import { nonePicker, type PickedEndpoint, type Picker } from '../../src/balance/picker.ts';
import type { RequestGuard } from '../policy/service-guard.ts';
import { TrafficGuards } from '../policy/traffic-guards.ts';
import { UpstreamTransports, type AttemptReceiver } from '../transports/index.ts';
import { refusingPort } from '../../test/harness/ports.ts';
import { waitFor } from '../../test/harness/wait.ts';
import { createProxy, type ProxyPolicy } from './proxy.ts';
import { serveProxy, TEST_PROXY_POLICY } from './proxy-testing.ts';

const listen = async (server: Server | Http2Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/** Answers 200 on every path except `/reset`, where it drops the connection without answering. */
const answer = (request: { url?: string; socket: { destroy(): void }; resume(): void }, response: { end(body: string): void }) => {
  if (request.url === '/reset') return void request.socket.destroy();
  request.resume();
  response.end('upstream body');
};

describe('the attempt loop with a real balancer, outlier detection (consecutiveErrors 1) and real transports', () => {
  const transports = new UpstreamTransports();
  let http1: Server;
  let h2c: Http2Server;
  let ports: Record<'http' | 'h2c', number>;

  beforeAll(async () => {
    http1 = createServer(answer);
    h2c = createHttp2Server((request, response) => answer({ url: request.url, socket: { destroy: () => request.stream.close(2) }, resume: () => request.resume() }, response));
    ports = { http: await listen(http1), h2c: await listen(h2c) };
  });
  afterAll(async () => {
    await transports.close();
    await Promise.all([new Promise((resolve) => http1.close(resolve)), new Promise((resolve) => h2c.close(resolve))]);
  });

  /** A gateway for one service whose only instance speaks `protocol`; `prepare` edits each request's context. */
  async function gatewayFor(protocol: 'http' | 'h2c', prepare: (context: GatewayContext) => void) {
    const instance: Instance = { id: 'only', service: 'svc', host: '127.0.0.1', port: ports[protocol], weight: 1, protocol: protocol as InstanceProtocol, metadata: {} };
    const conf$ = new BehaviorSubject<ServiceConf>({ service: 'svc', instances: [instance], sources: new Map(), version: 1 });
    const balancer: ServiceBalancer = createServiceBalancer(
      { service: 'svc', conf$ },
      { balancer: { algorithm: 'round-robin' }, health: { outlier: { consecutiveErrors: 1, maxEjectionPercent: 100, baseEjectionMs: 60_000 }, panicThresholdPercent: 0 } },
    );
    const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => TEST_PROXY_POLICY, transports });
    const { port, close: stop } = await serveProxy(proxy, prepare);
    const get = (path: string) => sendTestRequest(port, path).then(({ status, body }) => ({ status, body: body.toString('utf8') }));
    let latest: HealthSnapshot | undefined;
    const watch = balancer.health.endpoints$.subscribe((snapshot) => (latest = snapshot));
    const ejected = () => latest?.endpoints[0]?.ejected;
    const close = async () => {
      watch.unsubscribe();
      balancer.close();
      await stop();
    };
    return { get, ejected, close };
  }

  it.each(['http', 'h2c'] as const)('answers 500 internal for a failed response transform over %s and never ejects the instance', async (protocol) => {
    const failing = (context: GatewayContext) =>
      context.responseBodyTransforms.push(() => {
        throw new Error('transform failed');
      });
    const gateway = await gatewayFor(protocol, failing);
    try {
      for (let index = 0; index < 3; index += 1) {
        const result = await gateway.get('/');
        expect(result.status).toBe(500);
        expect(JSON.parse(result.body)).toMatchObject({ error: 'internal', status: 500 });
      }
      expect(gateway.ejected()).toBe(false);
    } finally {
      await gateway.close();
    }
  });

  it.each(['http', 'h2c'] as const)('ejects the instance after one failure that is its own over %s (the control)', async (protocol) => {
    const gateway = await gatewayFor(protocol, () => undefined);
    try {
      expect((await gateway.get('/')).status).toBe(200);
      const failed = await gateway.get('/reset');
      expect(failed.status).toBe(502);
      expect(JSON.parse(failed.body)).toMatchObject({ error: 'reset-before-headers' });
      expect(gateway.ejected()).toBe(true);
    } finally {
      await gateway.close();
    }
  });
});

describe('retries prefer an instance not tried yet in the request', () => {
  const transports = new UpstreamTransports();
  let live: Server;
  let livePort: number;
  let closedPort: number;

  beforeAll(async () => {
    // Answers late, so that concurrent requests hold in-flight slots on it while others retry.
    live = createServer((request, response) => {
      request.resume();
      setTimeout(() => response.end('live'), 100);
    });
    livePort = await listen(live);
    // A port that refuses for the whole file: one bound and closed again could be offered to a later listen (the proxy's own,
    // which then forwarded to itself until least-connections timed out and round-robin never retried).
    closedPort = await refusingPort();
  });
  afterAll(async () => {
    await transports.close();
    await new Promise((resolve) => live.close(resolve));
  });

  it.each(['least-connections', 'round-robin', 'weighted-round-robin', 'random', 'p2c-ewma', 'consistent-hash'] as const)('every request succeeds with retries 1 and one refusing instance of two under %s', async (algorithm) => {
    const instances: Instance[] = [
      // The refusing one first: least-connections ties break towards it.
      { id: 'refusing', service: 'svc', host: '127.0.0.1', port: closedPort, weight: 1, protocol: 'http', metadata: {} },
      { id: 'live', service: 'svc', host: '127.0.0.1', port: livePort, weight: 1, protocol: 'http', metadata: {} },
    ];
    const conf$ = new BehaviorSubject<ServiceConf>({ service: 'svc', instances, sources: new Map(), version: 1 });
    const balancer =
      algorithm === 'consistent-hash'
        ? createServiceBalancer({ service: 'svc', conf$ }, { balancer: { algorithm, key: { from: 'header', name: 'x-user' } }, health: { outlier: false, panicThresholdPercent: 0 } })
        : createServiceBalancer({ service: 'svc', conf$ }, { balancer: { algorithm }, health: { outlier: false, panicThresholdPercent: 0 } });
    const policy: ProxyPolicy = { ...TEST_PROXY_POLICY, retries: 1, retryOn: ['connect-failure'] };
    const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => policy, transports });
    const { port, attempts, close } = await serveProxy(proxy);
    try {
      // Concurrent, so least-connections sees the live instance busy and the refusing one idle; hash keys vary, so some land on the refusing one
      // (the ring depends on the ports: with 12 keys, 4 pairs of random ports in 5,000 sent them all to the live one; with 32, none of the 5,000).
      const results = await Promise.all(Array.from({ length: 32 }, (_, index) => sendTestRequest(port, '/', { headers: { 'x-user': `user-${index}` } })));
      expect(results.map((result) => `${result.status} ${result.body.toString('utf8')}`)).toEqual(Array.from({ length: 32 }, () => '200 live'));
      // The control: the refusing instance was picked first at least once, so the retry was exercised.
      // Each count is pushed once proxy() has settled, which may come after its client has the answer.
      await waitFor(() => attempts.length === 32, { message: 'every request to settle in the proxy' });
      expect(attempts.filter((count) => count === 2).length).toBeGreaterThan(0);
    } finally {
      balancer.close();
      await close();
    }
  });
});

describe('the attempt loop with a transport that reports before attemptThen returns (scripted fakes)', () => {
  it('retries a dispatch that failed at once on the other instance, enters and leaves the guard once, and ends with no error class', async () => {
    const endpoint = (id: string): PickedEndpoint => ({
      kind: 'endpoint',
      instance: { id, service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'http', metadata: {} },
      address: id,
      done: () => undefined,
      answered: () => undefined,
      hold: () => () => undefined,
    });
    let turn = 0;
    const picker: Picker = { pick: () => endpoint(turn++ % 2 === 0 ? 'refusing' : 'answering'), peek: () => ({ kind: 'none', reason: 'no-instances' }) };
    const transport = {
      attemptThen(context: GatewayContext, pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        // Both report synchronously, from inside this call.
        if (pick.address === 'refusing') return receiver.attemptEnded({ ok: false, errorClass: 'connect-refused', responseStarted: false, error: new Error('refused') });
        context.outcome.status = 200;
        context.response.end('answered');
        receiver.attemptEnded({ ok: true });
      },
    };
    const calls: string[] = [];
    const guard = {
      slot: undefined,
      enter: () => (calls.push('enter'), 1),
      judges: () => true,
      record: () => undefined,
      mayRetry: () => (calls.push('mayRetry'), true),
      retryEnded: () => calls.push('retryEnded'),
      leave: () => calls.push('leave'),
    } as unknown as RequestGuard;
    const proxy = createProxy({
      pickerFor: () => picker,
      policyFor: () => ({ ...TEST_PROXY_POLICY, retries: 1, retryOn: ['connect-failure'] }),
      transports: { get: () => transport } as unknown as UpstreamTransports,
      guards: { guardFor: () => guard },
    });
    const contexts: GatewayContext[] = [];
    const { port, attempts, close } = await serveProxy(proxy, (context) => contexts.push(context));
    try {
      const result = await sendTestRequest(port, '/');
      expect(`${result.status} ${result.body.toString('utf8')}`).toBe('200 answered');
      await waitFor(() => attempts.length === 1);
      expect(attempts).toEqual([2]);
      expect(calls).toEqual(['enter', 'mayRetry', 'retryEnded', 'leave']);
      // Answered by the retry: the request has no error class (access log, span, flow statistics), its first attempt alone failed.
      expect(contexts[0]!.outcome).toMatchObject({ status: 200, attempts: 2, upstream: 'answering' });
      expect(contexts[0]!.outcome.errorClass).toBeUndefined();
      expect(accessLogText(contexts[0]!, false)).not.toContain('errorClass');
    } finally {
      await close();
    }
  });
});

describe('the attempt loop when the gateway fails between the pick and the transport (scripted fakes)', () => {
  it('rejects (the request runner answers 500) and gives the pick back as the gateway\'s own failure, so the instance keeps no request in flight', async () => {
    const outcomes: UpstreamOutcome[] = [];
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'http', metadata: {} }, address: 'a', done: (outcome) => void outcomes.push(outcome), answered: () => undefined, hold: () => () => undefined };
    const picker: Picker = { pick: () => pick, peek: () => ({ kind: 'none', reason: 'no-instances' }) };
    const transports = {
      get: () => {
        throw new TypeError('Invalid URL');
      },
    } as unknown as UpstreamTransports;
    const proxy = createProxy({ pickerFor: () => picker, policyFor: () => TEST_PROXY_POLICY, transports });
    const failures: unknown[] = [];
    const server = createServer((request, response) => {
      const context = initialContext(request, response);
      context.service = 'svc';
      void proxy(context).catch((error: unknown) => {
        failures.push(error);
        response.writeHead(500).end();
      });
    });
    try {
      expect((await sendTestRequest(await listen(server), '/')).status).toBe(500);
      expect(failures).toEqual([new TypeError('Invalid URL')]);
      expect(outcomes).toEqual([{ ok: false, latencyMs: 0, errorClass: 'internal' }]);
      expect(isUpstreamFailure(outcomes[0]!)).toBe(false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the attempt loop with a transport that still holds an unsent request after answering (scripted fakes)', () => {
  it.each(['resolves', 'rejects'] as const)('answers at once and keeps the concurrency slot until the transport lets go of the request (its release %s)', async (ending) => {
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'http', metadata: {} }, address: 'a', done: () => undefined, answered: () => undefined, hold: () => () => undefined };
    const picker: Picker = { pick: () => pick, peek: () => ({ kind: 'none', reason: 'no-instances' }) };
    let letGo!: () => void;
    const released = new Promise<void>((resolve, reject) => (letGo = ending === 'resolves' ? resolve : () => reject(new Error('reporting failed'))));
    const transport = {
      attemptThen(_context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        // The call's deadline passed while the request waited for a connection.
        receiver.attemptEnded({ ok: false, errorClass: 'deadline-exceeded', responseStarted: false, error: new Error('deadline'), released });
      },
    };
    const calls: string[] = [];
    const guard = { slot: undefined, enter: () => (calls.push('enter'), 1), judges: () => true, record: () => undefined, mayRetry: () => true, retryEnded: () => calls.push('retryEnded'), leave: () => calls.push('leave') } as unknown as RequestGuard;
    const proxy = createProxy({ pickerFor: () => picker, policyFor: () => TEST_PROXY_POLICY, transports: { get: () => transport } as unknown as UpstreamTransports, guards: { guardFor: () => guard } });
    const { port, attempts, close } = await serveProxy(proxy);
    try {
      expect((await sendTestRequest(port, '/')).status).toBe(504);
      await waitFor(() => attempts.length === 1);
      // Answered, but the request is still held: the slot is not given back yet.
      expect(calls).toEqual(['enter']);
      letGo();
      await waitFor(() => calls.length === 2, { timeoutMs: 5_000 });
      expect(calls).toEqual(['enter', 'leave']);
    } finally {
      await close();
    }
  });
});

describe('the attempt loop with a transport that drops a request unsent (scripted fakes)', () => {
  it.each([
    { name: 'dropped unsent (its deadline passed in the queue)', unsent: true, observed: [], status: 504 },
    { name: 'sent and timed out (the control)', unsent: false, observed: ['deadline-exceeded'], status: 504 },
  ])('tells the observer of no attempt for a request $name, and marks the outcome', async ({ unsent, observed, status }) => {
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'http', metadata: {} }, address: 'a', done: () => undefined, answered: () => undefined, hold: () => () => undefined };
    const picker: Picker = { pick: () => pick, peek: () => ({ kind: 'none', reason: 'no-instances' }) };
    const transport = {
      attemptThen(_context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        const error = new Error('deadline');
        receiver.attemptEnded(unsent ? { ok: false, errorClass: 'deadline-exceeded', responseStarted: false, error, unsent } : { ok: false, errorClass: 'deadline-exceeded', responseStarted: false, error });
      },
    };
    const seen: (string | undefined)[] = [];
    const outcomes: GatewayContext['outcome'][] = [];
    const proxy = createProxy({
      pickerFor: () => picker,
      policyFor: () => TEST_PROXY_POLICY,
      transports: { get: () => transport } as unknown as UpstreamTransports,
      observer: { attempt: (_service, _address, errorClass) => seen.push(errorClass), unavailable: () => undefined },
    });
    const { port, attempts, close } = await serveProxy(proxy, (context) => outcomes.push(context.outcome));
    try {
      expect((await sendTestRequest(port, '/')).status).toBe(status);
      await waitFor(() => attempts.length === 1);
      expect(seen).toEqual(observed);
      // The last instance tried stays in the outcome (the access log's `upstream`), marked unsent for the flow statistics' bytes.
      expect(outcomes[0]).toMatchObject({ upstream: 'a', attempts: 1, errorClass: 'deadline-exceeded' });
      expect(outcomes[0]!.unsent === true).toBe(unsent);
    } finally {
      await close();
    }
  });
});

describe("the attempt loop books an upstream's answer to a gRPC call by its grpc-status (scripted fakes)", () => {
  it.each([
    ['application/grpc', 14, 'grpc-error', 503],
    ['application/grpc', 13, 'grpc-error', 500],
    ['application/grpc', 8, undefined, 429],
    ['application/grpc', 5, undefined, 200],
    ['application/grpc', 4, undefined, 200],
    ['application/grpc', 0, undefined, 200],
    // Not a gRPC call: a stray grpc-status counts for nothing.
    ['application/json', 14, undefined, 200],
  ])('a %s answer with grpc-status %i reaches the observer as %s and the breaker as status %i, and is not retried', async (contentType, grpcStatus, attemptClass, status) => {
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'grpc', metadata: {} }, address: 'a', done: () => undefined, answered: () => undefined, hold: () => () => undefined };
    const picker: Picker = { pick: () => pick, peek: () => ({ kind: 'none', reason: 'no-instances' }) };
    let dispatched = 0;
    const transport = {
      attemptThen(context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        dispatched += 1;
        context.outcome.status = 200;
        context.outcome.grpcStatus = grpcStatus;
        context.response.end();
        receiver.attemptEnded({ ok: true });
      },
    };
    const recorded: [string | undefined, number][] = [];
    const observed: (string | undefined)[] = [];
    const guard = { slot: undefined, enter: () => 1, judges: () => true, record: (_now: number, errorClass: string | undefined, answered: number) => recorded.push([errorClass, answered]), mayRetry: () => true, retryEnded: () => undefined, leave: () => undefined } as unknown as RequestGuard;
    const proxy = createProxy({
      pickerFor: () => picker,
      policyFor: () => ({ ...TEST_PROXY_POLICY, retries: 2, retryOn: ['connect-failure', 'reset', 'headers-timeout'] }),
      transports: { get: () => transport } as unknown as UpstreamTransports,
      guards: { guardFor: () => guard },
      observer: { attempt: (_service, _address, errorClass) => observed.push(errorClass), unavailable: () => undefined },
    });
    const { port, attempts, close } = await serveProxy(proxy);
    try {
      expect((await sendTestRequest(port, '/test.Echo/Echo', { method: 'POST', headers: { 'content-type': contentType }, body: 'x' })).status).toBe(200);
      await waitFor(() => attempts.length === 1);
      expect({ dispatched, observed, recorded }).toEqual({ dispatched: 1, observed: [attemptClass], recorded: [[attemptClass, status]] });
    } finally {
      await close();
    }
  });
});

describe('the attempt loop blames one instance per request for a refusal the request may cause (scripted fakes)', () => {
  it('counts a reset at every attempt and the first refusal of each class, and books the same refusal again as repeated-refusal for the observer, while the client gets its own class', async () => {
    const failures = ['reset-before-headers', 'upstream-refused', 'upstream-refused', 'http2-protocol-error'] as const;
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'h2c', metadata: {} }, address: 'a', done: () => undefined, answered: () => undefined, hold: () => () => undefined };
    const picker: Picker = { pick: () => pick, peek: () => pick };
    // What each attempt's transport is told, before it reports its pick.
    const blamedBefore: (readonly string[] | undefined)[] = [];
    const transport = {
      attemptThen(context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        blamedBefore.push(context.outcome.refusalsBlamed);
        const errorClass = failures[blamedBefore.length - 1]!;
        receiver.attemptEnded({ ok: false, errorClass, responseStarted: false, error: new Error(errorClass) });
      },
    };
    const observed: (string | undefined)[] = [];
    const proxy = createProxy({
      pickerFor: () => picker,
      policyFor: () => ({ ...TEST_PROXY_POLICY, retries: 3, retryOn: ['connect-failure', 'reset'] }),
      transports: { get: () => transport } as unknown as UpstreamTransports,
      observer: { attempt: (_service, _address, errorClass) => observed.push(errorClass), unavailable: () => undefined },
    });
    const { port, attempts, close } = await serveProxy(proxy);
    try {
      const answer = await sendTestRequest(port, '/refused');
      expect([answer.status, JSON.parse(answer.body.toString('utf8')).error]).toEqual([502, 'http2-protocol-error']);
      await waitFor(() => attempts.length === 1);
      // The same refusal again counts against none; a refusal of the other class is the instance's.
      const booked = ['reset-before-headers', 'upstream-refused', 'repeated-refusal', 'http2-protocol-error'];
      const blamed = ['upstream-refused'];
      expect({ attempts, blamedBefore, observed }).toEqual({ attempts: [4], blamedBefore: [undefined, undefined, blamed, blamed], observed: booked });
    } finally {
      await close();
    }
  });
});

describe('the breaker admission of a request held in middleware before the proxy (a fault delay, forwardAuth)', () => {
  it("admits as the breaker's trial a request that arrived before the breaker opened but reaches the proxy after its sleep window", async () => {
    const config = parseConfig('gateway.yaml', 'services: { svc: { circuitBreaker: { requestVolumeThreshold: 2, sleepWindow: 100ms } } }\nroutes:\n  - { name: api, path: /api, service: svc }\n', { readFiles: false });
    const route = config.routes[0]!;
    const guards = new TrafficGuards(config);
    const guard = guards.guardFor('svc', route);
    // Opened 200 ms ago: its 100 ms sleep window is over, the next request is its trial.
    const openedAt = performance.now() - 200;
    for (let call = 0; call < 2; call += 1) {
      const admission = guard.enter(openedAt);
      guard.record(openedAt, 'connect-refused', 0, admission);
      guard.leave(admission, true);
    }
    expect(guard.slot!.breaker.state).toBe('open');
    const pick: PickedEndpoint = { kind: 'endpoint', instance: { id: 'a', service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'http', metadata: {} }, address: 'a', done: () => undefined, answered: () => undefined, hold: () => () => undefined };
    const transport = {
      attemptThen(context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        context.outcome.status = 200;
        context.response.end('answered');
        receiver.attemptEnded({ ok: true });
      },
    };
    const proxy = createProxy({
      pickerFor: () => ({ pick: () => pick, peek: () => pick }),
      policyFor: () => TEST_PROXY_POLICY,
      transports: { get: () => transport } as unknown as UpstreamTransports,
      guards,
    });
    const { port, close } = await serveProxy(proxy, (context) => {
      context.route = route;
      // It arrived 50 ms before the breaker opened, and was held in middleware since.
      (context as { startedAt: number }).startedAt = openedAt - 50;
    });
    try {
      const result = await sendTestRequest(port, '/api');
      expect(`${result.status} ${result.body.toString('utf8')}`).toBe('200 answered');
      // The trial succeeded: the breaker closed.
      expect(guard.slot!.breaker.state).toBe('closed');
    } finally {
      await close();
    }
  });
});

describe('the 503 no-instances answer while registries have not connected yet', () => {
  const ZK = 'zk:10.1.2.3:2181/services';
  it.each([
    { name: 'a declared service no registry has listed', picker: nonePicker('no-instances'), unconnected: [ZK], message: 'registry zookeeper not yet connected: no instance set loaded yet' },
    { name: 'a service only a route names', picker: undefined, unconnected: [ZK, 'etcd:10.1.2.4:2379/services'], message: 'registries zookeeper, etcd not yet connected: no instance set loaded yet' },
    { name: 'a service whose registries have connected (the control)', picker: nonePicker('no-instances'), unconnected: [], message: 'the service has no registered instances' },
    { name: 'an unknown service whose registries have connected (the control)', picker: undefined, unconnected: [], message: 'the service has no registered instances' },
  ])('says why for $name, keeping the class and status', async ({ picker, unconnected, message }) => {
    const asked: string[] = [];
    const proxy = createProxy({
      pickerFor: () => picker,
      policyFor: () => TEST_PROXY_POLICY,
      transports: new UpstreamTransports(),
      unconnectedRegistriesOf: (service) => (asked.push(service), unconnected),
    });
    const { port, close } = await serveProxy(proxy);
    try {
      const result = await sendTestRequest(port, '/api');
      expect(result.status).toBe(503);
      expect(JSON.parse(result.body.toString('utf8'))).toMatchObject({ error: 'no-instances', status: 503, service: 'svc', message });
      // The client learns the kind of registry, never its address.
      expect(result.body.toString('utf8')).not.toContain('10.1.2.');
      expect(asked).toEqual(['svc']);
    } finally {
      await close();
    }
  });

  it('leaves no-healthy-instances as it was, registries connected or not', async () => {
    const proxy = createProxy({ pickerFor: () => nonePicker('no-healthy-instances'), policyFor: () => TEST_PROXY_POLICY, transports: new UpstreamTransports(), unconnectedRegistriesOf: () => [ZK] });
    const { port, close } = await serveProxy(proxy);
    try {
      const result = await sendTestRequest(port, '/api');
      expect(JSON.parse(result.body.toString('utf8'))).toMatchObject({ error: 'no-healthy-instances', status: 503, message: 'no healthy upstream' });
    } finally {
      await close();
    }
  });
});
