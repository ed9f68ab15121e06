import { z } from 'zod';
import { registryIdentity, registryProviderName } from '../../src/discovery/provider-name.ts';
import { parseRegistryUrl, type RegistryLocation } from '../../src/registry-url.ts';
import { OBJECT_NAME, parseStoreUrl, type StoreLocation } from '../config-store/store-layout.ts';
import { ADMIN_TOKEN_MIN_LENGTH, DEFAULT_ADMIN, DEFAULT_SERVER_LIMITS, WORKER_HEARTBEAT_TIMEOUT_MIN_MS, WORKERS_MAX } from './defaults.ts';
import { isLoopbackHost } from './ip-range.ts';
import { consumersSchema } from './schema-access.ts';
import { middlewaresSchema } from './schema-middleware.ts';
import { redisSchema } from './schema-redis.ts';
import { entryPointsSchema } from './schema-entrypoint.ts';
import { namedCertificatesSchema, namedCertificateIssues } from './schema-certificate.ts';
import { routeSchema, serviceName } from './schema-route.ts';
import { tracingSchema } from './schema-tracing.ts';
import { mirrorServiceIssues } from './schema-route-mirror.ts';
import { stickyIssues } from './schema-sticky.ts';
import { tcpServiceTlsIssues } from './schema-tcp-service.ts';
import { ejectionTimeIssues, serviceCheckProtocolIssues, serviceDefaultsSchema, serviceSettingsSchema, slowStartIssues } from './schema-service.ts';
import { byteSize, duration, ipRangeText, listenAddress, percent, section, type ListenAddress } from './schema-values.ts';

/** A registry URL (`zk://`, `etcd://`, `etcds://`, `file:`) checked by `parseRegistryUrl`. */
const registryUrl = z.string().transform((url, context): { url: string; location: RegistryLocation } => {
  try {
    return { url, location: parseRegistryUrl(url) };
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** TLS towards an etcd registry or store: its CA bundle, and a client certificate and key for `--client-cert-auth`. */
const etcdTlsSection = section({ caFile: z.string().min(1).optional(), certFile: z.string().min(1).optional(), keyFile: z.string().min(1).optional() });
/** etcd's user/password authentication; the password is read from a file. */
const etcdAuthSection = section({ username: z.string().min(1), passwordFile: z.string().min(1) });

/** The `tls` and `auth` blocks an etcd registry or config store may have, as written. */
export interface EtcdSecurityInput {
  readonly tls?: z.output<typeof etcdTlsSection> | undefined;
  readonly auth?: z.output<typeof etcdAuthSection> | undefined;
}

/**
 * The issues of `tls`/`auth` blocks on `location`: `auth` applies to etcd (user/password) and to
 * ZooKeeper (digest), `tls` to etcd only (ZooKeeper's TLS is not supported) and needs the
 * `etcds://` scheme (TLS) that asks for it.
 */
function etcdSecurityIssues(url: string, location: { kind: string; endpoints?: readonly string[] }, security: EtcdSecurityInput, context: z.RefinementCtx): void {
  const blocks = (['tls', 'auth'] as const).filter((block) => security[block] !== undefined);
  if (blocks.length === 0) return;
  if (location.kind === 'zookeeper') {
    if (security.tls !== undefined) context.addIssue({ code: 'custom', path: ['tls'], message: `tls applies to etcd (etcds://) only; ${url} is ZooKeeper, whose TLS is not supported (auth, digest authentication, is)` });
    return;
  }
  if (location.kind !== 'etcd') {
    context.addIssue({ code: 'custom', path: [blocks[0]!], message: `${blocks.join(' and ')} apply to etcd (etcd://, etcds://) and ZooKeeper (auth only); ${url} is neither` });
    return;
  }
  if (security.tls !== undefined && !location.endpoints?.every((endpoint) => endpoint.startsWith('https://'))) {
    context.addIssue({ code: 'custom', path: ['tls'], message: `tls needs an etcds:// URL (TLS); ${url} is plain etcd://` });
  }
}

/**
 * A registry: its URL, or `{ url, tls, auth, snapshot }` for an etcd registry that needs a private
 * CA, a client certificate or a user, or for a registry whose snapshot file is elsewhere or off.
 */
const registry = z.union(
  [
    registryUrl,
    section({ url: registryUrl, tls: etcdTlsSection.optional(), auth: etcdAuthSection.optional(), snapshot: z.union([z.literal(false), z.string().min(1)], { error: 'expected false or a file path' }).optional() })
      .superRefine((entry, context) => {
        etcdSecurityIssues(entry.url.url, entry.url.location, entry, context);
        if (entry.snapshot !== undefined && entry.url.location.kind === 'file') context.addIssue({ code: 'custom', path: ['snapshot'], message: 'a file: registry keeps no snapshot (it is a local file already)' });
      })
      .transform(({ url, tls, auth, snapshot }) => ({ ...url, ...(tls === undefined ? {} : { tls }), ...(auth === undefined ? {} : { auth }), ...(snapshot === undefined ? {} : { snapshot }) })),
  ],
  { error: 'expected a registry URL (zk://, etcd://, etcds://, file:) or { url, tls, auth, snapshot }' },
);

/** The shared configuration store's URL (`etcd://…/root`, `zk://…/root`) checked by `parseStoreUrl`. */
const storeUrl = z.string().transform((url, context): StoreLocation => {
  try {
    return parseStoreUrl(url);
  } catch (error) {
    context.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** How many workers: `auto` (the available parallelism) or a count. */
const WORKER_COUNT_EXPECTED = `expected auto or a whole number from 1 to ${WORKERS_MAX}`;
const workerCount = z.union([z.literal('auto'), z.number().int().min(1, WORKER_COUNT_EXPECTED).max(WORKERS_MAX, WORKER_COUNT_EXPECTED)], { error: WORKER_COUNT_EXPECTED });

/** `workers`' long form: the count and the heartbeat bound of the watchdog. */
const workersSection = section({
  count: workerCount,
  heartbeatTimeout: duration.refine((ms) => ms === 0 || ms >= WORKER_HEARTBEAT_TIMEOUT_MIN_MS, `must be 0 (no watchdog) or at least ${WORKER_HEARTBEAT_TIMEOUT_MIN_MS / 1_000}s`).optional(),
});

/** The admin listener's long form: where it listens and the bearer token it requires. */
const adminSection = section({
  listen: listenAddress.optional(),
  token: z
    .string()
    .min(ADMIN_TOKEN_MIN_LENGTH, `must be at least ${ADMIN_TOKEN_MIN_LENGTH} characters (e.g. the output of \`openssl rand -hex 24\`)`)
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces (it travels in an HTTP header)')
    .optional(),
});

/**
 * Refuses a registry listed twice (the same URL, or one that differs only in its layout,
 * parameters, or the order or case of its hosts): both would read the same nodes as two providers
 * (or one of one name), whose statuses in the admin API, metrics and instance sets mix up.
 */
function duplicateRegistryIssues(registries: readonly { url: string; location: RegistryLocation }[], context: z.RefinementCtx): void {
  const firstIndex = new Map<string, number>();
  registries.forEach(({ url, location }, index) => {
    const identity = registryIdentity(location);
    const first = firstIndex.get(identity);
    if (first === undefined) firstIndex.set(identity, index);
    else {
      const name = registryProviderName(registries[first]!.location);
      context.addIssue({ code: 'custom', path: [index], message: `${url} reads the same registry nodes as registries[${first}] (${name}): list each registry root once` });
    }
  });
}

/**
 * The gateway configuration file as zod reads it: strict objects everywhere, durations and sizes
 * normalised, nothing filled in yet (`resolveConfig` applies the defaults and merges services).
 */
export const configSchema = section({
  listen: listenAddress.optional(),
  entryPoints: entryPointsSchema.optional(),
  admin: z
    .union([z.literal(false), listenAddress, adminSection], { error: 'expected false, an address such as 127.0.0.1:9180, or { listen, token }' })
    .optional(),
  registries: z.array(registry).superRefine(duplicateRegistryIssues).optional(),
  configStore: z
    .union(
      [
        storeUrl.transform((location) => ({ location, snapshot: undefined, timeout: undefined })),
        section({ url: storeUrl, snapshot: z.string().min(1).optional(), timeout: duration.refine((ms) => ms > 0, 'must be above 0').optional(), tls: etcdTlsSection.optional(), auth: etcdAuthSection.optional() })
          .superRefine((entry, context) => etcdSecurityIssues(entry.url.url, entry.url, entry, context))
          .transform(({ url, ...rest }) => ({ location: url, ...rest })),
      ],
      { error: 'expected a store URL (etcd://host:port/root, zk://host:port/root) or { url, snapshot, timeout, tls, auth }' },
    )
    .optional(),
  peers: section({
    id: z.string().regex(OBJECT_NAME, 'expected letters, digits, ".", "_" or "-" (it names a key in the store)').optional(),
    ttl: duration.refine((ms) => ms >= 1_000, 'must be at least 1s').optional(),
    lagAfter: duration.optional(),
  }).optional(),
  defaults: serviceDefaultsSchema.optional(),
  services: z.record(serviceName, serviceSettingsSchema.nullable()).optional(),
  routes: z.array(routeSchema).optional(),
  middlewares: middlewaresSchema.optional(),
  consumers: consumersSchema.optional(),
  certificates: namedCertificatesSchema.optional(),
  forwarding: section({ trustedProxies: z.array(ipRangeText).optional() }).optional(),
  accessLog: z.boolean().optional(),
  forwardTrace: z.boolean().optional(),
  tracing: tracingSchema.optional(),
  paths: section({ mergeSlashes: z.boolean().optional(), escapedSlashes: z.enum(['keep', 'reject']).optional() }).optional(),
  limits: section({
    maxHeaderSize: byteSize.optional(),
    // Also the deadline of a connection's first bytes and TLS handshake: 0 would close every https, tcp+tls, passthrough and h2c connection at its accept.
    headersTimeout: duration.refine((ms) => ms > 0, 'must be above 0: it also bounds the TLS handshake and the wait for a connection\'s first bytes, which 0 would cut at the accept').optional(),
    requestTimeout: duration.optional(),
    keepAliveTimeout: duration.optional(),
  }).optional(),
  shutdown: section({ drainTimeout: duration.optional() }).optional(),
  workers: z.union([workerCount, workersSection], { error: `expected auto, a whole number from 1 to ${WORKERS_MAX}, or { count, heartbeatTimeout }` }).optional(),
  removalProtection: z
    .union([z.literal(false), section({ threshold: percent.optional(), hold: duration.optional() })], { error: 'expected false or { threshold, hold }' })
    .optional(),
  forgetServicesAfter: z.union([z.literal(false), duration], { error: 'expected false or a duration such as 5m' }).optional(),
  redis: redisSchema.optional(),
}).superRefine((config, context) => {
  for (const [name, entry] of Object.entries(config.middlewares ?? {})) {
    for (const kind of ['rateLimit', 'inFlightReq'] as const) {
      const limit = entry[kind];
      if (limit?.ipv6Subnet !== undefined && (limit.key ?? { from: 'client-ip' }).from !== 'client-ip') context.addIssue({ code: 'custom', path: ['middlewares', name, kind, 'ipv6Subnet'], message: 'applies only to key: client-ip' });
    }
    if (entry.rateLimit?.policy === 'redis' && !config.redis) context.addIssue({ code: 'custom', path: ['middlewares', name, 'rateLimit', 'policy'], message: 'policy redis needs the top-level redis: section' });
  }
  const adminIssue = adminExposureIssue(config.admin);
  if (adminIssue) context.addIssue({ code: 'custom', path: ['admin'], message: adminIssue });
  if (config.peers && !config.configStore) context.addIssue({ code: 'custom', path: ['peers'], message: 'peers register in the config store: set configStore too' });
  const names = new Map<string, number>();
  config.routes?.forEach((route, index) => {
    if (route.name === undefined) return;
    const first = names.get(route.name);
    if (first !== undefined) context.addIssue({ code: 'custom', path: ['routes', index, 'name'], message: `route name "${route.name}" is already used by routes.${first}` });
    else names.set(route.name, index);
  });
  // Routes and entry points refer to middleware by name; a name not declared is refused where it is written.
  const checkMiddlewareNames = (names: readonly string[] | undefined, path: (string | number)[]) =>
    names?.forEach((name, position) => {
      if (config.middlewares && Object.hasOwn(config.middlewares, name)) return;
      const declared = Object.keys(config.middlewares ?? {});
      const hint = declared.length > 0 ? `declared: ${declared.join(', ')}` : 'no middlewares are declared';
      context.addIssue({ code: 'custom', path: [...path, 'middlewares', position], message: `unknown middleware "${name}" (${hint})` });
    });
  config.routes?.forEach((route, index) => checkMiddlewareNames(route.middlewares, ['routes', index]));
  for (const [name, entryPoint] of Object.entries(config.entryPoints ?? {})) checkMiddlewareNames(entryPoint.middlewares, ['entryPoints', name]);
  entryPointIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  namedCertificateIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  slowStartIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  ejectionTimeIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  stickyIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  tcpServiceTlsIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  serviceCheckProtocolIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  mirrorServiceIssues(config, (path, message) => context.addIssue({ code: 'custom', path, message }));
  const headersTimeout = config.limits?.headersTimeout ?? DEFAULT_SERVER_LIMITS.headersTimeoutMs;
  const requestTimeout = config.limits?.requestTimeout ?? DEFAULT_SERVER_LIMITS.requestTimeoutMs;
  // Node refuses a server whose headers timeout exceeds its (non-zero) request timeout.
  if (requestTimeout > 0 && headersTimeout > requestTimeout) {
    context.addIssue({ code: 'custom', path: ['limits', 'headersTimeout'], message: 'must not exceed limits.requestTimeout' });
  }
});

/**
 * Entry points and their references: `listen` is the one-entry-point shorthand and cannot be mixed
 * with `entryPoints`; two entry points cannot bind the same address; a route's `entryPoints`
 * names only entry points that exist (`web` when the file uses `listen`).
 */
function entryPointIssues(
  config: { listen?: ListenAddress | undefined; entryPoints?: Record<string, { listen: ListenAddress; protocol?: string | undefined }> | undefined; routes?: readonly { entryPoints?: readonly string[] | undefined }[] | undefined },
  problem: (path: (string | number)[], message: string) => void,
): void {
  if (config.listen !== undefined && config.entryPoints !== undefined) {
    problem(['listen'], 'listen and entryPoints cannot both be set: listen is the short form of one http entry point named web (write it as entryPoints: { web: { listen: … } })');
  }
  const addresses = new Map<string, string>();
  for (const [name, entryPoint] of Object.entries(config.entryPoints ?? {})) {
    if (entryPoint.listen.port === 0) continue;
    const address = `${entryPoint.listen.host ?? '*'}:${entryPoint.listen.port}`;
    const other = addresses.get(address);
    if (other !== undefined) problem(['entryPoints', name, 'listen'], `entry point ${name} listens on the same address as entry point ${other}`);
    else addresses.set(address, name);
  }
  const known = new Set(Object.keys(config.entryPoints ?? { web: true }));
  config.routes?.forEach((route, index) => {
    route.entryPoints?.forEach((name, position) => {
      if (config.entryPoints?.[name]?.protocol === 'tcp') problem(['routes', index, 'entryPoints', position], `entry point "${name}" is a tcp entry point: it forwards bytes to its service and has no routes`);
      else if (!known.has(name)) problem(['routes', index, 'entryPoints', position], `no entry point is named "${name}" (known: ${[...known].join(', ')})`);
    });
  });
}

/**
 * Why an admin listener may not start as configured: bound beyond loopback without a token, it
 * would hand the internals (and the dashboard) to anyone who can reach the port.
 */
function adminExposureIssue(admin: z.output<typeof adminSection> | ListenAddress | false | undefined): string | undefined {
  if (admin === undefined || admin === false) return undefined;
  const listen = 'port' in admin ? admin : (admin.listen ?? DEFAULT_ADMIN);
  const token = 'port' in admin ? undefined : admin.token;
  if (token !== undefined || isLoopbackHost(listen.host)) return undefined;
  const where = listen.host === undefined ? 'every interface' : listen.host;
  return `the admin API on ${where} needs a token: write admin: { listen: "${listen.host ?? ''}:${listen.port}", token: <secret> }, or bind it to 127.0.0.1`;
}

/** The file as parsed and normalised, before defaults. */
export type ConfigInput = z.output<typeof configSchema>;
