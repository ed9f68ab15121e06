import { parseArgs } from 'node:util';
import { usageReason } from '../src/cli-usage.ts';

/** The gateway's `--help` text; its own module so that `bin/switchboard.js` prints it without loading the gateway. */
export const GATEWAY_HELP = `switchboard: an API gateway routed by service discovery

Usage: switchboard --config <file> [--pretty]
       switchboard check --config <file> [--config <file>…] [--quiet]
       switchboard explain --admin <url> [--token <token>] [--method GET] [--host <host>] --path <path> [--json]
       switchboard config get|apply|diff|delete … [--admin <url>] [--token <token>]

Options:
  -c, --config <file>   gateway configuration, YAML or JSON (docs/configuration.md); watched for changes,
                        and read again on SIGHUP
      --pretty          human-readable logs (coloured on a terminal, unless NO_COLOR is set) instead of JSON lines
  -h, --help            print this help

Commands (they start nothing and exit):
  check     validate configuration files as the gateway would load them, certificate and key files
            included; prints every problem as <file>:<line>: <key path>: <reason>; exit 0 when
            valid, 2 when not (for CI, as nginx -t)
  explain   ask a running gateway's admin API where a request would go: the route (and the routes
            that nearly matched), middleware, service, instances and the instance the balancer
            would pick now (without counting it); SWITCHBOARD_ADMIN_TOKEN stands for --token;
            exit 0 when the request would be proxied, 1 when not (no route, no instances, an
            answer of the gateway's own), 2 on bad arguments or an admin API error
  config    read and write the shared configuration store (configStore:) through a gateway's
            admin API (--admin, default http://127.0.0.1:9180; --token or SWITCHBOARD_ADMIN_TOKEN):
              get [kind [name]] [--json]        the stored objects as YAML (or JSON)
              apply -f <file> [--prune]         store the file's routes (each needs a name),
                                                services, middlewares, consumers and certificates;
                                                prints created/updated/unchanged; --prune deletes
                                                stored objects the file no longer has
              diff -f <file>                    + only in the file, - only in the store, ~ changed;
                                                exit 1 when there are differences, 0 when none
              delete <kind> <name> [--if-match <revision>]
            kinds: routes, services, middlewares, consumers, certificates. Writes need the admin
            token and use compare-and-swap: an object changed by someone else meanwhile is refused (412)

Environment:
  SWITCHBOARD_LOG_LEVEL   trace, debug, info (default), warn, error, silent
`;

/** The usage of the one-shot commands, printed when a command is missing or unknown. */
export const TOOLS_HELP = `Usage: switchboard check --config <file>
       switchboard explain --admin <url> [--token <token>] [--method GET] [--host <host>] --path <path> [--json]
       switchboard config get|apply|diff|delete … --admin <url> [--token <token>]
(switchboard --help says more)
`;

/** The one-shot commands `bin/switchboard.js` sends to dist/switchboard-tools.js. */
export const TOOL_COMMANDS: readonly string[] = ['check', 'explain', 'config'];

/** The gateway's own flags. */
export interface GatewayArgs {
  readonly config?: string;
  readonly pretty?: boolean;
  readonly help?: boolean;
}

/** The gateway's options, as `parseArgs` takes them. */
const GATEWAY_OPTIONS = { config: { type: 'string', short: 'c' }, pretty: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

/**
 * Parses the gateway's command line. An unknown flag (a mistyped `--prety`), a positional argument
 * or a flag without its value is a `usageError` naming it, which the program prints after
 * `switchboard: ` and exits 2 (as switchboard-agent does): a flag the gateway ignored would leave
 * the operator believing it took effect. A command (`check`, `explain`, `config`) after an option
 * is refused with the advice to put it first, where the help writes it and where
 * `bin/switchboard.js` looks for it.
 */
export function parseGatewayArgs(args: readonly string[] = process.argv.slice(2)): { values: GatewayArgs; usageError?: undefined } | { usageError: string } {
  const command = commandAfterOptions(args);
  if (command !== undefined) return { usageError: `'${command}' is a command: put it first, before any option (switchboard ${command} …; switchboard --help lists the commands)` };
  try {
    const { values } = parseArgs({ args: [...args], options: GATEWAY_OPTIONS, strict: true });
    return { values };
  } catch (error) {
    return { usageError: `${usageReason(error as Error, args)} (switchboard --help lists the options)` };
  }
}

/** The first argument that is not an option or an option's value, when it names a command and is not the first word. */
function commandAfterOptions(args: readonly string[]): string | undefined {
  // Not strict: this looks only for the command; the strict parse that follows reports anything else.
  const { tokens } = parseArgs({ args: [...args], options: GATEWAY_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((token) => token.kind === 'positional');
  return first !== undefined && first.index > 0 && TOOL_COMMANDS.includes(first.value) ? first.value : undefined;
}

