import { describe, expect, it } from 'vitest';
import { parseConfig } from './load.ts';
import { servicesNamedIn } from './named-services.ts';
import { expectRefused } from './config-testing.ts';


describe('route mirror', () => {
  it('resolves a mirror with its defaults: every request, with its body up to 64 KiB, 5 s, 100 copies in flight', () => {
    const config = parseConfig('g.yaml', 'services:\n  shadow: {}\nroutes:\n  - { path: /a, service: a, mirror: { service: shadow } }');
    expect(config.routes[0]!.mirror).toEqual({ service: 'shadow', percent: 100, body: true, maxBodyBytes: 65_536, timeoutMs: 5_000, maxInFlight: 100 });
  });

  it('resolves every key as written, and a mirror service named only by another route', () => {
    const text = ['routes:', '  - { path: /b, service: b }', '  - path: /a', '    service: a', '    mirror: { service: b, percent: 12.5, body: false, maxBodySize: 1MiB, timeout: 250ms, maxInFlight: 3 }'].join('\n');
    expect(parseConfig('g.yaml', text).routes[1]!.mirror).toEqual({ service: 'b', percent: 12.5, body: false, maxBodyBytes: 1_048_576, timeoutMs: 250, maxInFlight: 3 });
  });

  it('leaves a route without mirror unmirrored', () => {
    expect(parseConfig('g.yaml', 'routes:\n  - { path: /a, service: a }').routes[0]!.mirror).toBeUndefined();
  });

  it('counts a mirror service among the services the configuration names, so its registry is watched', () => {
    const config = parseConfig('g.yaml', 'services:\n  shadow: null\nroutes:\n  - { namespace: true, path: /api, mirror: { service: shadow } }');
    expect(servicesNamedIn(config)).toContain('shadow');
  });

  it.each([
    ['routes:\n  - { service: a, mirror: { service: shadow } }', 'routes.0.mirror.service (line 2): unknown service "shadow": declare it under services'],
    ['services:\n  shadow: {}\nroutes:\n  - { service: a, mirror: { service: shadow, percent: 101 } }', 'routes.0.mirror.percent (line 4)'],
    ['services:\n  shadow: {}\nroutes:\n  - { service: a, mirror: { service: shadow, percent: -1 } }', 'routes.0.mirror.percent (line 4)'],
    ['services:\n  shadow: {}\nroutes:\n  - { service: a, mirror: { service: shadow, maxBodySize: lots } }', 'routes.0.mirror.maxBodySize (line 4): expected a size'],
    ['services:\n  shadow: {}\nroutes:\n  - { service: a, mirror: { service: shadow, timeout: 0 } }', 'routes.0.mirror.timeout (line 4): must be above 0'],
    ['services:\n  shadow: {}\nroutes:\n  - { service: a, mirror: { service: shadow, maxInFlight: 0 } }', 'routes.0.mirror.maxInFlight (line 4)'],
    ['services:\n  shadow: {}\nroutes:\n  - { service: a, mirror: { service: shadow, percentage: 5 } }', 'routes.0.mirror.percentage (line 4): unknown field "percentage"'],
    ['routes:\n  - { service: a, mirror: { percent: 5 } }', 'routes.0.mirror.service (line 2)'],
  ])('refuses %j with "%s"', (text, expected) => {
    expectRefused(text, expected);
  });
});
