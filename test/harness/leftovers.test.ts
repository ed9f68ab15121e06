import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { killLeftoverProcesses, markOwnedProcesses, ownedProcesses } from './leftovers.ts';
import { stillRunning } from './process-tree.ts';
import { waitFor } from './wait.ts';

// A parent that starts a long sleeper in its own process group and exits at once, as a SIGKILLed
// agent leaves its backend: the sleeper is re-parented to init and no child list of ours holds it.
const ORPHAN_MAKER = `
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { detached: true, stdio: 'ignore' });
console.log(child.pid);
process.exit(0);
`;

function startOrphan(): Promise<number> {
  return new Promise((resolve, reject) => {
    const maker = spawn(process.execPath, ['-e', ORPHAN_MAKER], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    maker.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    maker.once('error', reject);
    maker.once('close', () => resolve(Number(out.trim())));
  });
}

describe('the end-of-file check for processes a test file left running', () => {
  markOwnedProcesses();

  it('finds an orphan whose parent is gone, kills it, and fails naming the file and the process', async () => {
    const pid = await startOrphan();
    const orphan = ownedProcesses().find((record) => record.pid === pid);
    expect(orphan?.command).toContain('setTimeout');
    await expect(killLeftoverProcesses('test/some-file.test.ts', 200)).rejects.toThrow(new RegExp(`^test/some-file\\.test\\.ts left 1 process\\(es\\) running[^]*pid ${pid}: `));
    expect(stillRunning([orphan!])).toEqual([]);
  });

  it('passes quietly once every process it started has exited within the grace period', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300)'], { stdio: 'ignore' });
    await waitFor(() => ownedProcesses().some((record) => record.pid === child.pid), { timeoutMs: 5_000 });
    await killLeftoverProcesses('test/some-file.test.ts');
    expect(ownedProcesses()).toEqual([]);
  });
});
