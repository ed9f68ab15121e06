import { parseArgs } from 'node:util';
import { usageReason } from '../../src/cli-usage.ts';
import { TOOLS_HELP } from '../help.ts';
import { checkConfigFile, formatIssues } from './check-config.ts';
import { configCommand } from './config-cli.ts';
import { explainCommand } from './explain-cli.ts';

/** Where a tool command writes. */
export interface ToolOutput {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

/**
 * Runs the tool command `name` (`check`, `explain`, `config`) with `args` and resolves with its exit
 * status. A command line its parser refuses (an unknown flag, a flag without its value) is a usage
 * error: `switchboard <name>: <reason>` and 2, as the gateway's own flags are, not a stack trace.
 */
export async function runTool(name: string | undefined, args: string[], io: ToolOutput = { out: process.stdout, err: process.stderr }): Promise<number> {
  try {
    if (name === 'check') return await check(args, io);
    if (name === 'explain') return await explainCommand(args, io.out, io.err);
    if (name === 'config') return await configCommand(args, io.out, io.err);
  } catch (error) {
    if (!isParseArgsError(error)) throw error;
    io.err.write(`switchboard ${name}: ${usageReason(error, args)} (switchboard --help lists the options)\n`);
    return 2;
  }
  io.err.write(TOOLS_HELP);
  return 2;
}

/** A refusal from `node:util` parseArgs (its codes start `ERR_PARSE_ARGS_`). */
function isParseArgsError(error: unknown): error is Error {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && (error as NodeJS.ErrnoException).code!.startsWith('ERR_PARSE_ARGS_');
}

/** Exit 0 when every file is valid, 2 when any is not (or none was given), as `nginx -t`. */
async function check(args: string[], { out, err }: ToolOutput): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string', short: 'c', multiple: true }, quiet: { type: 'boolean', short: 'q' } }, allowPositionals: true });
  const files = [...(values.config ?? []), ...positionals];
  if (files.length === 0) {
    err.write('switchboard check: --config <file> is required\n');
    return 2;
  }
  let failed = 0;
  for (const file of files) {
    const result = await checkConfigFile(file);
    if (result.issues.length === 0) {
      if (!values.quiet) out.write(`${file}: ok\n`);
      continue;
    }
    failed += 1;
    out.write(formatIssues(result));
    out.write(`${file}: ${result.issues.length} problem${result.issues.length === 1 ? '' : 's'}\n`);
  }
  return failed === 0 ? 0 : 2;
}
