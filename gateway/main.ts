import cluster from 'node:cluster';
import { prettySink, wantsColor } from '../src/log-pretty.ts';
import { rootLogger, usePrettyLogs } from '../src/logger.ts';
import { startPrimary, workerCount } from './cluster/cluster-primary.ts';
import { runWorker } from './cluster/cluster-worker.ts';
import type { ConfigResult, GatewayConfig } from './config/index.ts';
import { watchConfigWithStore } from './config-store/store-config.ts';
import { GATEWAY_HELP, parseGatewayArgs } from './help.ts';
import { createAccessLogger } from './middleware/index.ts';
import { startGateway } from './pipeline.ts';
import { sharedRedis } from './redis/redis-connection.ts';
import { RedisFlowStore, type FlowStore } from './telemetry/index.ts';

const { values } = parseGatewayArgs();

if (values.help) {
  process.stdout.write(GATEWAY_HELP);
  process.exit(0);
}
if (typeof values.config !== 'string') {
  process.stderr.write('switchboard: --config <file> is required\n');
  process.exit(2);
}

if (values.pretty) usePrettyLogs();
const configPath = values.config;
const log = rootLogger.child({ component: 'main' });
// The workers of a gateway share its stdout.
const accessLogger = values.pretty ? createAccessLogger(prettySink(process.stdout, { color: wantsColor(process.stdout) })) : createAccessLogger(1, { sharedWithOtherProcesses: cluster.isWorker });

/** What main drives: one process doing everything, or the primary of `workers` processes. */
interface Running {
  apply(config: GatewayConfig, text: string): void;
  refuse(error: unknown): void;
  close(): Promise<void>;
}

/**
 * With a `redis:` section at start, flow statistics are summed across gateways in that Redis (the
 * process that serves the admin API writes them: the primary, or the one process).
 */
function flowStoreOf(config: GatewayConfig): FlowStore | undefined {
  return config.redis ? new RedisFlowStore(sharedRedis(config.redis), { prefix: `{${config.redis.keyPrefix}flow}` }) : undefined;
}

function start(config: GatewayConfig, text: string): Promise<Running> {
  const flowStore = flowStoreOf(config);
  if (workerCount(config.workers) > 1) return startPrimary(configPath, config, text, flowStore ? { flowStore } : {});
  return startGateway(config, { accessLogger, ...(flowStore ? { flowStore } : {}) }).then((gateway) => ({
    apply: (next) => gateway.apply(next),
    refuse: (error) => gateway.refuse(error),
    close: () => gateway.close(),
  }));
}

if (cluster.isWorker) runWorker({ accessLogger });
else runMain();

function runMain(): void {
  let running: Running | undefined;
  let starting: Promise<void> | undefined;

  // With `configStore`, results are the file merged with the store: applied (and sent to workers) like any file reload.
  const subscription = watchConfigWithStore(configPath).subscribe((result: ConfigResult) => {
    if (!result.ok) {
      if (!running && !starting) {
        process.stderr.write(`switchboard: ${result.error.message}\n`);
        process.exit(2);
      }
      log.error({ reason: result.error.message }, 'configuration refused; the running configuration stays');
      running?.refuse(result.error);
      return;
    }
    if (running) return running.apply(result.config, result.text);
    starting ??= start(result.config, result.text).then(
      (started) => {
        running = started;
      },
      (error: Error) => {
        process.stderr.write(`switchboard: cannot start: ${error.message}\n`);
        process.exit(1);
      },
    );
  });

  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'draining');
      subscription.unsubscribe();
      void (async () => {
        await starting;
        await running?.close();
        process.exit(0);
      })();
    });
  }
}
