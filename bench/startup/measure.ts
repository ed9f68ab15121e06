import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { acceptsConnections } from '../../test/harness/programs.ts';

/** How to run one program: the Node binary and the arguments before the program's own. */
export interface Launcher {
  readonly label: string;
  readonly node: string;
  readonly args: readonly string[];
}

/** Milliseconds from spawn to exit of `launcher` with `args` (e.g. `--help`); rejects on a non-zero exit. */
export function timeToExit(launcher: Launcher, args: readonly string[]): Promise<number> {
  const startedAt = performance.now();
  const child = spawn(launcher.node, [...launcher.args, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(performance.now() - startedAt);
      else reject(new Error(`${launcher.label} ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

/** What one start measured: time to ready and the resident set size after `idleMs` of idling. */
export interface StartResult {
  readyMs: number;
  rssMb: number;
}

/**
 * Spawns `launcher` with `args`, polls `ready` from here (every 2 ms, as a client would) until it
 * holds, waits `idleMs`, reads the child's VmRSS from /proc, then kills it and waits for its exit.
 */
export async function timeToReady(launcher: Launcher, args: readonly string[], ready: (output: string) => Promise<boolean> | boolean, idleMs: number): Promise<StartResult> {
  const startedAt = performance.now();
  const child = spawn(launcher.node, [...launcher.args, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' } });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const deadline = startedAt + 30_000;
    while (!(await ready(output))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${launcher.label} exited before it was ready:\n${output}`);
      if (performance.now() > deadline) throw new Error(`${launcher.label} not ready within 30 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const readyMs = performance.now() - startedAt;
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
    return { readyMs, rssMb: rssKb / 1024 };
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/** A readiness check: the port accepts TCP connections. */
export const listensOn = (port: number) => () => acceptsConnections(port);

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
