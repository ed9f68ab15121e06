import cluster from 'node:cluster';
import { Subject } from 'rxjs';
import { hangupIsRequest } from '../src/hangup.ts';
import { formatLogLines, wantsColor } from '../src/log-pretty.ts';
import { closeLogs, rootLogger, useLogSink } from '../src/logger.ts';
import { startPrimary, workerCount } from './cluster/cluster-primary.ts';
import { runWorker } from './cluster/cluster-worker.ts';
import { watchConfig, type GatewayConfig } from './config/index.ts';
import { ConfigFollower, type Running } from './config-follower.ts';
import { watchConfigWithStore } from './config-store/store-config.ts';
import { GATEWAY_HELP, parseGatewayArgs } from './help.ts';
import { accessLogDestination, createAccessLogger } from './middleware/index.ts';
import { startGateway } from './pipeline.ts';
import type { RedisSettings } from './config/types.ts';
import { releaseSharedRedisAfter, sameRedisSettings, sharedRedis } from './redis/redis-connection.ts';
import { logDroppedTotal, MemoryFlowStore, RedisFlowStore, SwitchableFlowStore, type FlowStore } from './telemetry/index.ts';

const parsed = parseGatewayArgs();
if (parsed.usageError !== undefined) {
  process.stderr.write(`switchboard: ${parsed.usageError}\n`);
  process.exit(2);
}
const { values } = parsed;

if (values.help) {
  process.stdout.write(GATEWAY_HELP);
  process.exit(0);
}
if (typeof values.config !== 'string') {
  process.stderr.write('switchboard: --config <file> is required\n');
  process.exit(2);
}

/** `--pretty`: lines formatted for people on their way into the same bounded buffers as JSON lines. */
const prettyOn = (stream: NodeJS.WriteStream) => {
  const options = { color: wantsColor(stream) };
  return values.pretty ? { format: (text: string) => formatLogLines(text, options) } : {};
};
// Operational lines take the access log's non-blocking buffer, each line written as it comes: a
// reader of stderr that stalls or goes away costs lines (counted), never the gateway or its exit.
// `--pretty` lines too: through Node's stdio streams, a pipe nobody read held every line in memory.
useLogSink(accessLogDestination(2, { flushDelayMs: 0, sharedWithOtherProcesses: true, onDropped: (lines) => logDroppedTotal.inc(lines), ...prettyOn(process.stderr) }));
// Something may still write to Node's stdio streams. Once a terminal has hung up every write to it
// fails with EIO, which such a stream raises as an 'error' that would end the gateway in the middle
// of the drain its hangup started: those lines are dropped instead, as the other sinks drop theirs.
for (const stream of [process.stdout, process.stderr]) if (stream.isTTY) stream.on('error', () => {});
const configPath = values.config;
const log = rootLogger.child({ component: 'main' });
// The workers of a gateway share its stdout.
const accessLogger = createAccessLogger(1, { sharedWithOtherProcesses: cluster.isWorker, ...prettyOn(process.stdout) });


/**
 * With a `redis:` section, flow statistics are summed across gateways in that Redis (the process
 * that serves the admin API writes them: the primary, or the one process); without, they stay in
 * its memory.
 */
function flowStoreOf(redis: RedisSettings | undefined): FlowStore {
  return redis ? new RedisFlowStore(sharedRedis(redis), { prefix: `{${redis.keyPrefix}flow}` }) : new MemoryFlowStore();
}

function start(config: GatewayConfig, text: string, signal: AbortSignal): Promise<Running> {
  const flowStore = new SwitchableFlowStore(flowStoreOf(config.redis));
  let redis = config.redis;
  // A reload that changes `redis:` moves every user of it: the limits are rebuilt by the apply, the
  // flow store is replaced here, and once the old store has sent what it still had to (removed
  // `redis:`) and the old configuration's requests have had their drain time, every connection but
  // the one of the settings then in force is closed.
  const follow = (next: GatewayConfig) => {
    if (sameRedisSettings(redis, next.redis)) return;
    redis = next.redis;
    void flowStore.use(flowStoreOf(next.redis)).then(() => releaseSharedRedisAfter(redis, next.shutdown.drainTimeoutMs));
  };
  const running: Promise<Running> =
    workerCount(config.workers) > 1
      ? startPrimary(configPath, config, text, { flowStore, signal })
      : startGateway(config, { accessLogger, flowStore }).then((gateway) => ({
          apply: (next) => gateway.apply(next),
          refuse: (error) => gateway.refuse(error),
          close: () => gateway.close(),
        }));
  return running.then((gateway) => ({
    apply(next, nextText) {
      gateway.apply(next, nextText);
      follow(next);
    },
    refuse: (error) => gateway.refuse(error),
    close: () => gateway.close(),
  }));
}

if (cluster.isWorker) runWorker({ accessLogger });
else runMain();

function runMain(): void {
  let stopping = false;
  const follower = new ConfigFollower({
    start,
    exit: (message, code) => {
      stopping = true;
      // Lines logged just before (each registry saying it closed) can still be in the log buffer,
      // whose writes complete on a later tick: out with them first, then the reason, in order.
      void closeLogs().then(() => {
        process.stderr.write(message);
        process.exit(code);
      });
    },
    log,
  });
  // SIGHUP reads the file again, as nginx and HAProxy reload on it (Node's default would end the
  // gateway): a change the folder watch did not report is applied, a bad file refused as on an edit.
  const hangups$ = new Subject<void>();
  if (hangupIsRequest()) {
    process.on('SIGHUP', () => {
      if (stopping) return;
      log.info({ signal: 'SIGHUP', path: configPath }, 'reading the configuration file again');
      hangups$.next();
    });
  }
  // With `configStore`, results are the file merged with the store: applied (and sent to workers) like any file reload.
  const subscription = watchConfigWithStore(configPath, { file$: watchConfig(configPath, { rereads$: hangups$ }) }).subscribe(follower.take);

  let draining = false;
  const drain = (signal: NodeJS.Signals) => {
    if (draining && signal === 'SIGINT') return forceStop();
    if (stopping) return;
    stopping = true;
    draining = true;
    log.info({ signal }, 'draining');
    subscription.unsubscribe();
    void (async () => {
      await follower.close();
      await closeLogs();
      process.exit(0);
    })();
  };
  // A second Ctrl-C is someone at a terminal who will not wait for the drain (as Caddy and docker
  // compose take it): the gateway ends at once, cutting what is in flight, with 130 as a shell reports
  // a process Ctrl-C ended. Its workers are killed: left alone they would drain on the primary's going.
  // A second SIGTERM changes nothing: a supervisor sends one, then SIGKILL at its own deadline.
  const forceStop = () => {
    log.warn({ signal: 'SIGINT' }, 'a second SIGINT: ending now, without waiting for the drain');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    // The lines of requests answered just before are still buffered: out with them, within 1 s each.
    void Promise.all([closeLogs(), accessLogger.close(1_000)]).then(() => process.exit(130));
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => drain(signal));
  // Its output a terminal, a SIGHUP is that terminal hanging up (an ssh session that ended): the
  // gateway ends, but as on SIGTERM, so that requests in flight finish within the drain timeout
  // (Node's default would cut them). Its writes to the gone terminal fail from then on and are dropped.
  if (!hangupIsRequest()) process.on('SIGHUP', () => drain('SIGHUP'));
  // nginx reopens its logs on SIGUSR1 and upgrades its binary on SIGUSR2; Node's defaults would open the
  // inspector or end the gateway without a drain. Its logs go to stdout and stderr: nothing to reopen.
  for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) process.on(signal, () => log.info({ signal }, `${signal} ignored: the gateway logs to stdout and stderr, with no file to reopen`));
}
