import type { Instance } from '../../src/discovery/index.ts';
import type { ProviderState } from '../../src/discovery/provider.ts';
import type { StoreKind } from '../config-store/store-layout.ts';
import type { BreakerChangePayload } from '../policy/breaker-change.ts';
import type { HealthState, HealthVerdict } from './health-state.ts';

/** Every kind of change `/api/events` reports. */
export const ADMIN_EVENT_TYPES = [
  'instance-added',
  'instance-removed',
  'health-changed',
  'weight-changed',
  'draining-changed',
  'provider-status',
  'removal-held',
  'removal-released',
  'service-forgotten',
  'config-applied',
  'config-refused',
  'config-written',
  'config-store-refused',
  'rate-limit-fallback',
  'rate-limit-recovered',
  'breaker-opened',
  'breaker-half-open',
  'breaker-closed',
] as const;

/** One of `ADMIN_EVENT_TYPES`. */
export type AdminEventType = (typeof ADMIN_EVENT_TYPES)[number];

/** What one endpoint of a service looks like to the event diff: identity, weight, health, routing verdict. */
export interface EndpointState {
  readonly address: string;
  readonly instance: Instance;
  /** The provider that listed it; undefined once it has left the registry. */
  readonly source: string | undefined;
  readonly inRegistry: boolean;
  readonly health: HealthVerdict;
  readonly routable: boolean;
  /** Epoch ms, while ejected. */
  readonly ejectedUntil: number | undefined;
}

/** An instance's health in event payloads: state, reason code (`HealthReason`) and the reason in words. */
export interface HealthPayload {
  state: HealthState;
  reason: string;
  text: string;
}

/** A held instance in event payloads and `/api/services`: times are ISO. */
export interface HeldPayload {
  id: string;
  address: string;
  provider: string;
  since: string;
  until: string;
}

/** The JSON payloads of each event type. */
export interface AdminEventPayloads {
  'instance-added': {
    service: string;
    instance: { id: string; address: string; host: string; port: number; weight: number; protocol: string; metadata: Readonly<Record<string, string>>; source: string | null };
    health: HealthPayload;
    routable: boolean;
  };
  /** `left-registry`: the registry dropped it; `grace-over`: it had left the registry and its removal grace ended (or its checks failed). */
  'instance-removed': { service: string; id: string; address: string; reason: 'left-registry' | 'grace-over' };
  'health-changed': {
    service: string;
    id: string;
    address: string;
    from: HealthPayload;
    to: HealthPayload;
    routable: boolean;
    /** ISO time the ejection ends, while ejected. */
    ejectedUntil: string | null;
    /** The service routes to every registry member because too few are healthy. */
    panic: boolean;
  };
  'weight-changed': { service: string; id: string; address: string; from: number; to: number };
  /** The registry entry gained or lost the drain mark (`switchboard-agent` on SIGTERM): no new request while `draining`. */
  'draining-changed': { service: string; id: string; address: string; draining: boolean };
  'provider-status': { provider: string; state: ProviderState; previous: ProviderState | null; since: string; reason: string | null };
  /** Removal protection kept these instances routable: most of the service vanished right after a registry outage. */
  'removal-held': { service: string; reason: 'mass-removal-after-outage'; instances: HeldPayload[]; held: number };
  /** Held instances were let go: listed again (`relisted`) or their hold ended and the removal applied (`expired`). */
  'removal-released': { service: string; reason: 'relisted' | 'expired'; instances: HeldPayload[]; held: number };
  /**
   * No registry or list has named the service, nor has it had an instance, for `afterMs`
   * (`forgetServicesAfter`), and the configuration names it nowhere: it left `/api/services` and
   * `/metrics`, with its health state.
   */
  'service-forgotten': { service: string; afterMs: number | null };
  /** `restartRequired`: changed keys that take effect only after a restart. */
  'config-applied': { routes: number; services: number; restartRequired: string[] };
  'config-refused': { reason: string };
  /** An object of the config store was written through this gateway's admin API; `client` is the admin client's address. Never carries the value. */
  'config-written': { action: 'put' | 'delete'; kind: StoreKind; name: string; revision: string | null; client: string };
  /** A config store object left out (invalid, or a route naming a missing middleware): its key, kind and why; the rest applied. */
  'config-store-refused': { key: string; kind: string; reason: string; revision: string };
  /** A `policy: redis` rate limit lost its Redis and decides by `onRedisError` (a local bucket, allow or deny) until it returns. */
  'rate-limit-fallback': { middleware: string; onRedisError: 'local' | 'allow' | 'deny'; reason: string; worker: number | null };
  /** The Redis of a rate limit answers again; shared counting resumed after `downMs`. */
  'rate-limit-recovered': { middleware: string; downMs: number; worker: number | null };
  /** A circuit breaker opened: the window's calls and failures that tripped it. */
  'breaker-opened': BreakerChangePayload;
  /** Its sleep window ended: trial calls go through. */
  'breaker-half-open': BreakerChangePayload;
  /** Its trials succeeded: traffic flows again. */
  'breaker-closed': BreakerChangePayload;
}

/** A change before it is numbered and stamped. */
export type AdminChange = { [T in AdminEventType]: { readonly type: T; readonly data: AdminEventPayloads[T] } }[AdminEventType];

/** A change as `/api/events` sends it: numbered (the SSE id), stamped, with its payload. */
export type AdminEvent = AdminChange & {
  /** Increases by one per event for the life of the process. */
  readonly id: number;
  /** ISO time the gateway saw the change. */
  readonly time: string;
};

/** A configuration change the gateway reports to the admin events: applied (with restart-only keys) or refused. */
export type ConfigChange = Extract<AdminChange, { type: 'config-applied' | 'config-refused' | 'config-store-refused' }>;

/** A rate limit's Redis went away or came back (reported by whichever process runs the limiter). */
export type RateLimitChange = Extract<AdminChange, { type: 'rate-limit-fallback' | 'rate-limit-recovered' }>;

/** A write to the config store through the admin API, as `/api/events` reports it. */
export type ConfigWrite = Extract<AdminChange, { type: 'config-written' }>;
