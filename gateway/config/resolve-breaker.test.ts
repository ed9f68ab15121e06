import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { DEFAULT_CIRCUIT_BREAKER, DEFAULT_RETRY_BUDGET } from './resolve-breaker.ts';

const parse = (text: string) => parseConfig('gateway.yaml', text, { readFiles: false });

describe('circuitBreaker, concurrency and retryBudget', () => {
  it('leaves breakers off, caps unset and the retry budget on by default', () => {
    const config = parse('services: { api: {} }');
    const api = config.services.get('api')!;
    expect(api.circuitBreaker).toBe(false);
    expect(api.concurrency.maxRequests).toBeUndefined();
    expect(api.retryBudget).toEqual(DEFAULT_RETRY_BUDGET);
  });

  it('merges a service breaker over defaults, reads both fallback forms, and lets a route have its own or none', () => {
    const config = parse(`
defaults: { circuitBreaker: { requestVolumeThreshold: 5 } }
services:
  api: { circuitBreaker: { sleepWindow: 2s, failureStatuses: [429, "502-504"], fallback: { status: 200, body: cached } } }
  other: { circuitBreaker: { fallback: { service: api } }, concurrency: { maxRequests: 10, maxActiveRetries: 2 }, retryBudget: false }
routes:
  - { path: /a, service: api, circuitBreaker: { timeout: 300ms } }
  - { path: /b, service: api, circuitBreaker: false }
`);
    expect(config.services.get('api')!.circuitBreaker).toMatchObject({ requestVolumeThreshold: 5, sleepWindowMs: 2_000, failureStatuses: [429, { from: 502, to: 504 }], fallback: { kind: 'static', status: 200, body: 'cached', headers: {} } });
    expect(config.services.get('other')!.circuitBreaker).toMatchObject({ fallback: { kind: 'service', service: 'api' } });
    expect(config.services.get('other')!.concurrency).toMatchObject({ maxRequests: 10, maxActiveRetries: 2, maxPendingRequests: 0 });
    expect(config.services.get('other')!.retryBudget).toBe(false);
    expect(config.routes[0]!.circuitBreaker).toEqual({ ...(config.services.get('api')!.circuitBreaker as object), timeoutMs: 300 });
    expect(config.routes[1]!.circuitBreaker).toBe(false);
  });

  it("merges a route's breaker over its service's breaker, or over the defaults' when the service is not declared", () => {
    const config = parse(`
defaults: { circuitBreaker: { requestVolumeThreshold: 7 } }
services:
  api: { circuitBreaker: { errorPercentThreshold: 25, sleepWindow: 9s, fallback: { service: lite } } }
  bare: { circuitBreaker: false }
  lite: {}
routes:
  - { path: /api, service: api, circuitBreaker: { sleepWindow: 30s } }
  - { path: /bare, service: bare, circuitBreaker: { halfOpenRequests: 3 } }
  - { path: /found, service: discovered, circuitBreaker: { buckets: 5 } }
`);
    expect(config.routes[0]!.circuitBreaker).toEqual({ ...DEFAULT_CIRCUIT_BREAKER, requestVolumeThreshold: 7, errorPercentThreshold: 25, sleepWindowMs: 30_000, fallback: { kind: 'service', service: 'lite' } });
    // A service whose breaker is off gives the route Hystrix's defaults to start from.
    expect(config.routes[1]!.circuitBreaker).toEqual({ ...DEFAULT_CIRCUIT_BREAKER, halfOpenRequests: 3 });
    // A service known only from a registry has the `defaults` settings.
    expect(config.routes[2]!.circuitBreaker).toEqual({ ...DEFAULT_CIRCUIT_BREAKER, requestVolumeThreshold: 7, buckets: 5 });
  });

  it.each([
    ['services: { api: { circuitBreaker: { errorPercentThreshold: 0 } } }', 'services.api.circuitBreaker'],
    ['services: { api: { circuitBreaker: { fallback: { status: 200, service: x } } } }', 'services.api.circuitBreaker.fallback'],
    // Sent beside the gateway's own framing, it cut the body short (or sent both, which RFC 9112 forbids).
    ['services: { api: { circuitBreaker: { fallback: { status: 200, headers: { Content-Length: 3 }, body: abcdef } } } }', 'services.api.circuitBreaker.fallback.headers (line 1): cannot set content-length: the gateway frames the body itself'],
    ['services: { api: { circuitBreaker: { fallback: { status: 200, headers: { transfer-encoding: chunked } } } } }', 'services.api.circuitBreaker.fallback.headers (line 1): cannot set transfer-encoding'],
    // A 1xx as the answer leaves the client waiting for the real one; a body after a 204 or 304 is read as the next answer.
    ['services: { api: { circuitBreaker: { fallback: { status: 100 } } } }', 'services.api.circuitBreaker.fallback.status (line 1): expected a final status from 200 to 599'],
    ['services: { api: { circuitBreaker: { fallback: { status: 101 } } } }', 'services.api.circuitBreaker.fallback.status (line 1): expected a final status from 200 to 599'],
    ['services: { api: { circuitBreaker: { fallback: { status: 204, body: gone } } } }', 'services.api.circuitBreaker.fallback.body (line 1): a 204 answer has no body (RFC 9110)'],
    ['services: { api: { circuitBreaker: { fallback: { status: 304, body: same } } } }', 'services.api.circuitBreaker.fallback.body (line 1): a 304 answer has no body (RFC 9110)'],
    ['services: { api: { concurrency: { maxRequests: 0 } } }', 'services.api.concurrency.maxRequests'],
    ['services: { api: { retryBudget: { percent: 120 } } }', 'services.api.retryBudget'],
    ['routes: [{ path: /x, namespace: true, circuitBreaker: {} }]', 'routes.0.circuitBreaker'],
  ])('refuses %s and names where', (text, where) => {
    expect(() => parse(text)).toThrow(where);
  });

  // A union of two object shapes is judged by the shape that knows the keys given, so the message
  // says what is wrong with them (once `{ service }` answered: unknown field "status" (did you mean "status"?)).
  it.each([
    ['{ status: x }', 'fallback.status (line 1): expected a final status from 200 to 599 (1xx are interim answers, never the answer itself)'],
    ['{ status: 200, bdy: x }', 'fallback.bdy (line 1): unknown field "bdy" (did you mean "body"?)'],
    // Neither shape fits better, but a key neither knows is one letter off one they do.
    ['{ servce: a }', 'fallback.servce (line 1): unknown field "servce" (did you mean "service"?)'],
    ['{ stauts: 200 }', 'fallback.stauts (line 1): unknown field "stauts" (did you mean "status"?)'],
    ['{ nothing: 1 }', 'fallback (line 1): expected { status, headers?, body? } or { service }'],
    // They tie for the two shapes' keys side by side, not for the near miss of one that is there already.
    ['{ status: 200, service: x, statuss: 1 }', 'fallback (line 1): expected { status, headers?, body? } or { service }'],
    ['{ status: 200, headers: { "bad name": x } }', 'fallback.headers.bad name (line 1): "bad name" is not a valid header name (RFC 9110 §5.1: letters, digits and !#$%&\'*+-.^_`|~ only, no spaces or ":")'],
    ['{ service: 1 }', 'fallback.service (line 1): expected string, received number'],
    ['{ status: 200, service: x }', 'fallback (line 1): expected { status, headers?, body? } or { service }'],
    ['{}', 'fallback (line 1): expected { status, headers?, body? } or { service }'],
    ['{ service: y, status: x, body: z }', 'fallback.status (line 1): field "status" does not go with the fields beside it; services.api.circuitBreaker.fallback.body (line 1): field "body" does not go with the fields beside it'],
  ])('refuses the fallback %s saying what is wrong with it', (fallback, expected) => {
    expect(() => parse(`services: { api: { circuitBreaker: { fallback: ${fallback} } } }`)).toThrow(`gateway.yaml: services.api.circuitBreaker.${expected}`);
  });
});
