#!/usr/bin/env node
// The registry agent program. `--help` is answered by the light flag parser alone; a usage error is left to main.
import { compiled } from './compiled.js';

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
