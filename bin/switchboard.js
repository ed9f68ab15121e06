#!/usr/bin/env node
// The gateway program. `--help` is answered from a module that loads nothing else, so it costs a bare Node start.
import { compiled } from './compiled.js';

const { GATEWAY_HELP, parseGatewayArgs } = await import(compiled('switchboard-help.js', 'switchboard'));
if (parseGatewayArgs().values.help) {
  process.stdout.write(GATEWAY_HELP);
  process.exit(0);
}
await import(compiled('switchboard.js', 'switchboard'));
