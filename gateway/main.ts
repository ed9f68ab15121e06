import { prettySink, wantsColor } from '../src/log-pretty.ts';
import { rootLogger, usePrettyLogs } from '../src/logger.ts';
import { watchConfig, type ConfigResult } from './config/index.ts';
import { GATEWAY_HELP, parseGatewayArgs } from './help.ts';
import { createAccessLogger } from './middleware/index.ts';
import { startGateway, type Gateway } from './pipeline.ts';

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
const log = rootLogger.child({ component: 'main' });
const accessLogger = values.pretty ? createAccessLogger(prettySink(process.stdout, { color: wantsColor(process.stdout) })) : createAccessLogger();
let gateway: Gateway | undefined;
let starting: Promise<void> | undefined;

const subscription = watchConfig(values.config).subscribe((result: ConfigResult) => {
  if (!result.ok) {
    if (!gateway && !starting) {
      process.stderr.write(`switchboard: ${result.error.message}\n`);
      process.exit(2);
    }
    log.error({ reason: result.error.message }, 'configuration refused; the running configuration stays');
    gateway?.refuse(result.error);
    return;
  }
  if (gateway) return gateway.apply(result.config);
  starting ??= startGateway(result.config, { accessLogger }).then(
    (started) => {
      gateway = started;
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
      await gateway?.close();
      process.exit(0);
    })();
  });
}
