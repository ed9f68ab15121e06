import { spawn } from 'node:child_process';

/** Runs `command` with `args` (stderr passed through) and resolves with its stdout; rejects on a non-zero exit with the output. */
export function captureStdout(command: string, args: readonly string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`${command} exited with ${code}:\n${text}`))));
  });
}
