import { describe, expect, it } from 'vitest';
import { errorOf } from './config-testing.ts';
import { parseConfig } from './load.ts';

describe('middlewares: fault', () => {
  it('resolves abort and delay with their defaults (percentage 100, a text body type) and keeps fractions', () => {
    const config = parseConfig(
      'gateway.yaml',
      `middlewares:
  both: { fault: { delay: { duration: 200ms, percentage: 50 }, abort: { status: 503, percentage: 0.5, body: down }, maxActive: 10 } }
  abort-only: { fault: { abort: { status: 500 } } }
  delay-only: { fault: { delay: { duration: 1s } } }
  typed: { fault: { abort: { status: 429, body: '{"e":1}', contentType: application/json, percentage: 0 } } }
`,
    );
    expect(Object.fromEntries(config.middlewares)).toEqual({
      both: { kind: 'fault', settings: { delay: { durationMs: 200, percentage: 50 }, abort: { status: 503, percentage: 0.5, body: 'down', contentType: 'text/plain; charset=utf-8' }, maxActive: 10 } },
      'abort-only': { kind: 'fault', settings: { delay: undefined, abort: { status: 500, percentage: 100, body: undefined, contentType: undefined }, maxActive: undefined } },
      'delay-only': { kind: 'fault', settings: { delay: { durationMs: 1_000, percentage: 100 }, abort: undefined, maxActive: undefined } },
      typed: { kind: 'fault', settings: { delay: undefined, abort: { status: 429, percentage: 0, body: '{"e":1}', contentType: 'application/json' }, maxActive: undefined } },
    });
  });

  it.each([
    ['f: { fault: {} }', 'middlewares.f.fault (line 2): injects nothing: give abort, delay or both'],
    ['f: { fault: { maxActive: 3 } }', 'middlewares.f.fault (line 2): injects nothing: give abort, delay or both'],
    ['f: { fault: { abort: { percentage: 10 } } }', 'middlewares.f.fault.abort.status (line 2)'],
    ['f: { fault: { abort: { status: 199 } } }', 'middlewares.f.fault.abort.status (line 2): expected a final status from 200 to 599'],
    ['f: { fault: { abort: { status: 600 } } }', 'middlewares.f.fault.abort.status (line 2): expected a final status from 200 to 599'],
    ['f: { fault: { abort: { status: 503.5 } } }', 'middlewares.f.fault.abort.status (line 2): expected a final status from 200 to 599'],
    ['f: { fault: { abort: { status: 503, percentage: 101 } } }', 'middlewares.f.fault.abort.percentage (line 2): expected a percentage from 0 to 100'],
    ['f: { fault: { abort: { status: 503, percentage: -1 } } }', 'middlewares.f.fault.abort.percentage (line 2): expected a percentage from 0 to 100'],
    ['f: { fault: { abort: { status: 503, percentage: "10%" } } }', 'middlewares.f.fault.abort.percentage (line 2): expected a percentage from 0 to 100'],
    ['f: { fault: { abort: { status: 204, body: x } } }', 'middlewares.f.fault.abort.body (line 2): a 204 answer has no body (RFC 9110)'],
    ['f: { fault: { abort: { status: 503, contentType: text/html } } }', 'middlewares.f.fault.abort.contentType (line 2): describes a body: give body'],
    ['f: { fault: { abort: { status: 503, http_status: 503 } } }', 'middlewares.f.fault.abort.http_status (line 2): unknown field "http_status"'],
    ['f: { fault: { delay: { percentage: 10 } } }', 'middlewares.f.fault.delay.duration (line 2)'],
    ['f: { fault: { delay: { duration: 0s } } }', 'middlewares.f.fault.delay.duration (line 2): must be above 0'],
    ['f: { fault: { delay: { duration: 25d } } }', 'middlewares.f.fault.delay.duration (line 2): must be at most 24d'],
    ['f: { fault: { delay: { duration: 1s, percentage: 100.5 } } }', 'middlewares.f.fault.delay.percentage (line 2): expected a percentage from 0 to 100'],
    ['f: { fault: { delay: { duration: 1s }, maxActive: 0 } }', 'middlewares.f.fault.maxActive (line 2)'],
    ['f: { fault: { delay: { duration: 1s }, maxActive: 1.5 } }', 'middlewares.f.fault.maxActive (line 2)'],
  ])('refuses %j with "%s"', (entry, expected) => {
    expect(errorOf(`middlewares:\n  ${entry}`).message).toContain(expected);
  });
});
