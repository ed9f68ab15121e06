import { z } from 'zod';
import { BALANCER_ALGORITHMS, type BalancerAlgorithm } from '../../src/balance/balancer.ts';
import { SLOW_START_ALGORITHMS } from '../../src/balance/slow-start.ts';
import type { HashKeySource } from '../../src/balance/hash-key.ts';
import { INSTANCE_PROTOCOLS } from '../../src/discovery/instance.ts';
import { INSTANCE_HOST, MAX_INSTANCE_WEIGHT } from '../../src/discovery/instance-codec.ts';
import { circuitBreakerSchema, concurrencySchema, retryBudgetSchema } from './schema-breaker.ts';
import { DEFAULT_BASE_EJECTION_MS } from '../../src/health/outlier-detector.ts';
import { count, duration, percent, section } from './schema-values.ts';
import { stickySchema } from './schema-sticky.ts';

/** Failures after which the proxy may try another instance (Envoy's `retry_on` names). */
export const RETRY_CONDITIONS = ['connect-failure', 'reset', 'headers-timeout'] as const;

const HASH_KEY_HINT = 'expected client-ip, path, header:<name>, cookie:<name>, query:<name> or { from, name }';

/** `client-ip`, `path`, `header:X-User`, `cookie:session`, `query:user`, or the object form of `HashKeySource`. */
const hashKey = z.union(
  [
    z.string().transform((text, context): HashKeySource => {
      const [from, name] = text.includes(':') ? [text.slice(0, text.indexOf(':')), text.slice(text.indexOf(':') + 1)] : [text, ''];
      if ((from === 'client-ip' || from === 'path') && name === '') return { from };
      if ((from === 'header' || from === 'cookie' || from === 'query') && name !== '') return { from, name };
      context.addIssue({ code: 'custom', message: HASH_KEY_HINT });
      return z.NEVER;
    }),
    z.discriminatedUnion('from', [
      section({ from: z.literal('client-ip') }),
      section({ from: z.literal('path') }),
      section({ from: z.enum(['header', 'cookie', 'query']), name: z.string().min(1) }),
    ]),
  ],
  { error: HASH_KEY_HINT },
);

const balancerObject = z.discriminatedUnion('algorithm', [
  section({ algorithm: z.enum(['random', 'round-robin', 'weighted-round-robin', 'least-connections']) }),
  section({ algorithm: z.literal('p2c-ewma'), decay: duration.refine((ms) => ms > 0, 'must be above 0').optional() }),
  section({
    algorithm: z.literal('consistent-hash'),
    key: hashKey.optional(),
    pointsPerWeight: count(1, 10_000).optional(),
    maxRingPoints: count(1, 2 ** 24).optional(),
    boundedLoadFactor: z.number().gt(1, 'must be above 1 (1.25 lets a member take 25% above its share)').optional(),
  }),
]);

/** A balancer: an algorithm name, or `{ algorithm, … }` with the algorithm's own settings. */
const balancer = z.union([z.enum(BALANCER_ALGORITHMS).transform((algorithm) => ({ algorithm }) as z.output<typeof balancerObject>), balancerObject], {
  error: `expected one of ${BALANCER_ALGORITHMS.join(', ')}, or { algorithm, … }`,
});

/** A status (`503`) or a range (`"500-599"`). */
export const statusRange = z.union(
  [
    z.int().min(100).max(599),
    z.string().transform((text, context) => {
      const match = /^([1-5]\d\d)\s*-\s*([1-5]\d\d)$/.exec(text.trim());
      if (match && Number(match[1]) <= Number(match[2])) return { from: Number(match[1]), to: Number(match[2]) };
      context.addIssue({ code: 'custom', message: 'expected a status such as 200 or a range such as "200-399"' });
      return z.NEVER;
    }),
  ],
  { error: 'expected a status such as 200 or a range such as "200-399"' },
);

/** Upstream protocols a service may default its instances to (`tcp` is never proxied over HTTP). */
export const UPSTREAM_PROTOCOLS = ['http', 'https', 'h2c', 'h2', 'grpc', 'grpcs'] as const;

/** A check's timing: 0 would probe in a tight loop (an interval) or fail every check at once (the timeout). */
const checkDuration = duration.refine((ms) => ms > 0, 'must be above 0');

const healthCheck = section({
  type: z.enum(['http', 'tcp']).optional(),
  // A space or control character would fail every check (the request cannot be sent), never the config.
  path: z
    .string()
    .startsWith('/', 'must start with /')
    .regex(/^[\x21-\x7e]*$/, 'must not contain spaces, control or non-ASCII characters (percent-encode them)')
    .optional(),
  expectedStatuses: z.array(statusRange).min(1).optional(),
  hostHeader: z.string().regex(/^[\x21-\x7e]+$/, 'expected a host name, optionally with :port').optional(),
  grpcService: z.string().max(512).optional(),
  // A management port (Spring's actuator, Envoy's admin): the check connects there instead of the traffic port.
  port: count(1, 65_535).optional(),
  // What the check speaks, chosen apart from the instances' protocol (Envoy's http/grpc health checkers, Traefik's mode).
  protocol: z.enum(UPSTREAM_PROTOCOLS, { error: `expected ${UPSTREAM_PROTOCOLS.join(', ')} (a check that only connects is type: tcp)` }).optional(),
  interval: checkDuration.optional(),
  unhealthyInterval: checkDuration.optional(),
  timeout: checkDuration.optional(),
  healthyThreshold: count(1, 100).optional(),
  unhealthyThreshold: count(1, 100).optional(),
}).superRefine((check, context) => {
  for (const [key, message] of healthCheckConflicts(check)) context.addIssue({ code: 'custom', path: [key], message });
});

const GRPC_CHECK_PROTOCOLS: ReadonlySet<string> = new Set(['grpc', 'grpcs']);
const HTTP_CHECK_KEYS = ['protocol', 'path', 'expectedStatuses', 'hostHeader', 'grpcService'] as const;

/**
 * Keys of one `healthCheck` object that its check would ignore, with why: an HTTP key beside
 * `type: tcp` (it only connects), `path` or `expectedStatuses` beside a gRPC `protocol` (it asks
 * `grpc.health.v1.Health/Check`), `grpcService` beside an HTTP one. Only keys written together are
 * judged, since `defaults` may serve instances of every protocol.
 */
function healthCheckConflicts(check: { readonly type?: string | undefined; readonly protocol?: string | undefined } & Partial<Record<(typeof HTTP_CHECK_KEYS)[number], unknown>>): [string, string][] {
  if (check.type === 'tcp') return HTTP_CHECK_KEYS.filter((key) => check[key] !== undefined).map((key) => [key, `a tcp check only opens a connection: ${key} applies to http checks`]);
  if (check.protocol === undefined) return [];
  if (GRPC_CHECK_PROTOCOLS.has(check.protocol)) {
    return (['path', 'expectedStatuses'] as const).filter((key) => check[key] !== undefined).map((key) => [key, `a ${check.protocol} check asks grpc.health.v1.Health/Check and passes on SERVING: ${key} does not apply (use grpcService)`]);
  }
  // `""`, the server as a whole, is what a check asks when grpcService is not written: harmless beside any protocol.
  return check.grpcService === undefined || check.grpcService === '' ? [] : [['grpcService', `an ${check.protocol} check sends GET path: grpcService applies to grpc and grpcs checks`]];
}

const outlierDetection = section({
  consecutiveErrors: count(1, 1_000).optional(),
  baseEjectionTime: duration.optional(),
  maxEjectionTime: duration.optional(),
  maxEjectionPercent: percent.optional(),
  // 0 would divide by zero in the ejection time (see OutlierDetector).
  decayInterval: duration.refine((ms) => ms > 0, 'must be above 0').optional(),
});

/** Upstream timeouts of a service; 0 turns one off. */
export const serviceTimeouts = section({ connect: duration.optional(), headers: duration.optional(), idleBody: duration.optional(), websocketIdle: duration.optional() });

/** Retries of a service or route; `false` means one attempt only. */
export const retries = z.union([z.literal(false), section({ attempts: count(1, 10).optional(), retryOn: z.array(z.enum(RETRY_CONDITIONS)).optional() })], {
  error: 'expected false or { attempts, retryOn }',
});

const instanceEntry = z.union(
  [
    z.string().regex(/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'expected "host:port"'),
    section({
      id: z.string().min(1).max(256).optional(),
      host: INSTANCE_HOST,
      port: z.int().min(1).max(65_535),
      weight: z.int().min(0).max(MAX_INSTANCE_WEIGHT).optional(),
      protocol: z.enum(INSTANCE_PROTOCOLS).optional(),
      metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
    }),
  ],
  { error: 'expected "host:port" or { host, port, weight?, id?, protocol?, metadata? }' },
);

const pemPath = z.string().min(1, 'expected a file path');

/** TLS towards the upstreams of a service, for traffic and health checks alike; files are read by `readUpstreamTlsFiles`. */
const upstreamTls = section({
  caFile: pemPath.optional(),
  serverName: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9.-]+$/, 'expected a DNS name (an IP address is never sent as SNI)')
    .refine((name) => !/^[\d.]+$/.test(name), 'expected a DNS name (an IP address is never sent as SNI)')
    .optional(),
  verify: z.boolean().optional(),
  certFile: pemPath.optional(),
  keyFile: pemPath.optional(),
}).refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), { message: 'certFile and keyFile go together (a client certificate needs its key)' });

/** Envoy's slow start: `window` is required (a ramp without a length means nothing), the rest default to Envoy's. */
const slowStart = z.union(
  [
    z.literal(false),
    section({
      window: duration.refine((ms) => ms > 0, 'must be above 0'),
      aggression: z.number().gt(0, 'must be above 0 (1 ramps linearly)').optional(),
      minWeightPercent: z.number().gt(0, 'must be above 0 (a weight of 0 would take no traffic)').max(100).optional(),
    }),
  ],
  { error: 'expected false or { window, aggression?, minWeightPercent? }' },
);

const settingsShape = {
  protocol: z.enum(UPSTREAM_PROTOCOLS).optional(),
  tls: upstreamTls.optional(),
  balancer: balancer.optional(),
  slowStart: slowStart.optional(),
  healthCheck: z.union([z.boolean(), healthCheck], { error: 'expected true, false or { type, path, interval, … }' }).optional(),
  outlierDetection: z.union([z.boolean(), outlierDetection], { error: 'expected true, false or { consecutiveErrors, … }' }).optional(),
  panicThreshold: percent.optional(),
  removalGrace: duration.optional(),
  timeouts: serviceTimeouts.optional(),
  retries: retries.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  concurrency: concurrencySchema.optional(),
  retryBudget: retryBudgetSchema.optional(),
  proxyProtocol: z.union([z.literal(false), z.literal(1), z.literal(2)], { error: 'expected false, 1 (text) or 2 (binary)' }).optional(),
  sticky: stickySchema.optional(),
};

/** Settings every service inherits (`defaults`): everything a service may set except its instances. */
export const serviceDefaultsSchema = section(settingsShape);

/** One entry of `services`: the defaults' keys plus an optional static `instances` list. */
export const serviceSettingsSchema = section({ ...settingsShape, instances: z.array(instanceEntry).optional() });

type CheckLayer = { readonly protocol?: string | undefined; readonly healthCheck?: boolean | z.output<typeof healthCheck> | undefined };

/**
 * A service's check that names no `protocol` and inherits none (nor `type: tcp`) from `defaults`
 * speaks the service's own protocol, so its keys are judged as if it named it: `protocol: grpc`
 * with `healthCheck: { path }` would ask grpc.health.v1.Health/Check and never the path. Judged
 * where `defaults` are known: a check whose `defaults` name `healthCheck.protocol: http` asks the
 * path over HTTP whatever the service speaks.
 */
export function serviceCheckProtocolIssues(
  config: { readonly defaults?: CheckLayer | undefined; readonly services?: Readonly<Record<string, CheckLayer | null>> | undefined },
  problem: (path: (string | number)[], message: string) => void,
): void {
  const inherited = config.defaults?.healthCheck;
  if (typeof inherited === 'object' && (inherited.protocol !== undefined || inherited.type === 'tcp')) return;
  for (const [name, service] of Object.entries(config.services ?? {})) {
    const check = service?.healthCheck;
    if (!service || typeof check !== 'object' || check.type === 'tcp' || check.protocol !== undefined || service.protocol === undefined) continue;
    for (const [key, message] of healthCheckConflicts({ ...check, protocol: service.protocol })) {
      problem(['services', name, 'healthCheck', key], `${message}; the check speaks the service's protocol, ${service.protocol} (healthCheck.protocol names another)`);
    }
  }
}

/** `defaults` as parsed: file keys, durations already in milliseconds, nothing filled in yet. */
export type ServiceDefaultsInput = z.output<typeof serviceDefaultsSchema>;
/** One `services` entry as parsed. */
export type ServiceSettingsInput = z.output<typeof serviceSettingsSchema>;

type SlowStartLayer = { readonly balancer?: { readonly algorithm: BalancerAlgorithm } | undefined; readonly slowStart?: unknown };

/**
 * Slow start paired with an algorithm that cannot ramp (`round-robin` ignores weights,
 * `consistent-hash` would remap keys), after `defaults` apply; reported where slow start is written.
 */
export function slowStartIssues(
  config: { readonly defaults?: SlowStartLayer | undefined; readonly services?: Readonly<Record<string, SlowStartLayer | null>> | undefined },
  problem: (path: (string | number)[], message: string) => void,
): void {
  const defaults = config.defaults ?? {};
  const check = (layer: SlowStartLayer, path: (string | number)[]) => {
    const algorithm = layer.balancer?.algorithm ?? defaults.balancer?.algorithm ?? 'weighted-round-robin';
    const slow = layer.slowStart ?? defaults.slowStart;
    if (slow === undefined || slow === false || SLOW_START_ALGORITHMS.includes(algorithm)) return;
    const where = layer.slowStart === undefined ? [...path, 'balancer'] : [...path, 'slowStart'];
    problem(where, `slowStart needs a balancer that follows weights (${SLOW_START_ALGORITHMS.join(', ')}), not ${algorithm}${layer.slowStart === undefined ? ' (slowStart comes from defaults; set slowStart: false here)' : ''}`);
  };
  check(defaults, ['defaults']);
  for (const [name, layer] of Object.entries(config.services ?? {})) if (layer) check(layer, ['services', name]);
}

type EjectionTimes = { readonly baseEjectionTime?: number | undefined; readonly maxEjectionTime?: number | undefined };
type OutlierLayer = { readonly outlierDetection?: boolean | EjectionTimes | undefined };

/**
 * An explicit `maxEjectionTime` below the `baseEjectionTime` in force for the same layer (its own
 * or the one `defaults` writes): every ejection would be cut to the max, which the detector used to
 * do without a word. Refused where this layer writes the contradiction. Without any
 * `maxEjectionTime` the cap follows Envoy, the larger of 300 s and the base, and nothing is refused.
 */
export function ejectionTimeIssues(
  config: { readonly defaults?: OutlierLayer | undefined; readonly services?: Readonly<Record<string, OutlierLayer | null>> | undefined },
  problem: (path: (string | number)[], message: string) => void,
): void {
  const times = (layer: OutlierLayer | undefined): EjectionTimes => (typeof layer?.outlierDetection === 'object' ? layer.outlierDetection : {});
  const inherited = times(config.defaults);
  const check = (own: EjectionTimes, from: EjectionTimes, path: (string | number)[]) => {
    const base = own.baseEjectionTime ?? from.baseEjectionTime ?? DEFAULT_BASE_EJECTION_MS;
    const max = own.maxEjectionTime ?? from.maxEjectionTime;
    if (max === undefined || max >= base) return;
    if (own.maxEjectionTime !== undefined) {
      const source = own.baseEjectionTime !== undefined ? 'baseEjectionTime' : from.baseEjectionTime !== undefined ? 'baseEjectionTime from defaults' : 'the default baseEjectionTime';
      problem([...path, 'outlierDetection', 'maxEjectionTime'], `must not be below ${source} (${durationText(base)}): every ejection would be cut to it (leave maxEjectionTime out to cap at the larger of 300s and the base)`);
    } else if (own.baseEjectionTime !== undefined) {
      problem([...path, 'outlierDetection', 'baseEjectionTime'], `must not be above maxEjectionTime from defaults (${durationText(max)}): every ejection would be cut to it (set maxEjectionTime here too)`);
    }
  };
  check(inherited, {}, ['defaults']);
  for (const [name, layer] of Object.entries(config.services ?? {})) {
    if (layer && typeof layer.outlierDetection === 'object') check(layer.outlierDetection, inherited, ['services', name]);
  }
}

/** `90s` or `1500ms`: a duration as the file would write it. */
function durationText(ms: number): string {
  return ms % 1_000 === 0 ? `${ms / 1_000}s` : `${ms}ms`;
}
