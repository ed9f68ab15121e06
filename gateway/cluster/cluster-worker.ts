import cluster from 'node:cluster';
import { errorMessage } from '../../src/errors.ts';
import { hangupIsRequest } from '../../src/hangup.ts';
import { closeLogs, componentLogger, type Logger } from '../../src/logger.ts';
import { parseConfig, type GatewayConfig } from '../config/index.ts';
import { checkCertificateFiles } from '../config/certificate-check.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { startDataPlane, type DataPlane } from '../data-plane.ts';
import { buildNamedMiddleware, rateLimitChanges, type AccessLogDestination } from '../middleware/index.ts';
import { decodeCachePurgeSelector, purgeLiveCaches } from '../middleware/cache/index.ts';
import { TrafficGuards } from '../policy/traffic-guards.ts';
import type { BreakerChange } from '../policy/breaker-change.ts';
import { releaseSharedRedisAfter } from '../redis/redis-connection.ts';
import { ServiceBalancers } from '../service-registry.ts';
import { countsAgainstUpstream } from '../proxy/upstream-error.ts';
import { collectProcessMetrics, FlowStats, forgetServiceSeries, RequestMetrics } from '../telemetry/index.ts';
import { WorkerConfigQueue, type ConfigText, type ConfigVerdict } from './cluster-config-queue.ts';
import { decodeHealthSnapshot, decodeUnconnected, HEARTBEAT_INTERVAL_MS, isGatewayMessage, type ConfigOutcome, type PrimaryMessage, type WorkerMessage } from './cluster-messages.ts';
import { PrimaryFeed } from './cluster-feed.ts';
import { instanceLoadOf, sameInstanceLoad, type WireInstanceLoad } from './cluster-instance-load.ts';
import { OutcomeBatch } from './cluster-outcomes.ts';
import { setLivePeerCount } from '../config-store/peer-count.ts';

/** Outcomes travel to the primary at most this late, so outlier detection lags traffic by at most this much. */
const OUTCOME_FLUSH_MS = 100;
/** A batch with this many events goes at once (a burst of failures), without waiting for the timer. */
const OUTCOME_FLUSH_EVENTS = 500;
/** The primary's view of this worker's breakers and caps (a state change goes at once) and of its requests in flight per instance is at most this old. */
const BREAKER_REPORT_MS = 1_000;

/**
 * Runs this process as a worker of a primary (see `startPrimary`): waits for the configuration,
 * starts the data plane over balancers fed by the primary's health snapshots, sends its outcomes
 * back in batches, answers metrics requests and cache purges, and drains and exits when told to, on SIGTERM,
 * or when the primary goes away (SIGINT is the primary's while it is there).
 */
export function runWorker(options: { accessLogger?: AccessLogDestination } = {}): void {
  const slot = Number(process.env.SWITCHBOARD_WORKER_SLOT ?? cluster.worker?.id);
  const log = componentLogger('worker', { worker: slot });
  const send = (message: WorkerMessage) => {
    if (process.connected) process.send?.(message, undefined, {}, () => undefined);
  };
  collectProcessMetrics();
  let balancers: ServiceBalancers | undefined;
  let data: DataPlane | undefined;
  // Flow statistics roll once a second into a message to the primary, which keeps the rings and totals.
  const flow = new FlowStats({ sink: (second, entries) => send({ kind: 'switchboard:flow', second, entries }) });
  flow.start();
  const requestMetrics = new RequestMetrics(flow);
  // The worker's own metrics count upstream errors; per-instance counts live in the primary's view.
  const batch = new OutcomeBatch({
    attempt: (service, address, errorClass) => {
      const failed = errorClass !== undefined && countsAgainstUpstream(errorClass);
      flow.instance(service, address).record(failed ? 1 : 0, 0, 0);
      if (failed) requestMetrics.upstreamError(service, errorClass);
    },
    unavailable: (service, reason) => requestMetrics.upstreamError(service, reason),
  });
  let reportedInFlight = 0;
  const flush = () => {
    const outcomes = batch.take();
    if (outcomes) send({ kind: 'switchboard:outcomes', outcomes });
    const inFlight = data?.inFlight ?? 0;
    if (inFlight !== reportedInFlight) send({ kind: 'switchboard:load', inFlight });
    reportedInFlight = inFlight;
  };
  const feed = new PrimaryFeed((service, address, outcome) => {
    batch.record(service, address, outcome);
    if (batch.size >= OUTCOME_FLUSH_EVENTS) flush();
  });
  // The primary owns the admin events: a rate limit's Redis fallback and recovery travel there.
  rateLimitChanges.subscribe((change) => send({ kind: 'switchboard:rate-limit-change', change }));
  const flushTimer = setInterval(flush, OUTCOME_FLUSH_MS);
  flushTimer.unref();
  let guards: TrafficGuards | undefined;
  const reportBreakers = (changes: BreakerChange[]) => {
    if (guards) send({ kind: 'switchboard:breakers', worker: slot, breakers: guards.breakers(), services: guards.serviceLimits(), changes });
  };
  // The primary's admin view shows each instance's requests in flight; its own balancers make no picks.
  let reportedLoad: WireInstanceLoad = [];
  const reportInstanceLoad = () => {
    const load = balancers ? instanceLoadOf(balancers) : [];
    if (sameInstanceLoad(reportedLoad, load)) return;
    reportedLoad = load;
    send({ kind: 'switchboard:instance-load', load });
  };
  const breakerTimer = setInterval(() => {
    reportBreakers([]);
    reportInstanceLoad();
  }, BREAKER_REPORT_MS);
  breakerTimer.unref();
  // The primary's watchdog kills a worker whose event loop is stuck; the beat goes on while draining
  // (a drain is bounded by the primary itself) and ends only with the process.
  setInterval(() => send({ kind: 'switchboard:heartbeat' }), HEARTBEAT_INTERVAL_MS).unref();

  let stopping = false;

  const applyConfig = async (text: ConfigText, verdict: ConfigVerdict) => {
    const result = (outcome: ConfigOutcome, reason?: string) => send({ kind: 'switchboard:config-result', sequence: text.sequence, digest: text.digest, outcome, ...(reason === undefined ? {} : { reason }) });
    if (verdict.outcome === 'superseded') return result('superseded');
    if (verdict.outcome === 'refused') {
      if (!data) return fail(verdict.error);
      log.error({ reason: errorMessage(verdict.error), sequence: text.sequence }, 'configuration refused; the running configuration stays');
      return result('refused', errorMessage(verdict.error));
    }
    const config = verdict.config;
    if (data && balancers) {
      balancers.apply(config);
      data.apply(config);
      // The limits are rebuilt on a changed `redis:`: the connections to the previous one are closed
      // once the requests of the previous configuration have had their drain time (a reload that
      // keeps `redis:` does not restart that wait).
      releaseSharedRedisAfter(config.redis, config.shutdown.drainTimeoutMs);
      return result('taken');
    }
    balancers = new ServiceBalancers(feed, config);
    // A service the primary forgot leaves no cells, series, breakers or caps here either (completes with the balancers).
    balancers.forgotten$.subscribe((service) => {
      requestMetrics.forget(service);
      guards?.forget(service);
      flow.forget(service);
      void forgetServiceSeries(service);
    });
    guards = new TrafficGuards(config, slot);
    guards.changes$.subscribe((change) => reportBreakers([change]));
    try {
      const started = startedConfig(text, log);
      data = await startDataPlane(config, {
        balancers,
        observer: batch,
        requestMetrics,
        guards,
        log,
        // Every local rate-limit bucket (the middleware's, each consumer's, the Redis fallback's) gets 1/workers.
        middlewareFactory: (definition, name, redis) => buildNamedMiddleware(definition, { name, share: 1 / text.workers, worker: slot }, redis),
        ...(options.accessLogger ? { accessLogger: options.accessLogger } : {}),
        ...(started ? { listeners: started } : {}),
      });
    } catch (error) {
      return fail(error);
    }
    send({ kind: 'switchboard:listening', ports: [...data.ports] });
    result('taken');
  };
  // Configurations are applied one at a time, in the order the primary sent them; a stale one is superseded.
  const configs = new WorkerConfigQueue(applyConfig, log);

  const fail = (error: unknown) => {
    stopping = true;
    void configs.stop();
    log.error({ reason: errorMessage(error) }, 'worker cannot start');
    // Exit once the reason is with the primary, which reports it, and the log buffer is written
    // (closeLogs, 1 s at most): with a slow stderr reader this line and those before it wait there,
    // and an exit drops them. The exit status is 1: a plain disconnect would read as a clean exit.
    const reported = new Promise<void>((resolve) => {
      if (!process.connected || !process.send) return resolve();
      process.send({ kind: 'switchboard:failed', reason: errorMessage(error) } satisfies WorkerMessage, undefined, {}, () => resolve());
    });
    void Promise.all([reported, closeLogs()]).then(() => process.exit(1));
  };

  const drain = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await configs.stop();
      await data?.drain();
      flush();
      await flow.stop();
      clearInterval(flushTimer);
      clearInterval(breakerTimer);
      balancers?.close();
      await data?.close();
      await closeLogs();
      process.exit(0);
    })();
  };

  process.on('message', (message: unknown) => {
    if (!isGatewayMessage<PrimaryMessage>(message)) return;
    switch (message.kind) {
      case 'switchboard:config': {
        if (stopping) return;
        configs.receive({ path: message.path, text: message.text, ...(message.listenText === undefined ? {} : { listenText: message.listenText }), workers: message.workers, sequence: message.sequence, digest: message.digest });
        return;
      }
      case 'switchboard:health': {
        const snapshot = decodeHealthSnapshot(message.snapshot);
        if (snapshot) feed.health(snapshot);
        else log.warn({ service: (message.snapshot as { service?: unknown } | undefined)?.service }, 'malformed health snapshot from the primary; the previous one stays');
        return;
      }
      case 'switchboard:services':
        if (Array.isArray(message.names)) feed.services(message.names.filter((name) => typeof name === 'string'));
        return;
      case 'switchboard:unconnected': {
        const state = decodeUnconnected(message.state);
        if (state) feed.unconnected(state);
        else log.warn('malformed unconnected registries from the primary; the previous ones stay');
        return;
      }
      case 'switchboard:metrics-request':
        void metricsRegistry.getMetricsAsJSON().then((metrics) => send({ kind: 'switchboard:metrics', id: message.id, metrics }));
        return;
      case 'switchboard:cache-purge': {
        const selector = decodeCachePurgeSelector(message.selector);
        if (typeof selector === 'string') log.warn({ reason: selector }, 'malformed cache purge from the primary; nothing dropped');
        send({ kind: 'switchboard:cache-purged', id: message.id, purged: typeof selector === 'string' ? 0 : purgeLiveCaches(selector) });
        return;
      }
      case 'switchboard:peers':
        if (typeof message.count === 'number') setLivePeerCount(message.count);
        return;
      case 'switchboard:drain':
        return drain();
    }
  });
  // Without its primary a worker has no health updates and no one to restart it: it drains and leaves.
  // Node's cluster worker exits at once, with 0, when its channel closes unless it was disconnected on
  // purpose, which would cut the requests in flight: the flag hands that exit to this drain.
  if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
  process.on('disconnect', () => {
    if (stopping) return;
    log.warn('the primary went away; draining');
    drain();
  });
  process.on('SIGTERM', drain);
  // Ctrl-C at a terminal reaches the whole job, and the primary takes it as it takes a hangup there
  // (below): it drains each worker once its peer entry is gone, and kills them on a second Ctrl-C
  // (gateway/main.ts). A worker that drained on its own would exit before the primary stops
  // supervising, be counted as crashed and replaced mid-drain. Without a primary (gone, so this
  // worker drains already), Ctrl-C drains, and a second one ends the worker at once.
  process.on('SIGINT', () => {
    if (process.connected) return log.debug('SIGINT: the primary drains this worker, or ends it on a second one');
    if (!stopping) return drain();
    log.warn({ signal: 'SIGINT' }, 'a second SIGINT: ending now, without waiting for the drain');
    void Promise.all([closeLogs(), options.accessLogger?.close(1_000)]).then(() => process.exit(130));
  });
  // A SIGHUP to the gateway's process group reaches the workers too: the primary reads the file
  // again and sends it, so a worker has nothing to do but stay (Node's default would end it).
  // When the output is a terminal (src/hangup.ts) it is that terminal hanging up, and a shell passes
  // it to its whole job: the primary drains the gateway as on SIGTERM and tells each worker when, after
  // its peer entry is gone (or ends and the worker drains on the disconnect). A worker that drained on
  // its own would close its listener before that, and its exit, which the primary has not asked for
  // yet, would count as a crash and fork a replacement in the middle of the drain; so it stays too,
  // as under systemd's KillMode=mixed, where only the primary is signalled.
  process.on('SIGHUP', () => log.debug(hangupIsRequest() ? 'SIGHUP: the primary reads the configuration again' : 'SIGHUP: the terminal hung up; the primary drains this worker'));
  // SIGUSR1 and SIGUSR2 to the process group: ignored, as by the primary, which logs them (bin/switchboard.js).
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) process.on(signal, () => log.debug({ signal }, `${signal} ignored`));
  send({ kind: 'switchboard:ready' });
}

/**
 * The configuration the gateway started with when a reload has changed the text since
 * (`listenText`): a worker forked after it (a replacement) builds its listeners from it, so that it
 * listens where the others do (an entry point's address, protocol and certificates, and the limits,
 * wait for a restart), while it serves every request, from the first, by the text in force. A file
 * only the rest of that text names (a `respond` body, a JWT key) may be gone with the reload: the
 * listeners are then read without it. Only should the listeners' own certificates no longer load is
 * it undefined: the worker listens as the text in force says, as before.
 */
function startedConfig(text: ConfigText, log: Logger): GatewayConfig | undefined {
  if (text.listenText === undefined) return undefined;
  try {
    return parseConfig(text.path, text.listenText);
  } catch (error) {
    try {
      const started = parseConfig(text.path, text.listenText, { readFiles: false });
      // The named certificates are the text in force's (a reload applies them); only the entry points' own are checked.
      if (checkCertificateFiles({ ...started, certificates: [] }).length === 0) return started;
    } catch {
      // Reported below with the first reason.
    }
    log.warn({ reason: errorMessage(error) }, 'the configuration the gateway started with no longer loads; this worker listens as the configuration in force says');
    return undefined;
  }
}
