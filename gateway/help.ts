import { parseArgs } from 'node:util';

/** The gateway's `--help` text; its own module so that `bin/switchboard.js` prints it without loading the gateway. */
export const GATEWAY_HELP = `switchboard: an API gateway routed by service discovery

Usage: switchboard --config <file> [--pretty]

Options:
  -c, --config <file>   gateway configuration, YAML or JSON (docs/configuration.md); watched for changes
      --pretty          human-readable logs (coloured on a terminal, unless NO_COLOR is set) instead of JSON lines
  -h, --help            print this help

Environment:
  SWITCHBOARD_LOG_LEVEL   trace, debug, info (default), warn, error, silent
`;

/** Parses the gateway's command line (unknown flags are tolerated, as they always were). */
export function parseGatewayArgs(args: readonly string[] = process.argv.slice(2)) {
  return parseArgs({
    args: [...args],
    options: { config: { type: 'string', short: 'c' }, pretty: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: false,
  });
}
