import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { logOf, startBackend, startGateway, startLocalRedis, waitFor, type BackendProcess, type GatewayProcess, type LocalRedis } from '../harness/index.ts';

const DEADLINE_MS = 15_000;
/** The line of an outage the move ended (docs/configuration.md); Redis' own return reads `redis answers again`. */
const MOVED = "a reload replaced the limit's redis connection";

/**
 * A `policy: redis` limit whose Redis went away, and that a reload moved to another Redis: the
 * outage ends with the move (the old connection closed a drain later), and says so, so that a
 * fallback is never left without its recovery (in the log and in the admin events).
 */
describe('a policy: redis limit falling back when a reload moves it to another Redis', () => {
  let first: LocalRedis;
  let second: LocalRedis;
  let backend: BackendProcess;
  let gateway: GatewayProcess;

  const config = (redis: LocalRedis) => `
listen: 127.0.0.1:{{port}}
admin: 127.0.0.1:{{adminPort}}
accessLog: false
# Long: the limit that replaces the old one waits up to one timeout for its new connection, then
# falls back (and reports the recovery itself, the old one's move then silent): at 30 ms that took 3
# runs of 4 on a loaded machine. No step here waits on it: the stopped Redis refuses at once.
redis: { url: "${redis.url}", timeout: 5s }
# The old connection is closed this long after the reload.
shutdown: { drainTimeout: 1s }
services:
  user: { instances: ["127.0.0.1:${backend.port}"] }
middlewares:
  shared: { rateLimit: { average: 1000, key: route, policy: redis, onRedisError: deny } }
routes:
  - { path: /, service: user, middlewares: [shared] }
`;
  const lines = async (text: string) => (await logOf(gateway.process)).split('\n').filter((line) => line.includes(text)).length;
  const status = async () => (await fetch(`${gateway.url}/hello`)).status;

  beforeAll(async () => {
    [first, second, backend] = await Promise.all([startLocalRedis(), startLocalRedis(), startBackend({ name: 'moved' })]);
    gateway = await startGateway(config(first));
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.stop();
    await first?.close();
    await second?.close();
  });

  it('reports the end of the outage once the reload moved it to a Redis that answers', async () => {
    await waitFor(async () => (await status()) === 200 || undefined, { timeoutMs: DEADLINE_MS, message: 'the limit to count in the first Redis' });
    await first.stop();
    // onRedisError: deny refuses (503) while the first Redis is away.
    await waitFor(async () => (await status()) === 503 || undefined, { timeoutMs: DEADLINE_MS, message: 'the limit to fall back' });
    expect(await lines('rate limit: redis failed')).toBe(1);
    await gateway.writeConfig(config(second));
    await waitFor(async () => (await status()) === 200 || undefined, { timeoutMs: DEADLINE_MS, message: 'the limit to count in the second Redis' });
    await waitFor(async () => (await lines(MOVED)) > 0 || undefined, { timeoutMs: DEADLINE_MS, message: 'the end of the first outage' }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway.process)}`);
    });
    const events = await adminClient(`http://127.0.0.1:${gateway.adminPort}`).events('0');
    try {
      // The replay is written at once: its last event is the recovery.
      const limitEvents = () => events.messages.filter((message) => message.event.startsWith('rate-limit-')).map((message) => message.event);
      await waitFor(() => limitEvents().includes('rate-limit-recovered') || undefined, { timeoutMs: 3_000, message: 'the recovery among the events' });
      expect(limitEvents()).toEqual(['rate-limit-fallback', 'rate-limit-recovered']);
    } finally {
      events.close();
    }
    // The old Redis never answered again: its end is the move's, not a return.
    expect([await lines('rate limit: redis failed'), await lines('redis answers again'), await lines(MOVED)]).toEqual([1, 0, 1]);
  });
});
