import { instanceAddress, type InstanceProtocol } from '../discovery/instance.ts';

/** Where an active check connects: the address balancers know, and how to reach it. */
export interface ProbeTarget {
  /** The service whose check this is, named in what a probe logs; the gateway's checks set it, the registry agent's has none. */
  readonly service?: string;
  /** `instanceAddress` of the instance; checks are keyed by it. */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly protocol: InstanceProtocol;
}

/** The verdict of one check and a short human reason for logs (`status 503`, `ECONNREFUSED`). */
export interface ProbeResult {
  readonly healthy: boolean;
  readonly detail: string;
}

/**
 * One active check of one target. Must settle promptly once `signal` aborts (the checker aborts
 * on timeout and on stop) and should resolve rather than reject; a rejection counts as a failure.
 */
export type HealthProbe = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;

/** A short reason for a failed probe, preferring the stable Node error code. */
export function probeFailureDetail(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) return signal.reason instanceof Error && signal.reason.name === 'TimeoutError' ? 'timeout' : 'aborted';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.message : String(error);
}

/** A DOMException-like reason the checker aborts with when a probe overruns its timeout. */
export function probeTimeoutReason(timeoutMs: number): Error {
  const reason = new Error(`health check timed out after ${timeoutMs} ms`);
  reason.name = 'TimeoutError';
  return reason;
}

/**
 * `probe` pointed at `port` of each target's host instead of the target's own port (a management
 * port, as Envoy's health check `port_value` and Traefik's `healthCheck.port`). The probe sees that
 * port in `address` too, so an HTTP check's default Host (`:authority`) names the port it reached;
 * checks stay keyed and judged by the instance.
 */
export function probeOnPort(probe: HealthProbe, port: number): HealthProbe {
  return (target, signal) => probe({ ...target, port, address: instanceAddress({ host: target.host, port }) }, signal);
}

/**
 * `probe` speaking `protocol` to each target instead of the target's own, as Envoy's
 * `http_health_check` / `grpc_health_check` / `tcp_health_check` are chosen apart from the cluster
 * and Traefik's `healthCheck.mode`: a gRPC server whose management port answers plain HTTP `/healthz`.
 * Checks stay keyed and judged by the instance.
 */
export function probeSpeaking(probe: HealthProbe, protocol: InstanceProtocol): HealthProbe {
  return (target, signal) => probe({ ...target, protocol }, signal);
}
