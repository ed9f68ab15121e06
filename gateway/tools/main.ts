import { runTool } from './run-tool.ts';

/**
 * `switchboard check …`, `switchboard explain …` and `switchboard config …`: one-shot commands that never start the
 * gateway (bin/switchboard.js sends a command line here when its first word is a command).
 */
// A reader that leaves early (`switchboard config apply … | head -1`) must not end the command
// between two writes to the store: the rest of its output is dropped, its work and status stay.
// stderr too (`2>&1 | head -1`): else its first problem line ends the command with 1, which diff and
// explain give another meaning than the error's 2.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}
const [command, ...rest] = process.argv.slice(2);
process.exitCode = await runTool(command, rest);
