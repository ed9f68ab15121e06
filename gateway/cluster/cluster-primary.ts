import { availableParallelism } from 'node:os';
import { componentLogger, type Logger } from '../../src/logger.ts';
import { DRAINING } from '../admin/admin-sources.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import type { GatewayConfig } from '../config/index.ts';
import { startControlPlane, type ControlPlane } from '../control-plane.ts';
import { rateLimitChanges } from '../middleware/index.ts';
import type { CachePurgeSelector } from '../middleware/cache/index.ts';
import { FlowStats, InstanceTraffic, type FlowStore } from '../telemetry/index.ts';
import { WorkerBreakers } from './cluster-breakers.ts';
import { aggregateMetrics, RetiredWorkerMetrics, type ScrapeAnswer } from './cluster-metrics.ts';
import { WorkerInstanceLoad } from './cluster-instance-load.ts';
import { decodeRateLimitChange, type PrimaryMessage } from './cluster-messages.ts';
import { mergeOutcomes } from './cluster-outcomes.ts';
import { WorkerQuestions } from './cluster-questions.ts';
import { WorkerSupervisor } from './cluster-supervisor.ts';
import { configIdentity, WorkerConfigs } from './cluster-worker-configs.ts';

/** How long `/metrics` waits for a worker's metrics; a worker that does not answer is summed as its last answer gave its counters and histograms (and counted in `switchboard_workers_not_answering`). */
const METRICS_TIMEOUT_MS = 2_000;
/** How long a cache purge waits for each worker's count; one that does not answer is reported as `workersUnanswered`. */
const PURGE_TIMEOUT_MS = 2_000;
/** Added to the drain bound for workers to flush and exit before the primary kills them. */
export const EXIT_MARGIN_MS = 3_000;

/** The number of worker processes `workers` asks for: `auto` is the available parallelism. */
export function workerCount(workers: GatewayConfig['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** A running primary: the control plane plus the workers it feeds. */
export interface Primary {
  /** Validated configurations go to the control plane and to every worker. */
  apply(config: GatewayConfig, text: string): void;
  refuse(error: unknown): void;
  /** Drains every worker within the drain bound, then closes the control plane. */
  close(): Promise<void>;
}

/**
 * Starts the primary of a multi-process gateway: the control plane (registry sessions, health
 * checks, the admin listener) runs here once; `workerCount(config.workers)` workers own the entry
 * points and get the configuration text, the services listed, every health snapshot and the
 * registries not yet connected over IPC.
 * Their passive outcomes come back to this process's outlier detection and traffic counters, and
 * `/metrics` sums theirs with this process's (prom-client's `AggregatorRegistry`); their flow
 * statistics arrive rolled per second and the primary alone writes the store. Resolves once
 * every worker listens; rejects, with nothing left running, when one cannot start, or with
 * `signal.reason` once every worker has stopped when `signal` aborts first (a SIGTERM during the
 * start: workers still starting are killed after `STARTING_STOP_MS`, not waited for; one before
 * the control plane has started forks none).
 */
export async function startPrimary(path: string, initial: GatewayConfig, initialText: string, options: { log?: Logger; flowStore?: FlowStore; signal?: AbortSignal } = {}): Promise<Primary> {
  const log = options.log ?? componentLogger('primary');
  const count = workerCount(initial.workers);
  let text = initialText;
  // Every text sent gets the next sequence; the workers' results say which one each runs.
  const configs = new WorkerConfigs(count, configIdentity(1, initialText));
  const configMessage = (): PrimaryMessage => ({ kind: 'switchboard:config', path, text, ...(text === initialText ? {} : { listenText: initialText }), workers: count, ...configs.latest });
  // The workers' flow statistics arrive rolled per second and go into the primary's rings and store.
  const flow = new FlowStats(options.flowStore ? { store: options.flowStore } : {});
  const traffic = new InstanceTraffic(undefined, flow);
  const scrapes = new WorkerQuestions<ScrapeAnswer>();
  const purges = new WorkerQuestions<number>();
  const retiredMetrics = new RetiredWorkerMetrics();
  let failure: ((error: Error) => void) | undefined;
  const failed = new Promise<never>((_, reject) => (failure = reject));
  const breakers = new WorkerBreakers();
  const instanceLoad = new WorkerInstanceLoad();
  let closing = false;
  failed.catch(() => undefined);

  const supervisor: WorkerSupervisor = new WorkerSupervisor(
    count,
    {
      attach(send, slot) {
        configs.attached(slot);
        send(configMessage());
        const services = control.aggregator.services$.subscribe((names) => send({ kind: 'switchboard:services', names }));
        // Replays the current state, then only changes: the workers name the same registries in a 503 as this process would.
        const unconnected = control.aggregator.unconnected$.subscribe((state) => send({ kind: 'switchboard:unconnected', state }));
        // health$ replays every service's latest snapshot first, so a new worker starts with the whole picture.
        const health = control.balancers.health$.subscribe((snapshot) => send({ kind: 'switchboard:health', snapshot }));
        const peers = control.peers;
        if (peers) send({ kind: 'switchboard:peers', count: peers.count() });
        const stopPeers = peers?.onCount((count) => send({ kind: 'switchboard:peers', count }));
        return () => {
          services.unsubscribe();
          unconnected.unsubscribe();
          health.unsubscribe();
          stopPeers?.();
        };
      },
      message(message, countRequests, slot) {
        if (message.kind === 'switchboard:outcomes') {
          const balancers = control.balancers;
          countRequests(
            mergeOutcomes(message.outcomes, {
              record: (service, address, outcome) => balancers.balancer(service)?.recordOutcome(address, outcome),
              count: (service, address, requests, errors) => traffic.add(service, address, requests, errors),
            }),
          );
        } else if (message.kind === 'switchboard:flow') flow.addRemote(message.second, message.entries);
        else if (message.kind === 'switchboard:breakers') breakers.receive(message);
        else if (message.kind === 'switchboard:instance-load') instanceLoad.receive(slot, message.load);
        else if (message.kind === 'switchboard:metrics') {
          retiredMetrics.answered(slot, message.metrics);
          scrapes.answered(message.id, { slot, generation: retiredMetrics.generation(slot), metrics: message.metrics });
        }
        else if (message.kind === 'switchboard:cache-purged') purges.answered(message.id, typeof message.purged === 'number' ? message.purged : 0);
        else if (message.kind === 'switchboard:rate-limit-change') {
          const change = decodeRateLimitChange(message.change);
          if (change) rateLimitChanges.next(change);
        }
        else if (message.kind === 'switchboard:config-result') {
          configs.result(slot, message, Date.now());
          if (message.outcome === 'refused') log.error({ worker: slot, sequence: message.sequence, reason: message.reason }, 'a worker refused the configuration; it keeps its running one');
        }
      },
      exited(slot) {
        retiredMetrics.exited(slot);
        instanceLoad.exited(slot);
        configs.exited(slot);
      },
      failedToStart(slot, reason) {
        failure?.(new Error(`worker ${slot} could not start: ${reason}`));
      },
    },
    log,
    undefined,
    initial.workerHeartbeatTimeoutMs,
  );

  const clusterMetrics = async (): Promise<string> => {
    // The workers the broadcast reaches, asked in the same tick.
    const asked = supervisor.connectedSlots().map((slot) => ({ slot, generation: retiredMetrics.generation(slot) }));
    const answers = await scrapes.ask(asked.length, (id) => supervisor.broadcast({ kind: 'switchboard:metrics-request', id }), METRICS_TIMEOUT_MS);
    // Summed first: it sets switchboard_workers_not_answering, which the primary's own metrics carry.
    const workers = retiredMetrics.scrape(answers, asked);
    return aggregateMetrics([await metricsRegistry.getMetricsAsJSON(), ...workers]);
  };

  // Each worker holds caches of its own (the primary none); a worker started since holds nothing yet.
  const purgeCaches = async (selector: CachePurgeSelector) => {
    const workers = supervisor.connected().length;
    const answers = await purges.ask(workers, (id) => supervisor.broadcast({ kind: 'switchboard:cache-purge', id, selector }), PURGE_TIMEOUT_MS);
    return { purged: answers.reduce((sum, purged) => sum + purged, 0), workersUnanswered: workers - answers.length };
  };

  // The hooks above run only once workers exist, which is after this line.
  const control: ControlPlane = await startControlPlane(initial, { log, traffic, flow, admin: { metrics: clusterMetrics, purgeCaches, workers: () => supervisor.view().map((worker) => ({ ...worker, ...configs.view(worker.slot) })), breakers, instanceLoad, ready: () => (closing ? DRAINING : supervisor.readiness()) } });
  // A forgotten service leaves no series in the counts of workers gone either (each worker drops its own).
  control.balancers.forgotten$.subscribe((service) => retiredMetrics.forget(service));
  const bound = () => control.config().shutdown.drainTimeoutMs + EXIT_MARGIN_MS;
  const signal = options.signal;
  const stopRequested = new Promise<'stop'>((resolve) => {
    if (signal?.aborted) resolve('stop');
    else signal?.addEventListener('abort', () => resolve('stop'), { once: true });
  });
  try {
    // A stop asked for while the control plane started forks no worker: none would have anything to do but exit.
    if (signal?.aborted) {
      log.warn('stop requested before the workers were forked; none is forked');
      closing = true;
      throw signal.reason;
    }
    if ((await Promise.race([supervisor.start(), failed, stopRequested])) === 'stop') {
      const starting = supervisor.view().filter((worker) => worker.state !== 'listening').map((worker) => worker.slot);
      log.warn({ starting }, 'stop requested while workers were starting; stopping them without waiting for the start');
      closing = true;
      throw signal?.reason;
    }
  } catch (error) {
    await supervisor.stop(bound());
    await control.close();
    breakers.close();
    throw error;
  }
  log.info({ workers: count, admin: control.adminPort, registries: initial.registries.map((registry) => registry.url) }, 'gateway listening');

  return {
    apply(config, nextText) {
      control.apply(config);
      supervisor.setHeartbeatTimeout(config.workerHeartbeatTimeoutMs);
      text = nextText;
      configs.sent(configIdentity(configs.latest.sequence + 1, text));
      supervisor.broadcast(configMessage());
    },
    refuse: (error) => control.refuse(error),
    async close() {
      // Not ready from here on: load balancers stop sending while the peer entry goes and the workers drain.
      closing = true;
      await control.leave();
      await supervisor.stop(bound());
      await control.close();
      breakers.close();
    },
  };
}
