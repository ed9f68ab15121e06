import type { Subscription } from 'rxjs';
import { INSTANCE_PROTOCOLS, type Instance } from '../src/discovery/instance.ts';
import { instanceEntrySizeProblem, MAX_INSTANCE_WEIGHT } from '../src/discovery/instance-codec.ts';
import { instanceHostProblem } from '../src/discovery/instance-host.ts';
import { componentLogger } from '../src/logger.ts';
import { parseRegistryUrl, type RegistryLocation } from '../src/registry-url.ts';
import { BackendHealth } from './backend-health.ts';
import { INSTANCE_ID, INSTANCE_ID_RULE, LONGEST_TIMER_MS, MIN_TTL_MS, nameLengthProblem, SERVICE_NAME, SERVICE_NAME_RULE, unwritableLocation, type AgentOptions } from './cli.ts';
import { EtcdRegistration } from '../src/registration/registration-etcd.ts';
import type { ConnectionCredentials } from '../src/connection-credentials.ts';
import { ZooKeeperRegistration } from '../src/registration/registration-zookeeper.ts';
import type { Registration } from '../src/registration/registration.ts';

/**
 * Creates the registration for a ZooKeeper or etcd location with `credentials` when given (etcd:
 * TLS files, user/password; ZooKeeper: the digest user and password); throws for one the agent
 * cannot write (`unwritableLocation`).
 */
export function createRegistration(location: RegistryLocation, ttlMs: number, credentials?: ConnectionCredentials): Registration {
  const unwritable = unwritableLocation(location);
  // (A file location is always unwritable; the kind test narrows the type.)
  if (unwritable !== undefined || location.kind === 'file') throw new Error(unwritable);
  if (location.kind === 'zookeeper') {
    const digest = credentials?.zooKeeperDigest();
    return new ZooKeeperRegistration({ connectString: location.connectString, root: location.root, sessionTimeoutMs: ttlMs, ...(digest === undefined ? {} : { digest }) });
  }
  return new EtcdRegistration({ endpoints: location.endpoints, prefix: location.prefix, ttlMs, credentials });
}

/**
 * The agent's core: registers the backend while its probe says healthy (after `rise` passes) and
 * deregisters after `fall` failures. On shutdown `markDraining()` then `deregister()` come first,
 * so gateways stop routing before anything else happens to the backend.
 */
export class Agent {
  readonly registration: Registration;
  readonly health: BackendHealth;
  readonly instance: Instance;
  private subscription: Subscription | undefined;

  constructor(options: Omit<AgentOptions, 'command' | 'help' | 'registryUrl' | 'drainMs'>) {
    this.instance = {
      id: options.id,
      service: options.service,
      host: options.host,
      port: options.port,
      weight: options.weight,
      // Unspecified: the gateway applies the service's configured protocol (http by default).
      ...(options.protocol === undefined ? { protocol: 'http' as const, protocolDefaulted: true } : { protocol: options.protocol }),
      metadata: options.metadata,
    };
    const log = componentLogger('agent', { service: options.service, id: options.id });
    this.registration = createRegistration(options.registry, options.ttlMs, options.etcdCredentials ?? options.zooKeeperCredentials);
    this.health = new BackendHealth(options, log);
  }

  /** Starts probing; registration follows the verdict. */
  start(): void {
    this.subscription = this.health.healthy$.subscribe((healthy) => {
      if (healthy) this.registration.register(this.instance);
      else void this.registration.deregister();
    });
    this.health.start();
  }

  /**
   * Stops probing (a verdict must not rewrite the entry without the mark) and marks the entry
   * draining; true once the registry holds the mark, false when there was no entry or it did not
   * confirm within `timeoutMs`.
   */
  async markDraining(timeoutMs: number): Promise<boolean> {
    this.subscription?.unsubscribe();
    this.health.stop();
    return this.registration.markDraining(timeoutMs);
  }

  /**
   * Stops probing (a verdict must not write the entry back) and waits for the retried removal that
   * an earlier deregistration left unconfirmed; true once the registry confirmed it, false when it
   * did not within `timeoutMs`.
   */
  async removalConfirmed(timeoutMs: number): Promise<boolean> {
    this.subscription?.unsubscribe();
    this.health.stop();
    return this.registration.removalConfirmed(timeoutMs);
  }

  /** Stops probing and removes the entry; resolves once the registry confirmed or gave up after `timeoutMs` (the registration's `entryTtlMs`, `--ttl` as etcd's lease rounds it or a ZooKeeper server granted it, by default). */
  async deregister(timeoutMs?: number): Promise<void> {
    this.subscription?.unsubscribe();
    this.health.stop();
    await this.registration.deregister(timeoutMs);
  }

  /**
   * Deregisters (unless `deregister()` already ran: a second one would wait out its own `--ttl` on
   * a silent registry, past the shutdown's bound) and closes the registry connection.
   */
  async close(): Promise<void> {
    this.subscription?.unsubscribe();
    this.health.stop();
    await this.registration.close();
  }
}

/** Options of the in-process registration API. */
export interface RegisterOptions {
  /** `zk://…` or `etcd://…`. */
  registry: string;
  service: string;
  port: number;
  host?: string;
  id?: string;
  weight?: number;
  metadata?: Record<string, string>;
  protocol?: Instance['protocol'];
  /** Session timeout (ZooKeeper) or lease TTL (etcd, rounded up to whole seconds); 10 s by default. */
  ttlMs?: number;
}

/** What `register()` returns: the live registration and a `close()` that deregisters. */
export interface RegistrationHandle {
  readonly registration: Registration;
  /** Deregisters, then closes the registry connection; idempotent. */
  close(): Promise<void>;
}

/**
 * For Node backends that register themselves in-process: registers at once (the process is its own
 * health signal) and keeps the entry through session expiry or lease loss until `close()`.
 */
export function register(options: RegisterOptions): RegistrationHandle {
  const host = options.host ?? '127.0.0.1';
  const id = options.id ?? `${options.service}-${host}-${options.port}`;
  const problem = registerOptionsProblem(options, host, id);
  if (problem !== undefined) throw new Error(`register(): ${problem}`);
  const instance: Instance = {
    id,
    service: options.service,
    host,
    port: options.port,
    weight: options.weight ?? 1,
    ...(options.protocol === undefined ? { protocol: 'http', protocolDefaulted: true } : { protocol: options.protocol }),
    metadata: options.metadata ?? {},
  };
  const sizeProblem = instanceEntrySizeProblem(instance);
  if (sizeProblem !== undefined) throw new Error(`register(): metadata: ${sizeProblem}`);
  const registration = createRegistration(parseRegistryUrl(options.registry), options.ttlMs ?? 10_000);
  registration.register(instance);
  return { registration, close: () => registration.close() };
}

/**
 * What the command line would refuse in `options`, or undefined: an entry gateways skip as invalid
 * (a bad host, port or weight), one written outside `<root>/<service>/<id>` (a `/` in the service
 * or id), or a session or lease that cannot hold (`ttlMs` below 1 s or past the longest timer); a
 * `protocol` gateways do not know.
 */
function registerOptionsProblem(options: RegisterOptions, host: string, id: string): string | undefined {
  const { service, port, weight, ttlMs, protocol } = options;
  if (typeof service !== 'string' || !SERVICE_NAME.test(service)) return `service "${service}" ${SERVICE_NAME_RULE}`;
  const serviceLength = nameLengthProblem(service);
  if (serviceLength !== undefined) return `service ${serviceLength}`;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return `port ${port} must be a whole number from 1 to 65535`;
  const hostProblem = instanceHostProblem(host);
  if (hostProblem !== undefined) return `host "${host}" ${hostProblem}`;
  if (!INSTANCE_ID.test(id)) return `id "${id}" ${INSTANCE_ID_RULE}`;
  const idLength = nameLengthProblem(id);
  if (idLength !== undefined) return `id ${idLength}`;
  if (weight !== undefined && (!Number.isInteger(weight) || weight < 0 || weight > MAX_INSTANCE_WEIGHT)) return `weight ${weight} must be a whole number from 0 to ${MAX_INSTANCE_WEIGHT}`;
  if (ttlMs !== undefined && !(ttlMs >= MIN_TTL_MS && ttlMs <= LONGEST_TIMER_MS)) return `ttlMs ${ttlMs} must be from ${MIN_TTL_MS} to ${LONGEST_TIMER_MS}`;
  // The type says so, but a JavaScript caller's "http2" would register an entry gateways skip as invalid.
  if (protocol !== undefined && !(INSTANCE_PROTOCOLS as readonly string[]).includes(protocol)) return `protocol "${protocol}" must be one of ${INSTANCE_PROTOCOLS.join(', ')}`;
  return undefined;
}
