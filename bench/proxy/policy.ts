// Traffic-policy rows of bench:proxy: Switchboard with a rate limiter (local, and in Redis), with a
// circuit breaker, and without the retry budget (on by default), each against the same gateway
// without any policy, in the same alternating rounds. Each policy adds its row through a small
// function here, so that the rows of one policy never touch another's; one printer reports them.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startLocalRedis, type LocalRedis } from '../../test/harness/redis-local.ts';
import type { Contender, RoundsResult } from './rounds.ts';

/** What the policy rows need from the bench that runs them. */
export interface PolicyBench {
  readonly dir: string;
  /** The Node backends every row proxies to. */
  readonly upstreams: readonly number[];
  /** A free port. */
  port(): Promise<number>;
  /** Starts a gateway on `config` and resolves once `port` accepts connections. */
  startGateway(config: string, port: number): Promise<void>;
}

/** The name of the row every policy row is compared with. */
export const NO_POLICY = 'switchboard, no policy (access log off)';

/** A limit no benchmark reaches: the rows measure the limiter's cost, not its refusals. */
const GENEROUS = 'average: 10000000, burst: 10000000';

async function gatewayWith(bench: PolicyBench, name: string, extra: { middlewares?: string; top?: string; serviceSettings?: string }): Promise<Contender> {
  const port = await bench.port();
  const file = join(bench.dir, `policy-${name.replace(/\W+/g, '-')}.yaml`);
  await writeFile(
    file,
    `listen: 127.0.0.1:${port}
admin: false
accessLog: false
${extra.top ?? ''}
services:
  nodeb: { balancer: round-robin, instances: [${bench.upstreams.map((upstream) => `127.0.0.1:${upstream}`).join(', ')}]${extra.serviceSettings ? `, ${extra.serviceSettings}` : ''} }
${extra.middlewares ? `middlewares:\n${extra.middlewares}\n` : ''}routes:
  - { path: /, service: nodeb${extra.middlewares ? ', middlewares: [policy]' : ''} }
`,
  );
  await bench.startGateway(file, port);
  return { name, url: `http://127.0.0.1:${port}/` };
}

/** The gateway every policy row is compared with: the same configuration without any policy. */
export function noPolicyContender(bench: PolicyBench): Promise<Contender> {
  return gatewayWith(bench, NO_POLICY, {});
}

/** A local token bucket per client IP (one key under wrk), generous enough never to refuse. */
export function localLimiterContender(bench: PolicyBench): Promise<Contender> {
  return gatewayWith(bench, 'switchboard + local rate limit', { middlewares: `  policy: { rateLimit: { ${GENEROUS}, key: client-ip } }` });
}

/** The same limit kept in a redis-server (Debian) on loopback: one Lua script call per request. */
export async function redisLimiterContender(bench: PolicyBench): Promise<{ contender: Contender; redis: LocalRedis }> {
  const redis = await startLocalRedis('bench-redis');
  const contender = await gatewayWith(bench, 'switchboard + redis rate limit', {
    top: `redis: { url: "${redis.url}", timeout: 1s }`,
    middlewares: `  policy: { rateLimit: { ${GENEROUS}, key: client-ip, policy: redis } }`,
  });
  return { contender, redis };
}

/** A breaker that never trips (generous thresholds): the cost of its rolling window per attempt. */
export function breakerContender(bench: PolicyBench): Promise<Contender> {
  return gatewayWith(bench, 'switchboard + breaker', { serviceSettings: 'circuitBreaker: { requestVolumeThreshold: 1000000, errorPercentThreshold: 100 }' });
}

/** The retry budget (on by default) turned off, to show its own cost: a negative cost is the budget's. */
export function noRetryBudgetContender(bench: PolicyBench): Promise<Contender> {
  return gatewayWith(bench, 'switchboard + no retry budget', { serviceSettings: 'retryBudget: false' });
}

/** Every policy row and the no-policy row they are compared with; `close` stops the Redis the Redis limiter uses. */
export async function policyContenders(bench: PolicyBench): Promise<{ contenders: Contender[]; close: () => Promise<void> }> {
  const contenders = [await noPolicyContender(bench), await localLimiterContender(bench)];
  const withRedis = await redisLimiterContender(bench);
  contenders.push(withRedis.contender, await breakerContender(bench), await noRetryBudgetContender(bench));
  return { contenders, close: () => withRedis.redis.close() };
}

/** One line per policy row (negative: faster, within noise): its throughput and p50 against the no-policy row of the same run. */
export function policyCostLines(rows: readonly RoundsResult[]): string[] {
  const base = rows.find((row) => row.name === NO_POLICY);
  if (!base) return [];
  return rows
    .filter((row) => row.name.startsWith('switchboard + '))
    .map((row) => `${row.name.slice('switchboard + '.length)} cost: ${((1 - row.requestsPerSecond / base.requestsPerSecond) * 100).toFixed(1)} % of req/s (${row.requestsPerSecond.toFixed(0)} against ${base.requestsPerSecond.toFixed(0)}), p50 ${row.p50Ms.toFixed(2)} against ${base.p50Ms.toFixed(2)} ms`);
}
