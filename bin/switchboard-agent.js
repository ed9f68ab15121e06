#!/usr/bin/env node
// The registry agent program. `--help` is answered by the light flag parser alone; a usage error is left to main.
import { compiled } from './compiled.js';

// Until the agent's own SIGHUP handler is in place (once its code has loaded), Node's default would end it
// on one (a signal to its process group, `systemctl reload` just after a start, which systemd then does not
// restart). It has no backend yet to pass the signal to; this listener stays beside the agent's, doing nothing.
// Not when its output is a terminal: there a SIGHUP is the terminal hanging up, and the agent ends on it
// as before (src/hangup.ts, whose test this repeats: no bundle is loaded yet).
if (!(process.stdout.isTTY || process.stderr.isTTY)) process.on('SIGHUP', () => {});
// Likewise SIGUSR2 (a log rotation's kill -USR2), which would end it with Node's default, and SIGUSR1,
// which would open its inspector on 127.0.0.1:9229 for the rest of its life; main.ts passes both on to
// the backend it runs once loaded. What is left is Node's own start-up before this line.
for (const signal of ['SIGUSR1', 'SIGUSR2']) process.on(signal, () => {});

const { parseAgentArgs } = await import(compiled('switchboard-agent-cli.js', 'switchboard-agent'));
let help = false;
try {
  help = parseAgentArgs(process.argv.slice(2)).help;
} catch {
  // The program itself reports the usage error with its exit status.
}
if (help) {
  const { AGENT_HELP } = await import(compiled('switchboard-agent-help.js', 'switchboard-agent'));
  process.stdout.write(AGENT_HELP);
  process.exit(0);
}
await import(compiled('switchboard-agent.js', 'switchboard-agent'));
