import { runTool } from './run-tool.ts';

/**
 * `switchboard check …`, `switchboard explain …` and `switchboard config …`: one-shot commands that never start the
 * gateway (bin/switchboard.js sends a command line here when its first word is a command).
 */
const [command, ...rest] = process.argv.slice(2);
process.exitCode = await runTool(command, rest);
