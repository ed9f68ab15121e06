// The demo's traffic on its own, for the docker-compose `traffic` container:
//   node dist/demo-traffic.js --url <url> [--rps 6] [--names backend-1,backend-2]   (bundled by npm run build)
import { parseArgs } from 'node:util';
import { startTraffic } from './traffic.ts';

const { values } = parseArgs({
  options: { url: { type: 'string' }, rps: { type: 'string', default: '6' }, names: { type: 'string', default: '' } },
});
const requestsPerSecond = Number(values.rps);
if (!values.url || !Number.isFinite(requestsPerSecond) || requestsPerSecond <= 0) {
  process.stderr.write('usage: traffic-cli.ts --url <url> [--rps <requests per second>] [--names <backend>,<backend>…]\n');
  process.exit(2);
}
const names = values.names.split(',').filter((name) => name !== '');
process.stdout.write(`traffic: ${requestsPerSecond} requests/s to ${values.url}; which backend answered, each second:\n`);
const stop = startTraffic(values.url, requestsPerSecond, names, (line) => void process.stdout.write(`${line}\n`));
// As PID 1 in a container the default signal actions do not apply: stop explicitly.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => {
  stop();
  process.exit(0);
});
