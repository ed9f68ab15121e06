import { Agent, type Dispatcher } from 'undici';
import { UNUSED_PICK, type Picker } from '../../src/balance/picker.ts';
import type { MirrorRouting } from '../config/index.ts';
import type { AttemptResult } from '../transports/index.ts';
import { reportAttempt, sampleHead } from '../transports/transport-outcome.ts';
import type { AttemptObserver } from './proxy-attempts.ts';
import { countMirrorDropped, countMirrorRequest } from './mirror-metrics.ts';
import { MirrorTurns } from './mirror-turns.ts';
import { answerClassOf, classifyUpstreamError } from './upstream-error.ts';

/** One request's copy for a mirror, taken as the proxy sent the original. */
export interface MirrorCopy {
  readonly route: string;
  readonly settings: MirrorRouting;
  readonly method: string;
  /** Path and query after the route's rewrites. */
  readonly path: string;
  /** Without Host and the body's framing, which the sender sets. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The Host the original went out with; undefined when it was its instance's address (`hostHeader: upstream`). */
  readonly host: string | undefined;
  /** Undefined for a copy without a body. */
  readonly body: Buffer | undefined;
}

/** What the sender needs of the rest of the gateway. */
export interface MirrorSenderDependencies {
  /** The picker of a mirror service: its own balancer, as for any request to it. */
  pickerFor(service: string): Picker | undefined;
  /** Told of every copy's end, as of any attempt on the service's instances. */
  readonly observer?: AttemptObserver | undefined;
}

/** Envoy's mark on a shadow request's Host (`shadowAppendedHost`): the mirror can tell copies from clients' requests. */
const SHADOW_SUFFIX = '-shadow';

/**
 * Sends mirror copies over its own connection pool, so copies never take a connection or a stream
 * slot from clients' requests, and drops their answers. A copy fails (and counts against its
 * instance's health, as any attempt of that service) on a transport failure, a 5xx answer or its
 * route's timeout; it never touches the request it copies. Each route has at most `maxInFlight`
 * copies out; one more is dropped and counted, so a slow mirror holds bounded memory.
 */
export class MirrorSender {
  private readonly agent = new Agent({ keepAliveTimeout: 4_000 });
  private readonly inFlight = new Map<string, number>();
  private readonly turns = new Map<string, MirrorTurns>();
  private closing: Promise<void> | undefined = undefined;

  constructor(private readonly dependencies: MirrorSenderDependencies) {}

  /** `route`'s turns: the ones it had while its percent stays, fresh ones for a new percent. */
  turnsOf(route: string, percent: number): MirrorTurns {
    const kept = this.turns.get(route);
    if (kept?.percent === percent) return kept;
    const turns = new MirrorTurns(percent);
    this.turns.set(route, turns);
    return turns;
  }

  /** Whether `route` has `maxInFlight` copies out: a copy started now would be dropped, so its body need not be kept. */
  full(route: string, settings: MirrorRouting): boolean {
    return (this.inFlight.get(route) ?? 0) >= settings.maxInFlight;
  }

  /** Sends `copy` to an instance of its mirror service, or counts why not; never throws, never waits. */
  send(copy: MirrorCopy): void {
    const { route, settings } = copy;
    const out = this.inFlight.get(route) ?? 0;
    if (out >= settings.maxInFlight) return countMirrorDropped(route, 'in-flight-limit');
    const pick = this.dependencies.pickerFor(settings.service)?.pick({ url: copy.path, headers: copy.headers });
    if (pick === undefined || pick.kind === 'none') return countMirrorDropped(route, 'no-instances');
    if (pick.instance.protocol !== 'http') {
      pick.done(UNUSED_PICK);
      return countMirrorDropped(route, 'unsupported-protocol');
    }
    this.inFlight.set(route, out + 1);
    const headers: Record<string, string | string[]> = { ...copy.headers, host: shadowHost(copy.host ?? pick.address) };
    if (copy.body !== undefined) headers['content-length'] = String(copy.body.length);
    const started = performance.now();
    const signal = AbortSignal.timeout(settings.timeoutMs);
    let status = 0;
    let answeredAt: number | undefined;
    const answered = (answer: number): void => {
      status = answer;
      answeredAt = performance.now();
      sampleHead(pick, answer, answeredAt - started);
    };
    void this.exchange({ origin: `http://${pick.address}`, path: copy.path, method: copy.method as Dispatcher.HttpMethod, headers, body: copy.body ?? null, signal }, answered)
      .then(
        (): AttemptResult => ({ ok: true }),
        (error: unknown): AttemptResult => {
          const errorClass = signal.aborted ? (status === 0 ? 'headers-timeout' : 'body-timeout') : classifyUpstreamError(error, status !== 0);
          return { ok: false, errorClass, responseStarted: status !== 0, error: error as Error };
        },
      )
      .then((result) => {
        this.inFlight.set(route, (this.inFlight.get(route) ?? 1) - 1);
        reportAttempt(pick, started, answeredAt, status, result);
        this.dependencies.observer?.attempt(settings.service, pick.address, result.ok ? answerClassOf(status, undefined) : result.errorClass);
        countMirrorRequest(route, result.ok ? 'answered' : 'failed');
      });
  }

  /** Closes the pool; copies still out after `graceMs` are cut. Idempotent: a later call gets the first one's promise. */
  close(graceMs: number): Promise<void> {
    this.closing ??= this.closeWithin(graceMs);
    return this.closing;
  }

  private async closeWithin(graceMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, graceMs, 'late')));
    const closed = await Promise.race([this.agent.close().then(() => 'closed' as const), late]);
    clearTimeout(timer);
    if (closed === 'late') await this.agent.destroy();
  }

  /** One request whose answer is read to its end and dropped; `answered` gets its status as soon as its head is in. */
  private async exchange(options: Dispatcher.RequestOptions, answered: (status: number) => void): Promise<void> {
    const response = await this.agent.request(options);
    answered(response.statusCode);
    for await (const chunk of response.body) void chunk;
  }
}

/** `host` with Envoy's `-shadow` on its name, before any port; an IPv6 literal is kept as it is (no name to mark). */
export function shadowHost(host: string): string {
  if (host.startsWith('[')) return host;
  const colon = host.lastIndexOf(':');
  return colon === -1 ? `${host}${SHADOW_SUFFIX}` : `${host.slice(0, colon)}${SHADOW_SUFFIX}${host.slice(colon)}`;
}
