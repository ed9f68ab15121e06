import { parseArgs, type ParseArgsConfig } from 'node:util';
import { usageReason } from '../src/cli-usage.ts';
import { instanceEntrySizeProblem, MAX_INSTANCE_ID_LENGTH } from '../src/discovery/instance-codec.ts';
import { instanceHostProblem } from '../src/discovery/instance-host.ts';
import { parseDurationMs } from '../src/duration.ts';
import { SwitchboardError } from '../src/errors.ts';
import { namesCredentialFiles, readCredentialFiles, type CredentialFiles, type ConnectionCredentials } from '../src/connection-credentials.ts';
import { parseRegistryUrl, type RegistryLocation } from '../src/registry-url.ts';

/** How the agent decides the backend is healthy. */
export type AgentProbe = { kind: 'http'; path: string } | { kind: 'tcp' } | { kind: 'grpc'; service: string };

/** Protocols the agent may register its backend with (`--protocol`). */
export const AGENT_PROTOCOLS = ['http', 'https', 'h2c', 'h2', 'grpc', 'grpcs'] as const;

/** Everything the agent needs, after flags and environment variables are merged and checked. */
export interface AgentOptions {
  registry: RegistryLocation;
  registryUrl: string;
  service: string;
  host: string;
  port: number;
  weight: number;
  id: string;
  metadata: Record<string, string>;
  /** The registered `protocol`; undefined leaves it to the gateway's service default. */
  protocol: (typeof AGENT_PROTOCOLS)[number] | undefined;
  probe: AgentProbe;
  /** The port the probe connects to on `host` (`--health-port`, a management port); `port` when undefined. */
  healthPort: number | undefined;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  drainMs: number;
  /** etcd lease TTL, and the ZooKeeper session timeout the agent asks for. */
  ttlMs: number;
  /** An etcd registry's TLS files and user/password (`--etcd-ca-file`…), read at start; undefined when none is given. */
  etcdCredentials?: ConnectionCredentials | undefined;
  /** A ZooKeeper registry's digest user and password (`--zk-username`, `--zk-password-file`), read at start; undefined when none is given. */
  zooKeeperCredentials?: ConnectionCredentials | undefined;
  /** The backend to start as a child, when given after `--`. */
  command: string[];
  /** Human-readable logs instead of JSON lines. */
  pretty: boolean;
  help: boolean;
}

/**
 * A flag that is missing or wrong, or an argument that is none: the message names the flag as the
 * user wrote it (`--port`, `-x`), or, with `flag` undefined, only says what is wrong with the
 * argument; the program exits with code 2.
 */
export class AgentUsageError extends SwitchboardError {
  constructor(
    readonly flag: string | undefined,
    reason: string,
    written = flag === undefined ? undefined : `--${flag}`,
  ) {
    super('SB_AGENT_USAGE', written === undefined ? reason : `${written}: ${reason}`);
  }
}

/** What the agent adds to Node's `unexpected argument`: an argument of its own is always a flag's. */
const POSITIONAL_ADVICE = 'the agent takes only options; a command to run goes after --';

const FLAGS = {
  registry: { type: 'string' },
  service: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  weight: { type: 'string' },
  metadata: { type: 'string', multiple: true },
  id: { type: 'string' },
  health: { type: 'string' },
  'health-port': { type: 'string' },
  protocol: { type: 'string' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  rise: { type: 'string' },
  fall: { type: 'string' },
  drain: { type: 'string' },
  ttl: { type: 'string' },
  'etcd-ca-file': { type: 'string' },
  'etcd-cert-file': { type: 'string' },
  'etcd-key-file': { type: 'string' },
  'etcd-username': { type: 'string' },
  'etcd-password-file': { type: 'string' },
  'zk-username': { type: 'string' },
  'zk-password-file': { type: 'string' },
  pretty: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type Flag = keyof typeof FLAGS;

/** The agent's flags, without their dashes. */
export const AGENT_FLAGS = Object.keys(FLAGS) as readonly Flag[];

/** A service the agent registers: one path segment (`<root>/<service>/<id>`). */
export const SERVICE_NAME = /^[A-Za-z0-9][\w.-]*$/;
/** What `SERVICE_NAME` asks for, in an error. */
export const SERVICE_NAME_RULE = 'must be letters, digits, ".", "_" or "-"';
/** An instance id the agent registers: one path segment, as gateways accept it. */
export const INSTANCE_ID = /^[\w.:-]+$/;
/** What `INSTANCE_ID` asks for, in an error. */
export const INSTANCE_ID_RULE = 'must be letters, digits, ".", ":", "_" or "-"';

/**
 * Why a service name or instance id is too long, or undefined: an id longer than gateways take
 * makes an entry they skip; a service name is held to the same bound (one path segment).
 */
export function nameLengthProblem(name: string): string | undefined {
  return name.length > MAX_INSTANCE_ID_LENGTH ? `is ${name.length} characters, more than the ${MAX_INSTANCE_ID_LENGTH} a registry entry may name` : undefined;
}

/** Environment variable that stands in for `--flag`: `SWITCHBOARD_` and the flag in capitals. */
export function envNameOf(flag: string): string {
  return `SWITCHBOARD_${flag.toUpperCase().replaceAll('-', '_')}`;
}

/**
 * Merges flags (which win) with `SWITCHBOARD_*` environment variables and checks every value.
 * Throws `AgentUsageError` naming the first bad flag.
 */
export function parseAgentArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const command = split === -1 ? [] : argv.slice(split + 1);
  let values: Partial<Record<Flag, string | string[] | boolean>>;
  try {
    ({ values } = parseArgs({ args: [...own], options: FLAGS, strict: true, allowPositionals: false }));
  } catch (error) {
    const reason = usageReason(error as Error, own);
    // A positional argument has no flag to name (`--arguments:` read as if it were one).
    if ((error as { code?: string }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new AgentUsageError(undefined, `${reason} (${POSITIONAL_ADVICE})`);
    const written = /'(--?[\w-]+)/.exec((error as Error).message)?.[1];
    throw new AgentUsageError(written?.replace(/^-+/, ''), reason, written);
  }
  const get = (flag: Flag): string | undefined => {
    const value = values[flag];
    if (typeof value === 'string') return value;
    return env[envNameOf(flag)];
  };
  if (values.help) return { help: true } as AgentOptions;

  const registryUrl = required('registry', get('registry'));
  let registry: RegistryLocation;
  try {
    registry = parseRegistryUrl(registryUrl);
  } catch (error) {
    throw new AgentUsageError('registry', (error as Error).message);
  }
  const unwritable = unwritableLocation(registry);
  if (unwritable !== undefined) throw new AgentUsageError('registry', unwritable);
  const etcdCredentials = credentialsOf(registry, get);
  const zooKeeperCredentials = zooKeeperCredentialsOf(registry, get);
  const service = required('service', get('service'));
  if (!SERVICE_NAME.test(service)) throw new AgentUsageError('service', `"${service}" ${SERVICE_NAME_RULE}`);
  const serviceLength = nameLengthProblem(service);
  if (serviceLength !== undefined) throw new AgentUsageError('service', serviceLength);
  const port = portOf('port', required('port', get('port')), values.port !== undefined);
  const host = get('host') ?? '127.0.0.1';
  // Gateways skip an entry whose host fits in no upstream URL (`10.0.0.5:8080`, `[::1]`, empty): it would never be routed to.
  const hostProblem = instanceHostProblem(host);
  if (hostProblem !== undefined) throw new AgentUsageError('host', `"${host}" ${hostProblem}`);
  const id = get('id') ?? `${service}-${host}-${port}`;
  if (!INSTANCE_ID.test(id)) throw new AgentUsageError('id', `"${id}" ${INSTANCE_ID_RULE}`);
  const idLength = nameLengthProblem(id);
  if (idLength !== undefined) throw new AgentUsageError('id', idLength);

  const protocol = protocolOf(get('protocol'));
  const health = probe(get('health') ?? 'tcp');
  const healthPort = get('health-port');
  // The gateway checks a grpc instance with the gRPC health service whatever path it is given; so would the agent.
  if (health.kind === 'http' && (protocol === 'grpc' || protocol === 'grpcs')) {
    throw new AgentUsageError('health', `http:${health.path} cannot check a ${protocol} backend: use grpc[:service] (grpc.health.v1) or tcp`);
  }
  const weight = integer('weight', get('weight') ?? '1', 0, 1_000_000);
  const pairs = metadata(values.metadata as string[] | undefined, env[envNameOf('metadata')]);
  // Refused now, not by ZooKeeper (jute.maxbuffer) or etcd (request size) at each registration attempt, nor skipped by gateways.
  const sizeProblem = instanceEntrySizeProblem({ id, service, host, port, weight, ...(protocol === undefined ? { protocol: 'http', protocolDefaulted: true } : { protocol }), metadata: pairs });
  if (sizeProblem !== undefined) throw new AgentUsageError('metadata', sizeProblem);
  return {
    registry,
    registryUrl,
    service,
    host,
    port,
    weight,
    id,
    metadata: pairs,
    protocol,
    probe: health,
    healthPort: healthPort === undefined ? undefined : portOf('health-port', healthPort, values['health-port'] !== undefined),
    intervalMs: duration('interval', get('interval') ?? '2s'),
    timeoutMs: duration('timeout', get('timeout') ?? '1s'),
    rise: integer('rise', get('rise') ?? '2', 1, 100),
    fall: integer('fall', get('fall') ?? '3', 1, 100),
    drainMs: duration('drain', get('drain') ?? '5s'),
    ttlMs: ttl(get('ttl') ?? '10s'),
    ...(etcdCredentials === undefined ? {} : { etcdCredentials }),
    ...(zooKeeperCredentials === undefined ? {} : { zooKeeperCredentials }),
    command,
    pretty: values.pretty === true || booleanEnv('pretty', env[envNameOf('pretty')]),
    help: false,
  };
}

/** The flag of each etcd credential file (or the user). */
const CREDENTIAL_FLAGS: Record<keyof CredentialFiles, Flag> = {
  caFile: 'etcd-ca-file',
  certFile: 'etcd-cert-file',
  keyFile: 'etcd-key-file',
  username: 'etcd-username',
  passwordFile: 'etcd-password-file',
};

/**
 * The etcd credentials the `--etcd-*` flags name, read now (relative paths from the working folder),
 * so that a missing or bad file stops the agent at start with the flag and the reason; undefined
 * when none is given. Refused on ZooKeeper, and the TLS files on a plain etcd:// URL.
 */
function credentialsOf(registry: RegistryLocation, get: (flag: Flag) => string | undefined): ConnectionCredentials | undefined {
  const files = Object.fromEntries(Object.entries(CREDENTIAL_FLAGS).map(([field, flag]) => [field, get(flag)])) as CredentialFiles;
  if (!namesCredentialFiles(files)) return undefined;
  const given = (Object.keys(CREDENTIAL_FLAGS) as (keyof CredentialFiles)[]).find((field) => files[field] !== undefined)!;
  if (registry.kind !== 'etcd') throw new AgentUsageError(CREDENTIAL_FLAGS[given], 'applies to an etcd registry (etcd://, etcds://) only; ZooKeeper takes --zk-username and --zk-password-file (digest authentication; ZooKeeper TLS is not supported)');
  const tlsFile = (['caFile', 'certFile', 'keyFile'] as const).find((field) => files[field] !== undefined);
  if (tlsFile !== undefined && !registry.endpoints.every((endpoint) => endpoint.startsWith('https://'))) {
    throw new AgentUsageError(CREDENTIAL_FLAGS[tlsFile], 'needs an etcds:// registry URL (TLS)');
  }
  const { credentials, issues } = readCredentialFiles(files, process.cwd());
  const first = issues[0];
  if (first !== undefined) throw new AgentUsageError(CREDENTIAL_FLAGS[first.field], first.message);
  return credentials;
}

/**
 * The ZooKeeper digest credentials `--zk-username` and `--zk-password-file` name, the password read
 * now (relative to the working folder); undefined when neither is given. Both are needed, and only
 * on a zk:// registry.
 */
function zooKeeperCredentialsOf(registry: RegistryLocation, get: (flag: Flag) => string | undefined): ConnectionCredentials | undefined {
  const username = get('zk-username');
  const passwordFile = get('zk-password-file');
  if (username === undefined && passwordFile === undefined) return undefined;
  const given: Flag = username !== undefined ? 'zk-username' : 'zk-password-file';
  if (registry.kind !== 'zookeeper') throw new AgentUsageError(given, 'applies to a ZooKeeper registry (zk://) only; etcd takes --etcd-username and --etcd-password-file');
  if (username === undefined) throw new AgentUsageError('zk-username', 'is needed with --zk-password-file');
  if (passwordFile === undefined) throw new AgentUsageError('zk-password-file', 'is needed with --zk-username');
  const { credentials, issues } = readCredentialFiles({ username, passwordFile }, process.cwd());
  const first = issues[0];
  if (first !== undefined) throw new AgentUsageError(first.field === 'username' ? 'zk-username' : 'zk-password-file', first.message);
  return credentials;
}

/** Why the agent cannot register at `location`, or undefined when it can: it writes native entries in ZooKeeper or etcd. */
export function unwritableLocation(location: RegistryLocation): string | undefined {
  if (location.kind === 'file') return 'the agent registers in zk:// or etcd://, not in a file';
  // The agent writes native entries under <root>/<service>/<id>; reading other layouts is the gateway's job.
  if (location.layout !== undefined && (location.layout.name !== 'native' || location.layout.service !== undefined)) {
    return 'the agent writes the native layout: drop layout= and service= from its registry URL';
  }
  return undefined;
}

function booleanEnv(flag: string, text: string | undefined): boolean {
  if (text === undefined || text === '' || /^(0|false|no)$/i.test(text)) return false;
  if (/^(1|true|yes)$/i.test(text)) return true;
  throw new AgentUsageError(flag, `${envNameOf(flag)}="${text}" must be 1, true, 0 or false`);
}

/** A Kubernetes (or Docker) service link's address, `tcp://10.0.0.7:8080`. */
const SERVICE_LINK_PORT = /^(?:tcp|udp|sctp):\/\/\S+:\d+$/;

/**
 * `text` as the port of `flag`, `given` on the command line or else from its variable. Kubernetes
 * sets `<SERVICE>_PORT` to `tcp://<ip>:<port>` in every container of a namespace with that Service:
 * `SWITCHBOARD_PORT` for one named `switchboard`, `SWITCHBOARD_HEALTH_PORT` for `switchboard-health`.
 * Such a variable is named as that link, not as a bad port the agent was never given.
 */
function portOf(flag: 'port' | 'health-port', text: string, given: boolean): number {
  if (!given && SERVICE_LINK_PORT.test(text)) {
    const service = envNameOf(flag).replace(/_PORT$/, '').toLowerCase().replaceAll('_', '-');
    const what = flag === 'port' ? 'port' : 'health port';
    throw new AgentUsageError(flag, `${envNameOf(flag)}="${text}" is the service link Kubernetes sets for a Service named ${service}, not this backend's ${what}: pass --${flag}`);
  }
  return integer(flag, text, 1, 65_535);
}

function required(flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new AgentUsageError(flag, `is required (or set ${envNameOf(flag)})`);
  return value;
}

function integer(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw new AgentUsageError(flag, `"${text}" must be a whole number from ${min} to ${max}`);
  return value;
}

/** The longest delay a Node timer holds (about 24.8 days); a longer one fires after 1 ms instead, with only a warning. */
export const LONGEST_TIMER_MS = 2_147_483_647;

function duration(flag: string, text: string): number {
  const value = parseDurationMs(text);
  if (value === undefined) throw new AgentUsageError(flag, `"${text}" is not a duration such as 500ms, 2s or 1m`);
  // "0s" is a duration: saying it is none would send the user hunting for a spelling mistake.
  if (value <= 0 && flag !== 'drain') throw new AgentUsageError(flag, `"${text}" must be above 0 (only --drain may be 0)`);
  // Every duration becomes a timer: a longer one would probe, drain or give up after 1 ms.
  if (value > LONGEST_TIMER_MS) throw new AgentUsageError(flag, `"${text}" is longer than 24 days, the longest a timer can wait`);
  return value;
}

/** ZooKeeper counts sessions in ticks and etcd leases in whole seconds: below a second neither holds. */
export const MIN_TTL_MS = 1_000;

function ttl(text: string): number {
  const value = duration('ttl', text);
  if (value < MIN_TTL_MS) throw new AgentUsageError('ttl', `"${text}" is below 1s: a ZooKeeper session or etcd lease cannot be that short`);
  return value;
}

function protocolOf(text: string | undefined): AgentOptions['protocol'] {
  if (text === undefined || text === '') return undefined;
  if (!(AGENT_PROTOCOLS as readonly string[]).includes(text)) throw new AgentUsageError('protocol', `"${text}" must be one of ${AGENT_PROTOCOLS.join(', ')}`);
  return text as AgentOptions['protocol'];
}

function probe(text: string): AgentProbe {
  if (text === 'tcp') return { kind: 'tcp' };
  const grpc = /^grpc(?::([\w.-]+))?$/.exec(text);
  if (grpc) return { kind: 'grpc', service: grpc[1] ?? '' };
  // A URL reads naturally here, but the probe goes to --host and --health-port (or --port): its host
  // and port would be taken as the path ("//10.0.0.5:8081/healthz") and the backend never registered.
  if (/^https?:\/\//i.test(text)) {
    throw new AgentUsageError('health', `"${text}" is a URL; give the path alone (http:/healthz): the probe goes to --host on --health-port (or --port), speaking --protocol (TLS for https)`);
  }
  const match = /^http:(\/\S*)$/.exec(text);
  if (!match) throw new AgentUsageError('health', `"${text}" must be tcp, http:/path or grpc[:service]`);
  return { kind: 'http', path: match[1]! };
}

function metadata(flags: string[] | undefined, fromEnv: string | undefined): Record<string, string> {
  const pairs = flags ?? (fromEnv ? fromEnv.split(',') : []);
  const result: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new AgentUsageError('metadata', `"${pair}" must be key=value`);
    result[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return result;
}
