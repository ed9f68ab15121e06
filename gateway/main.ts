import { parseArgs } from 'node:util';

const HELP = `switchboard: an API gateway routed by service discovery

Usage: switchboard --config <file>

Options:
  -c, --config <file>   gateway configuration (YAML or JSON)
  -h, --help            print this help
`;

const { values } = parseArgs({
  options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
  strict: false,
});

if (values.help || !values.config) {
  process.stdout.write(HELP);
  process.exit(values.help ? 0 : 2);
}
process.stderr.write('switchboard: the gateway data plane is not built yet (see the open issues)\n');
process.exit(1);
