import { parseArgs } from 'node:util';
import { checkConfigFile, formatIssues } from './check-config.ts';
import { configCommand } from './config-cli.ts';
import { explainCommand } from './explain-cli.ts';
import { TOOLS_HELP } from '../help.ts';

/**
 * `switchboard check …`, `switchboard explain …` and `switchboard config …`: one-shot commands that never start the
 * gateway (bin/switchboard.js sends a command line here when its first word is a command).
 */
const [command, ...rest] = process.argv.slice(2);
process.exitCode = await run(command, rest);

async function run(name: string | undefined, args: string[]): Promise<number> {
  if (name === 'check') return check(args);
  if (name === 'explain') return explainCommand(args, process.stdout, process.stderr);
  if (name === 'config') return configCommand(args, process.stdout, process.stderr);
  process.stderr.write(TOOLS_HELP);
  return 2;
}

/** Exit 0 when every file is valid, 2 when any is not (or none was given), as `nginx -t`. */
async function check(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string', short: 'c', multiple: true }, quiet: { type: 'boolean', short: 'q' } }, allowPositionals: true });
  const files = [...(values.config ?? []), ...positionals];
  if (files.length === 0) {
    process.stderr.write('switchboard check: --config <file> is required\n');
    return 2;
  }
  let failed = 0;
  for (const file of files) {
    const result = await checkConfigFile(file);
    if (result.issues.length === 0) {
      if (!values.quiet) process.stdout.write(`${file}: ok\n`);
      continue;
    }
    failed += 1;
    process.stdout.write(formatIssues(result));
    process.stdout.write(`${file}: ${result.issues.length} problem${result.issues.length === 1 ? '' : 's'}\n`);
  }
  return failed === 0 ? 0 : 2;
}
