import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from './temp-dirs.ts';
import { waitFor } from './wait.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * A test process in small: it registers two cleanups that write to `report` (the second twice) with one
 * that throws between them, then ends as `ending` says: by the signal the test sends, by process.exit(3),
 * or by SIGTERM to a handler of its own that exits with 7.
 */
const CHILD = `
import { appendFileSync } from 'node:fs';
import { onTestProcessEnd } from ${JSON.stringify(join(REPO_ROOT, 'test/harness/process-end.ts'))};
const [report, ending] = process.argv.slice(2);
const second = () => appendFileSync(report, 'second\\n');
onTestProcessEnd(() => appendFileSync(report, 'first\\n'));
onTestProcessEnd(() => {
  throw new Error('thrown on purpose');
});
onTestProcessEnd(second);
onTestProcessEnd(second);
if (ending === 'handled') process.once('SIGTERM', () => process.exit(7));
if (ending === 'exit') process.exit(3);
setInterval(() => undefined, 1_000);
process.stdout.write('ready\\n');
`;

describe('onTestProcessEnd', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await makeTempDir('sb-process-end-');
    writeFileSync(join(dir, 'child.ts'), CHILD);
  });

  it.each([
    { how: 'SIGTERM', ending: 'signal', signal: 'SIGTERM', exit: { code: null, signal: 'SIGTERM' } },
    { how: 'SIGINT', ending: 'signal', signal: 'SIGINT', exit: { code: null, signal: 'SIGINT' } },
    { how: 'process.exit(3)', ending: 'exit', signal: undefined, exit: { code: 3, signal: null } },
    { how: 'a handled SIGTERM', ending: 'handled', signal: 'SIGTERM', exit: { code: 7, signal: null } },
  ] as const)('runs every cleanup once, in order, past one that throws, when the process ends on $how, and ends as it would without them', async ({ how, ending, signal, exit }) => {
    const report = join(dir, `${how.replace(/\W+/g, '-')}.log`);
    const child = spawn(process.execPath, ['--import', 'tsx', join(dir, 'child.ts'), report, ending], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    child.once('exit', (code, endSignal) => (ended = { code, signal: endSignal }));
    try {
      if (signal) {
        await waitFor(() => stdout.includes('ready'), { timeoutMs: 30_000, message: `the child to register its cleanups (stderr: ${stderr})` });
        child.kill(signal);
      }
      expect(await waitFor(() => ended, { timeoutMs: 30_000, message: 'the child to end' })).toEqual(exit);
    } finally {
      if (!ended) child.kill('SIGKILL');
    }
    expect(readFileSync(report, 'utf8')).toBe('first\nsecond\n');
    expect(stderr).toContain('test process cleanup failed: Error: thrown on purpose');
  });
});
