// A route regex the backtracking check refuses, written into a running gateway's file: the real
// gateway from dist/ refuses the reload with the key path and reason, and keeps routing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logOf, startBackend, startGateway, waitFor, type BackendProcess, type GatewayProcess } from '../harness/index.ts';

describe('a route regex whose alternatives match the same text under a repetition', () => {
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  const config = (extraRoute = '') => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
services:
  echo: { instances: [127.0.0.1:${backend.port}] }
routes:
  - { pathRegex: "^/users/(?<id>\\\\d+)$", service: echo }
${extraRoute}`;

  beforeAll(async () => {
    backend = await startBackend({ name: 'echo-1' });
    gateway = await startGateway(config());
  });

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
  });

  it('refuses a reload with ^/(\\w|\\d)*$, naming the key path and why, and keeps the running routes', async () => {
    expect((await fetch(`${gateway.url}/users/42`)).status).toBe(200);
    await gateway.writeConfig(config('  - { pathRegex: "^/(\\\\w|\\\\d)*$", service: echo }\n'));
    const log = await waitFor(async () => {
      const text = await logOf(gateway.process);
      return text.includes('configuration refused') && text;
    }, { timeoutMs: 10_000, message: 'the reload to be refused' });
    expect(log).toContain(String.raw`routes.1.pathRegex (line 8): can take exponential time on a short path (ReDoS): the alternatives \\w and \\d of (\\w|\\d) both match`);
    expect(log).toContain('allowUnsafeRegex: true');
    expect((await fetch(`${gateway.url}/users/42`)).status).toBe(200);
    // The refused route is not in the running configuration: its path matches nothing.
    expect((await fetch(`${gateway.url}/abc123`)).status).toBe(404);
  });
});
