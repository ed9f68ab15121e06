#!/usr/bin/env -S node --max-semi-space-size=32
// The gateway program. `--help` is answered from a module that loads nothing else, so it costs a bare Node start.
// The shebang gives V8 32 MB semi-spaces (Node 20 has 16, Node 24 32 already): half the scavenges under load,
// see gateway/cluster/cluster-node-flags.ts. `node [--max-semi-space-size=N] bin/switchboard.js` chooses otherwise.
import { compiled } from './compiled.js';

// Loading the gateway takes about a second (more on a loaded machine) and its own SIGHUP handler comes
// after: until then Node's default would end it on one, such as `systemctl reload` just after a start
// (and systemd does not restart a service a SIGHUP ended). The file is read once loaded anyway, so that
// SIGHUP has nothing left to do; this listener stays beside the gateway's (and a worker's), doing nothing.
// Not when its output is a terminal: there a SIGHUP is the terminal hanging up, and the gateway ends
// on it (src/hangup.ts, whose test this repeats: no bundle is loaded yet). Until loaded it has nothing
// in flight and Node's default ends it; once loaded, it drains as on SIGTERM (gateway/main.ts).
const hangupWhileLoading = () => {};
const hangupIsRequest = !(process.stdout.isTTY || process.stderr.isTTY);
if (hangupIsRequest) process.on('SIGHUP', hangupWhileLoading);
// SIGUSR2 (a log rotation's `kill -USR2`, nginx's binary-upgrade signal) would end the gateway with Node's
// default, cutting every request in flight without a drain, and SIGUSR1 (nginx's reopen-logs signal) would
// open its inspector on 127.0.0.1:9229 for the rest of its life. The gateway writes its logs to stdout and
// stderr, with no file to reopen: both are ignored, from here on (gateway/main.ts logs each once loaded).
const userSignalWhileLoading = () => {};
for (const signal of ['SIGUSR1', 'SIGUSR2']) process.on(signal, userSignalWhileLoading);

const { GATEWAY_HELP, TOOL_COMMANDS, parseGatewayArgs } = await import(compiled('switchboard-help.js', 'switchboard'));
// `switchboard check …` and `switchboard explain …` start nothing: their own bundle, without the gateway.
if (TOOL_COMMANDS.includes(process.argv[2])) {
  // A one-off command ends on a SIGHUP (its terminal closed), as programs do.
  process.off('SIGHUP', hangupWhileLoading);
  for (const signal of ['SIGUSR1', 'SIGUSR2']) process.off(signal, userSignalWhileLoading);
  await import(compiled('switchboard-tools.js', 'switchboard'));
} else {
  const parsed = parseGatewayArgs();
  // A usage error (an unknown flag, say) is reported before the gateway loads, with the status of the program's others.
  if (parsed.usageError !== undefined) {
    process.stderr.write(`switchboard: ${parsed.usageError}\n`);
    process.exit(2);
  }
  if (parsed.values.help) {
    process.stdout.write(GATEWAY_HELP);
    process.exit(0);
  }
  const SEMI_SPACE = /^--max[-_]semi[-_]space[-_]size(=|$)/;
  // A flag on the command line (the shebang's, say) comes after NODE_OPTIONS, so V8 took it: say so rather than ignore the user's.
  if ((process.env.NODE_OPTIONS ?? '').split(/\s+/).some((arg) => SEMI_SPACE.test(arg)) && process.execArgv.some((arg) => SEMI_SPACE.test(arg))) {
    process.stderr.write(`switchboard: NODE_OPTIONS sets --max-semi-space-size, but the command line's ${process.execArgv.filter((arg) => SEMI_SPACE.test(arg)).join(' ')} wins; run \`node bin/switchboard.js\` to use NODE_OPTIONS's\n`);
  }
  await import(compiled('switchboard.js', 'switchboard'));
}
