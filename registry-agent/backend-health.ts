import { BehaviorSubject, type Observable } from 'rxjs';
import { instanceAddress } from '../src/discovery/instance.ts';
import type { Logger } from '../src/logger.ts';
import { probeTimeoutReason, type HealthProbe, type ProbeTarget } from '../src/health/probe.ts';
import { grpcProbe } from '../src/health/probe-grpc.ts';
import { httpProbe } from '../src/health/probe-http.ts';
import { tcpProbe } from '../src/health/probe-tcp.ts';
import { LogRateLimit } from '../src/log-rate-limit.ts';
import type { AgentOptions, AgentProbe } from './cli.ts';

/** How often a probe failure of the same reason is logged again while the verdict does not flip. */
const FAILURE_LOG_PERIOD_MS = 60_000;

/** Options of the agent's backend health watch. */
export interface BackendHealthOptions {
  host: string;
  port: number;
  probe: AgentProbe;
  /** The port probed on `host` (a management port); `port` when undefined. Registered is always `port`. */
  healthPort?: number | undefined;
  /** The registered protocol, which the probe speaks; plain HTTP when undefined. */
  protocol?: AgentOptions['protocol'];
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

/**
 * Probes the one backend an agent stands beside, one check at a time. Unlike the gateway's
 * checker it starts *unhealthy*: the backend is registered only after `rise` consecutive passes,
 * and deregistered after `fall` consecutive failures.
 */
export class BackendHealth {
  /** Replays the current verdict, then each flip. Completes after `stop()`. */
  readonly healthy$: Observable<boolean>;

  private readonly state = new BehaviorSubject(false);
  private readonly probe: HealthProbe;
  private readonly target: ProbeTarget;
  private streak = 0;
  private timer: NodeJS.Timeout | undefined;
  private controller: AbortController | undefined;
  private stopped = false;
  private readonly failureLogs = new LogRateLimit(FAILURE_LOG_PERIOD_MS);

  constructor(
    private readonly options: BackendHealthOptions,
    private readonly log: Logger,
  ) {
    this.healthy$ = this.state.asObservable();
    const { probe } = options;
    this.probe = probe.kind === 'http' ? httpProbe({ path: probe.path }) : probe.kind === 'grpc' ? grpcProbe({ service: probe.service }) : tcpProbe();
    // The HTTP probe speaks the registered protocol (HTTP/2 for h2c, TLS for https), as the gateway's would.
    const port = options.healthPort ?? options.port;
    this.target = { address: instanceAddress({ host: options.host, port }), host: options.host, port, protocol: options.protocol ?? (probe.kind === 'grpc' ? 'grpc' : 'http') };
  }

  /** The current verdict. */
  get healthy(): boolean {
    return this.state.getValue();
  }

  /** Probes at once, then `intervalMs` after each probe ends: never two at once, whatever `timeoutMs`. */
  start(): void {
    void this.run();
  }

  /** Stops probing; a running probe is aborted. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.controller?.abort(new Error('stopped'));
    this.state.complete();
  }

  private async run(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    const timeout = setTimeout(() => controller.abort(probeTimeoutReason(this.options.timeoutMs)), this.options.timeoutMs);
    let result;
    try {
      result = await this.probe(this.target, controller.signal);
    } catch (error) {
      result = { healthy: false, detail: String(error) };
    } finally {
      clearTimeout(timeout);
    }
    if (this.stopped) return;
    this.apply(result.healthy, result.detail);
    this.timer = setTimeout(() => void this.run(), this.options.intervalMs);
  }

  private apply(passed: boolean, detail: string): void {
    const healthy = this.state.getValue();
    // A streak counts results that disagree with the current verdict; one agreeing result resets it.
    this.streak = passed === healthy ? 0 : this.streak + 1;
    const needed = healthy ? this.options.fall : this.options.rise;
    if (this.streak < needed) {
      if (!passed) this.tellFailure(healthy, detail, needed);
      return;
    }
    this.streak = 0;
    this.log.info({ healthy: passed, detail }, passed ? 'backend healthy' : 'backend unhealthy');
    this.state.next(passed);
  }

  /**
   * Logs a failed probe that flips nothing, so that an operator sees why a backend is not registered
   * (a wrong path's 404, a refused port) or is about to leave: each reason at most once a minute.
   */
  private tellFailure(healthy: boolean, detail: string, needed: number): void {
    if (!this.failureLogs.allow(`${healthy}:${detail}`)) return;
    const probe = this.options.probe.kind === 'http' ? `http:${this.options.probe.path}` : this.options.probe.kind;
    const port = this.options.healthPort ?? this.options.port;
    if (healthy) this.log.warn({ detail, probe, port, failures: this.streak, fall: needed }, 'backend probe failed; deregistering after --fall failures in a row');
    else this.log.info({ detail, probe, port, rise: this.options.rise }, 'backend probe failed; not registered until --rise passes in a row');
  }
}
