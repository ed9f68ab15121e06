import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BehaviorSubject } from 'rxjs';
import { createServiceBalancer } from '../../src/balance/index.ts';
import type { PickedEndpoint, Picker } from '../../src/balance/picker.ts';
import type { InstanceProtocol } from '../../src/discovery/instance.ts';
import type { ServiceConf } from '../../src/discovery/load-balance-conf.ts';
import type { HealthSnapshot } from '../../src/health/index.ts';
import type { UpstreamOutcome } from '../../src/health/upstream-outcome.ts';
import type { GatewayContext } from '../context.ts';
import { initialContext } from '../middleware/middleware-testing.ts';
import { UpstreamTransports } from '../transports/index.ts';
import { createProxy, type AttemptObserver, type ProxyPolicy } from './proxy.ts';

/** For tests: one attempt, no retries, 2 s headers and body timeouts, 1 s to connect, default TLS (verified, system roots, no serverName). */
export const TEST_PROXY_POLICY: ProxyPolicy = {
  retries: 0,
  retryOn: [],
  headersTimeoutMs: 2_000,
  bodyTimeoutMs: 2_000,
  connection: { connectTimeoutMs: 1_000, tls: { ca: undefined, cert: undefined, key: undefined, serverName: undefined, verify: true }, key: 'test' },
  sticky: undefined,
};

/** For tests: a gRPC-Web frame, the flag byte (0x80 for trailers), 4-byte big-endian length, then `payload` (a string as UTF-8). */
export function grpcWebFrame(flags: number, payload: Buffer | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([prefix, bytes]);
}

/** For tests: `picker`, with every outcome reported to one of its picks also pushed to `reports` on its way to the balancer. */
function recordingPicker(picker: Picker, reports: UpstreamOutcome[]): Picker {
  return {
    pick: (pickContext) => {
      const pick = picker.pick(pickContext);
      if (pick.kind === 'none') return pick;
      const recorded: PickedEndpoint = { kind: 'endpoint', instance: pick.instance, address: pick.address, done: (outcome) => (reports.push(outcome), pick.done(outcome)), answered: (latencyMs) => pick.answered(latencyMs), hold: () => pick.hold() };
      return recorded;
    },
    peek: (pickContext) => picker.peek(pickContext),
  };
}

/**
 * For tests: a real balancer of service `svc` whose one instance speaks `protocol` on 127.0.0.1:`port`,
 * by `algorithm`, with outlier detection ejecting at one failure. `picker` is the balancer's, keeping
 * every outcome reported to a pick in `reports` on its way (`recordingPicker`); `ejected` tells
 * whether the instance is ejected now.
 */
export function singleInstanceBalancer(protocol: InstanceProtocol, port: number, algorithm: 'round-robin' | 'least-connections' | 'p2c-ewma') {
  const instance = { id: 'only', service: 'svc', host: '127.0.0.1', port, weight: 1, protocol, metadata: {} };
  const conf$ = new BehaviorSubject<ServiceConf>({ service: 'svc', instances: [instance], sources: new Map(), version: 1 });
  const balancer = createServiceBalancer(
    { service: 'svc', conf$ },
    { balancer: { algorithm }, health: { outlier: { consecutiveErrors: 1, maxEjectionPercent: 100, baseEjectionMs: 60_000 }, panicThresholdPercent: 0 } },
  );
  let health: HealthSnapshot | undefined;
  const watch = balancer.health.endpoints$.subscribe((snapshot) => (health = snapshot));
  const reports: UpstreamOutcome[] = [];
  return {
    picker: recordingPicker(balancer.picker, reports),
    reports,
    ejected: () => health?.endpoints[0]?.ejected,
    close: () => {
      watch.unsubscribe();
      balancer.close();
    },
  };
}

/** What `testGateway` builds its gateway of. */
export interface TestGatewayOptions {
  readonly protocol: InstanceProtocol;
  readonly port: number;
  readonly algorithm: 'round-robin' | 'least-connections' | 'p2c-ewma';
  readonly policy: ProxyPolicy;
  readonly observer?: AttemptObserver;
  /** Edits each request's context before the proxy, as a middleware would. */
  readonly prepare?: (context: GatewayContext) => void;
  /** Told of each request once its attempt loop has ended. */
  readonly finished?: (context: GatewayContext) => void;
}

/**
 * For tests: a gateway (an HTTP/1.1 listener on port 0) whose every request goes to service `svc`
 * through the real proxy with `options.policy`, real transports and `singleInstanceBalancer`;
 * `close` takes it all down, the transports' connections cut at once.
 */
export async function testGateway(options: TestGatewayOptions) {
  const transports = new UpstreamTransports();
  const balancer = singleInstanceBalancer(options.protocol, options.port, options.algorithm);
  const { policy, observer, prepare, finished } = options;
  const proxy = createProxy({ pickerFor: () => balancer.picker, policyFor: () => policy, transports, ...(observer ? { observer } : {}) });
  const server = createServer((request, response) => {
    const context = initialContext(request, response);
    context.service = 'svc';
    prepare?.(context);
    void proxy(context).then(() => finished?.(context));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    reports: balancer.reports,
    ejected: balancer.ejected,
    transports,
    close: async () => {
      balancer.close();
      await transports.close(0);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** For tests: a server that runs every request through `proxy` as service `svc`; `attempts` collects each finished request's attempt count. */
export async function serveProxy(proxy: (context: GatewayContext) => Promise<void>, prepare: (context: GatewayContext) => void = () => undefined): Promise<{ port: number; attempts: number[]; close: () => Promise<void> }> {
  const attempts: number[] = [];
  const server = createServer((request, response) => {
    const context = initialContext(request, response);
    context.service = 'svc';
    prepare(context);
    void proxy(context).then(() => attempts.push(context.outcome.attempts));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, attempts, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
