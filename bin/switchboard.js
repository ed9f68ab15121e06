#!/usr/bin/env node
// The gateway program. `--help` is answered from a module that loads nothing else, so it costs a bare Node start.
import { compiled } from './compiled.js';

const { GATEWAY_HELP, TOOL_COMMANDS, parseGatewayArgs } = await import(compiled('switchboard-help.js', 'switchboard'));
// `switchboard check …` and `switchboard explain …` start nothing: their own bundle, without the gateway.
if (TOOL_COMMANDS.includes(process.argv[2])) {
  await import(compiled('switchboard-tools.js', 'switchboard'));
} else {
  if (parseGatewayArgs().values.help) {
    process.stdout.write(GATEWAY_HELP);
    process.exit(0);
  }
  await import(compiled('switchboard.js', 'switchboard'));
}
