import { describe, expect, it } from 'vitest';
import type { PickedEndpoint, Picker } from '../../src/balance/picker.ts';
import { parseConfig } from '../config/index.ts';
import type { GatewayContext } from '../context.ts';
import { sendTestRequest } from '../middleware/middleware-testing.ts';
import { TrafficGuards } from '../policy/traffic-guards.ts';
import type { AttemptReceiver, UpstreamTransports } from '../transports/index.ts';
import { createProxy } from './proxy.ts';
import { serveProxy, TEST_PROXY_POLICY } from './proxy-testing.ts';
import type { GatewayErrorClass } from './upstream-error.ts';
import { waitFor } from '../../test/harness/wait.ts';

const endpoint = (address: string): PickedEndpoint => ({
  kind: 'endpoint',
  instance: { id: address, service: 'svc', host: '127.0.0.1', port: 1, weight: 1, protocol: 'h2c', metadata: {} },
  address,
  done: () => undefined,
  answered: () => undefined,
  hold: () => () => undefined,
});

describe('the breaker hears one verdict per request, its last attempt the upstream answered for (scripted fakes, real guards)', () => {
  it.each([
    { name: 'a request retried to success is one call and no failure', script: ['connect-refused', 'reset-before-headers', 200], status: 200, figures: { requests: 1, failures: 0 } },
    { name: 'a request whose every attempt failed is one call and one failure', script: ['connect-refused', 'reset-before-headers', 'connect-refused'], status: 502, figures: { requests: 1, failures: 1 } },
    { name: 'a retry answered with a failure status is one failure', script: ['connect-refused', 503], status: 503, figures: { requests: 1, failures: 1 } },
    { name: 'a refusal its retry met again (repeated-refusal, no verdict) leaves the first refusal as the verdict', script: ['upstream-refused', 'upstream-refused'], status: 502, figures: { requests: 1, failures: 1 } },
  ] as const)('$name', async ({ script, status, figures }) => {
    const config = parseConfig('gateway.yaml', 'services: { svc: { circuitBreaker: { requestVolumeThreshold: 100 } } }\nroutes:\n  - { name: api, path: /api, service: svc }\n', { readFiles: false });
    const route = config.routes[0]!;
    const guards = new TrafficGuards(config);
    let turn = 0;
    const picker: Picker = { pick: () => endpoint(`instance-${turn++}`), peek: () => endpoint('instance-0') };
    let attempt = 0;
    const transport = {
      attemptThen(context: GatewayContext, _pick: PickedEndpoint, _timeouts: unknown, _body: unknown, receiver: AttemptReceiver) {
        const step = script[attempt++]!;
        if (typeof step === 'string') return receiver.attemptEnded({ ok: false, errorClass: step as GatewayErrorClass, responseStarted: false, error: new Error(step) });
        context.outcome.status = step;
        context.response.writeHead(step).end('answered');
        receiver.attemptEnded({ ok: true });
      },
    };
    const proxy = createProxy({
      pickerFor: () => picker,
      policyFor: () => ({ ...TEST_PROXY_POLICY, retries: script.length - 1, retryOn: ['connect-failure', 'reset'] }),
      transports: { get: () => transport } as unknown as UpstreamTransports,
      guards,
    });
    const { port, attempts, close } = await serveProxy(proxy, (context) => (context.route = route));
    try {
      expect((await sendTestRequest(port, '/api')).status).toBe(status);
      await waitFor(() => attempts.length === 1);
      expect(attempts).toEqual([script.length]);
      expect(guards.guardFor('svc', route).slot!.breaker.figures(performance.now())).toEqual(figures);
    } finally {
      await close();
    }
  });
});
